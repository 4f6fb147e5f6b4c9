//! Each objective, evaluated on the Bayes-optimal predictor for standard normal data, has the
//! closed-form expected loss; the optimal predictors decode the documented time inputs, so these
//! tests pin the time conventions shared by training and sampling.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rediffuse_core::sde::{geometric_sigmas, EdmConfig, Sde};
use rediffuse_core::{BetaSchedule, DiffusionSchedule, NoiseSource, Prediction};
use rediffuse_nn::DiffusionNet;
use rediffuse_train::objective::{ncsn_model_time, Objective, SDE_TIME_SCALE};
use rediffuse_train::Method;

/// The optimal output for x₀ ~ N(0, I) is c(t)·x for a per-sample coefficient c of the model time.
struct LinearNet<F: Fn(f64) -> f64 + Send + Sync>(F);

impl<F: Fn(f64) -> f64 + Send + Sync> DiffusionNet for LinearNet<F> {
    fn forward(&self, x: &Tensor, t: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let ts: Vec<f32> = t.to_vec1()?;
        let c: Vec<f32> = ts.iter().map(|&t| (self.0)(t as f64) as f32).collect();
        let n = c.len();
        x.broadcast_mul(&Tensor::from_vec(c, (n, 1), x.device())?)
    }
}

const B: usize = 40_000;

fn data() -> Tensor {
    NoiseSource::new(3, 0, B).randn(&[2], &Device::Cpu).unwrap()
}

/// Mean loss and its standard error over the batch.
fn loss(obj: &Objective, net: &dyn DiffusionNet) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let per: Vec<f32> = obj.loss_per_sample(net, &data(), &mut rng).unwrap().to_vec1().unwrap();
    let n = per.len() as f64;
    let m = per.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = per.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// ∫_a^b f dt / (b − a) by the midpoint rule.
fn average(a: f64, b: f64, f: impl Fn(f64) -> f64) -> f64 {
    let k = 20_000;
    (0..k).map(|i| f(a + (b - a) * (i as f64 + 0.5) / k as f64)).sum::<f64>() / k as f64
}

fn assert_close(label: &str, got: (f64, f64), want: f64) {
    println!("{label}: loss {:.5} ± {:.5}, closed form {want:.5}", got.0, got.1);
    assert!((got.0 - want).abs() < 4.0 * got.1 + 1e-4, "{label}: {} vs {want}", got.0);
}

/// DDPM: ε* = √(1 − ᾱ_i)·x_t at index i, E[L_simple] = mean_i ᾱ_i.
#[test]
fn ddpm_optimal_loss() {
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let obj = Objective::new(&Method::ddpm_default()).unwrap();
    let s = sch.sqrt_one_minus_alpha_bar.clone();
    let net = LinearNet(move |t| s[t.round() as usize]);
    let want = sch.alpha_bar.iter().sum::<f64>() / 1000.0;
    assert_close("ddpm", loss(&obj, &net), want);
}

/// NCSN: model time τ at level σ_j is L − 1 − j = `ncsn_model_time(σ_j)`; ε* = σx/(1 + σ²) and
/// E[loss] = mean_j 1/(1 + σ_j²).
#[test]
fn ncsn_optimal_loss_and_time_convention() {
    let (smax, smin, l) = (10.0, 0.01, 16);
    let method = Method::Ncsn { sigma_max: smax, sigma_min: smin, levels: l };
    let sig = geometric_sigmas(smax, smin, l).unwrap();
    for (j, s) in sig.iter().enumerate() {
        assert!((ncsn_model_time(smax, smin, l, *s) - (l - 1 - j) as f64).abs() < 1e-9);
    }
    let obj = Objective::new(&method).unwrap();
    let net = LinearNet(move |tau| {
        let s = smin * (smax / smin).powf(tau / (l as f64 - 1.0));
        s / (1.0 + s * s)
    });
    let want = sig.iter().map(|s| 1.0 / (1.0 + s * s)).sum::<f64>() / l as f64;
    assert_close("ncsn", loss(&obj, &net), want);
}

/// Score SDE (VP, sub-VP, VE), model time 999·t: ε* = s(t)·m(t)... in general
/// E[z | x_t] = s·x_t/(m² + s²), residual 1 − s²/(m² + s²); the score output −x_t/(m² + s²) has the
/// same loss. E[loss] = average over t ∈ [ε, 1] of m²/(m² + s²).
#[test]
fn score_sde_optimal_loss() {
    for (sde, pred) in [
        (Sde::vp(), Prediction::Epsilon),
        (Sde::vp(), Prediction::Score),
        (Sde::sub_vp(), Prediction::Epsilon),
        (Sde::Ve { sigma_min: 0.01, sigma_max: 10.0 }, Prediction::Epsilon),
    ] {
        let eps = 1e-3;
        let obj = Objective::new(&Method::ScoreSde { sde, prediction: pred, eps }).unwrap();
        let net = LinearNet(move |tau| {
            let t = tau / SDE_TIME_SCALE;
            let (m, s) = (sde.mean_coef(t), sde.marginal_std(t));
            let v = m * m + s * s;
            if pred == Prediction::Epsilon {
                s / v
            } else {
                -1.0 / v
            }
        });
        let want = average(eps, 1.0, |t| {
            let (m, s) = (sde.mean_coef(t), sde.marginal_std(t));
            m * m / (m * m + s * s)
        });
        assert_close(&format!("{} {}", sde.name(), pred.name()), loss(&obj, &net), want);
    }
}

/// EDM with σ_data = 0.5 on unit-variance data: D* = x/(1 + σ²), F* = (D* − c_skip·x)/c_out with
/// σ = e^{4·c_noise} and x = x_in/c_in; E[loss] = E_σ[λ(σ)·σ²/(1 + σ²)] over ln σ ~ N(P_mean, P_std²).
#[test]
fn edm_optimal_loss() {
    let cfg = EdmConfig::default();
    let obj = Objective::new(&Method::Edm(cfg)).unwrap();
    let net = LinearNet(move |c_noise| {
        let s = (4.0 * c_noise).exp();
        (1.0 / (1.0 + s * s) - cfg.c_skip(s)) / cfg.c_out(s) / cfg.c_in(s)
    });
    // E over n ~ N(0, 1) by the midpoint rule on [−8, 8]
    let k = 40_000;
    let h = 16.0 / k as f64;
    let want: f64 = (0..k)
        .map(|i| {
            let n = -8.0 + (i as f64 + 0.5) * h;
            let s = cfg.training_sigma(n);
            let pdf = (-0.5 * n * n).exp() / (2.0 * std::f64::consts::PI).sqrt();
            pdf * h * cfg.loss_weight(s) * s * s / (1.0 + s * s)
        })
        .sum();
    assert_close("edm", loss(&obj, &net), want);
}
