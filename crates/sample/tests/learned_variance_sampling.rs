//! Learned-variance ancestral sampling and iDDPM respacing.

mod common;

use candle_core::{Device, Tensor};
use common::{init, linear, max_abs_diff};
use rediffuse_core::analytic::{timestep_indices, GaussianDenoiser};
use rediffuse_core::vlb::{LearnedVarianceDenoiser, VarianceMode};
use rediffuse_core::{BetaSchedule, Denoiser, DiffusionSchedule, NoiseSource, Prediction};
use rediffuse_sample::{
    ddpm_sample, learned_variance_sample, respace, space_timesteps, DdpmOptions, DdpmVariance,
    LearnedVarianceOptions, RespacedSchedule, StepInfo,
};

/// A fixed-variance model exposed as a learned one: [model output, v ≡ const].
struct ConstV<'a, D: Denoiser>(&'a D, f32);
impl<D: Denoiser> Denoiser for ConstV<'_, D> {
    fn prediction(&self) -> Prediction {
        self.0.prediction()
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let out = self.0.forward(x_t, t)?;
        Ok(Tensor::cat(&[&out, &out.ones_like()?.affine(self.1 as f64, 0.0)?], 1)?)
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn respacing_onto_all_timesteps_is_the_identity() {
    for sched in [BetaSchedule::linear(), BetaSchedule::cosine()] {
        let s = DiffusionSchedule::new(sched, 1000).unwrap();
        let all: Vec<usize> = (0..1000).rev().collect();
        let r = respace(&s, &all).unwrap();
        assert_eq!(r.timesteps, (0..1000).collect::<Vec<_>>());
        for i in 0..1000 {
            assert!(rel(r.schedule.betas[i], s.betas[i]) < 1e-9, "{sched:?} β[{i}]");
            assert!(rel(r.schedule.alpha_bar[i], s.alpha_bar[i]) < 1e-12);
            assert!(
                rel(r.schedule.posterior_variance[i].max(1e-300), s.posterior_variance[i].max(1e-300)) < 1e-9
            );
            assert!((r.schedule.posterior_mean_coef1[i] - s.posterior_mean_coef1[i]).abs() < 1e-9);
            assert!((r.schedule.posterior_mean_coef2[i] - s.posterior_mean_coef2[i]).abs() < 1e-9);
        }
    }
}

/// ᾱ is kept on S (to rounding); β_{S_i} = 1 − ᾱ_{S_i}/ᾱ_{S_{i−1}} is larger than the original β (longer jumps),
/// and β̃ ≤ β still holds.
#[test]
fn respacing_keeps_alpha_bar_on_the_subsequence() {
    let s = DiffusionSchedule::new(BetaSchedule::cosine(), 4000).unwrap();
    let ts = space_timesteps(4000, &[50]).unwrap();
    let r = respace(&s, &ts).unwrap();
    assert_eq!(r.schedule.len(), 50);
    for (j, &i) in ts.iter().enumerate() {
        let e = rel(r.schedule.alpha_bar[j], s.alpha_bar[i]);
        // ᾱ' is rebuilt from β' as a product of 1 − β'; when ᾱ_{S_j}/ᾱ_{S_{j−1}} is tiny (the
        // last cosine step) 1 − β' cancels, costing a factor 1/(1 − β') of relative precision.
        assert!(e < 1e-14 / (1.0 - r.schedule.betas[j]), "j={j}: {e:e}");
        let prev = if j == 0 { 1.0 } else { s.alpha_bar[ts[j - 1]] };
        assert!(rel(r.schedule.betas[j], 1.0 - s.alpha_bar[i] / prev) < 1e-12);
        assert!(r.schedule.betas[j] >= s.betas[i] - 1e-15);
        assert!(r.schedule.posterior_variance[j] <= r.schedule.betas[j]);
    }
}

#[test]
fn space_timesteps_hand_derived() {
    // one section: stride 999/9 = 111
    assert_eq!(space_timesteps(1000, &[10]).unwrap(), (0..10).map(|k| 111 * k).collect::<Vec<_>>());
    assert_eq!(space_timesteps(10, &[4]).unwrap(), vec![0, 3, 6, 9]);
    // two sections of 50: stride 24.5 -> 0, round(24.5) = 24 (half to even), 49; then 50, 99
    assert_eq!(space_timesteps(100, &[3, 2]).unwrap(), vec![0, 24, 49, 50, 99]);
    // T = 7 in two sections of 4 and 3: strides 3 and 2
    assert_eq!(space_timesteps(7, &[2, 2]).unwrap(), vec![0, 3, 4, 6]);
    assert_eq!(space_timesteps(1000, &[1]).unwrap(), vec![0]);
    assert_eq!(space_timesteps(5, &[5]).unwrap(), vec![0, 1, 2, 3, 4]);
    assert!(space_timesteps(10, &[6, 1]).is_err(), "6 steps from a section of 5");
    assert!(space_timesteps(10, &[]).is_err());
    assert!(space_timesteps(10, &[0]).is_err());
}

/// v ≡ +1 gives DDPM with σ² = β, v ≡ −1 DDPM with σ² = β̃, for the same noise; the fixed modes
/// on the full schedule are DDPM itself.
#[test]
fn constant_v_reproduces_ddpm_with_beta_and_beta_tilde() {
    let s = linear(200);
    let den = GaussianDenoiser::new(vec![0.5, -0.3], vec![vec![0.4, 0.1], vec![0.1, 0.2]], &s).unwrap();
    for clip in [None, Some(0.8f32)] {
        for (v, ddpm_var, mode) in [
            (1.0f32, DdpmVariance::Beta, VarianceMode::Beta),
            (-1.0, DdpmVariance::BetaTilde, VarianceMode::BetaTilde),
        ] {
            let (x, mut n_ref) = init(5, 32, &[2]);
            let (mut n_learned, mut n_fixed) = (n_ref.clone(), n_ref.clone());
            let opts = DdpmOptions { variance: ddpm_var, clip_x0: clip };
            let want = ddpm_sample(&den, &s, x.clone(), &opts, &mut n_ref, None).unwrap();
            let lv = LearnedVarianceOptions { variance: VarianceMode::LearnedRange, clip_x0: clip };
            let got =
                learned_variance_sample(&ConstV(&den, v), &s, None, x.clone(), &lv, &mut n_learned, None)
                    .unwrap();
            let fixed = LearnedVarianceOptions { variance: mode, clip_x0: clip };
            let got_fixed = learned_variance_sample(&den, &s, None, x, &fixed, &mut n_fixed, None).unwrap();
            let (d1, d2) = (max_abs_diff(&got, &want), max_abs_diff(&got_fixed, &want));
            println!("v = {v} clip {clip:?}: max |learned − DDPM({ddpm_var:?})| = {d1:e}, fixed mode {d2:e}");
            assert!(d1 < 1e-4 && d2 < 1e-4);
            assert_eq!(n_learned.randn_vec(&[1]), n_ref.randn_vec(&[1]), "same noise consumed");
        }
    }
}

/// Exact reverse variance of Gaussian data N(m, s²) on a respaced schedule: v such that
/// Σ_θ = β̃'_j + coef1'_j²·Var(x₀|x_t).
struct OptimalV {
    den: GaussianDenoiser,
    resp: RespacedSchedule,
    s2: f64,
}
impl Denoiser for OptimalV {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let x0 = self.den.forward(x_t, t)?;
        let sch = &self.resp.schedule;
        let idx = timestep_indices(t, x_t.dim(0)?, 100_000)?;
        let v: Vec<f32> = idx
            .iter()
            .map(|i| {
                let j = self.resp.timesteps.iter().position(|s| s == i).expect("model time on S");
                let ab = sch.alpha_bar[j];
                let var_x0 = self.s2 * (1.0 - ab) / (ab * self.s2 + 1.0 - ab);
                let c1 = sch.posterior_mean_coef1[j];
                let target = (sch.posterior_variance[j] + c1 * c1 * var_x0).ln();
                let (lo, hi) = (sch.posterior_log_variance_clipped[j], sch.betas[j].ln());
                (2.0 * (target - lo) / (hi - lo) - 1.0) as f32
            })
            .collect();
        Ok(Tensor::cat(&[&x0, &Tensor::from_vec(v, (idx.len(), 1), x_t.device())?], 1)?)
    }
}

/// Each step is affine in x for the exact Gaussian x̂₀, so the law of the output is Gaussian with
/// moments propagated exactly: x' = c1·(m + k(x − a m)) + c2·x + σ z.
fn exact_law(resp: &RespacedSchedule, m: f64, s2: f64, log_var: impl Fn(usize) -> f64) -> (f64, f64) {
    let sch = &resp.schedule;
    let (mut mean, mut var) = (0.0, 1.0);
    for j in (0..sch.len()).rev() {
        let ab = sch.alpha_bar[j];
        let a = ab.sqrt();
        let k = a * s2 / (ab * s2 + 1.0 - ab);
        let (c1, c2) = (sch.posterior_mean_coef1[j], sch.posterior_mean_coef2[j]);
        mean = c1 * (m + k * (mean - a * m)) + c2 * mean;
        var = (c1 * k + c2).powi(2) * var + if j > 0 { log_var(j).exp() } else { 0.0 };
    }
    (mean, var)
}

/// With 25 of 1000 steps the learned (here: exact) variance still produces the data law
/// N(m, s²), while σ² = β̃ on the same respaced schedule shrinks the variance; sample moments
/// match the exactly propagated laws.
#[test]
fn few_step_sampling_with_learned_variance_matches_the_data_law() {
    let (m, s2) = (0.4, 0.3);
    let s = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let den = GaussianDenoiser::new(vec![m], vec![vec![s2]], &s).unwrap();
    let ts = space_timesteps(1000, &[25]).unwrap();
    let resp = respace(&s, &ts).unwrap();
    let model = OptimalV { den: den.clone(), resp: resp.clone(), s2 };
    let n = 20_000;
    let sch = resp.schedule.clone();
    let optimal_lv = |j: usize| {
        let ab = sch.alpha_bar[j];
        let c1 = sch.posterior_mean_coef1[j];
        (sch.posterior_variance[j] + c1 * c1 * s2 * (1.0 - ab) / (ab * s2 + 1.0 - ab)).ln()
    };
    for (name, model, opts, law) in [
        (
            "learned",
            &model as &dyn Denoiser,
            LearnedVarianceOptions::default(),
            exact_law(&resp, m, s2, optimal_lv),
        ),
        (
            "β̃",
            &den as &dyn Denoiser,
            LearnedVarianceOptions { variance: VarianceMode::BetaTilde, clip_x0: None },
            exact_law(&resp, m, s2, |j| sch.posterior_variance[j].ln()),
        ),
    ] {
        let (x, mut noise) = init(17, n, &[1]);
        let mut steps = Vec::new();
        let mut cb = |info: &StepInfo| steps.push(info.t_index);
        let out = learned_variance_sample(model, &s, Some(&ts), x, &opts, &mut noise, Some(&mut cb)).unwrap();
        assert_eq!(steps, ts.iter().rev().copied().collect::<Vec<_>>());
        let v: Vec<f64> =
            out.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|&x| x as f64).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        println!(
            "{name}: sample mean {mean:.4} var {var:.4}; exact law mean {:.4} var {:.4}; data N({m}, {s2})",
            law.0, law.1
        );
        assert!((mean - law.0).abs() < 5.0 * (law.1 / n as f64).sqrt());
        assert!((var - law.1).abs() < 5.0 * law.1 * (2.0 / n as f64).sqrt());
        if name == "learned" {
            assert!(
                rel(law.1, s2) < 2e-3 && (law.0 - m).abs() < 1e-3,
                "exact reverse variance recovers the data law"
            );
        } else {
            assert!(law.1 < 0.97 * s2, "σ² = β̃ with few steps underestimates the variance: {}", law.1);
        }
    }
}

#[test]
fn samples_do_not_depend_on_the_batch_and_wrapper_gives_the_mean_half() {
    let s = linear(100);
    let den = GaussianDenoiser::new(vec![0.0], vec![vec![0.5]], &s).unwrap();
    let model = ConstV(&den, 0.3);
    let ts = space_timesteps(100, &[10]).unwrap();
    let opts = LearnedVarianceOptions::default();
    let (x, mut noise) = init(3, 6, &[1]);
    let whole = learned_variance_sample(&model, &s, Some(&ts), x.clone(), &opts, &mut noise, None).unwrap();
    let mut parts = Vec::new();
    for (start, count) in [(0usize, 4usize), (4, 2)] {
        let mut n = NoiseSource::new(3, start as u64, count);
        let xb = n.randn(&[1], &Device::Cpu).unwrap();
        parts.push(learned_variance_sample(&model, &s, Some(&ts), xb, &opts, &mut n, None).unwrap());
    }
    assert!(max_abs_diff(&Tensor::cat(&parts, 0).unwrap(), &whole) < 1e-6);
    // The wrapper makes the same network usable by fixed-variance samplers.
    let wrapped = LearnedVarianceDenoiser::new(ConstV(&den, 0.3));
    let t = Tensor::new(&[5f32; 6], &Device::Cpu).unwrap();
    assert!(max_abs_diff(&wrapped.forward(&x, &t).unwrap(), &den.forward(&x, &t).unwrap()) == 0.0);
}

#[test]
fn invalid_inputs_are_errors() {
    let s = linear(50);
    let den = GaussianDenoiser::new(vec![0.0], vec![vec![0.5]], &s).unwrap();
    let opts = LearnedVarianceOptions::default();
    let run = |model: &dyn Denoiser, ts: Option<&[usize]>, opts: &LearnedVarianceOptions| {
        let (x, mut n) = init(1, 2, &[1]);
        learned_variance_sample(model, &s, ts, x, opts, &mut n, None)
    };
    assert!(run(&den, None, &opts).is_err(), "C-channel output for a learned variance");
    let model = ConstV(&den, 0.0);
    assert!(run(&model, None, &opts).is_ok());
    assert!(run(&model, Some(&[]), &opts).is_err());
    assert!(run(&model, Some(&[3, 3, 7]), &opts).is_err());
    assert!(run(&model, Some(&[3, 50]), &opts).is_err());
    let bad = LearnedVarianceOptions { clip_x0: Some(-1.0), ..opts };
    assert!(run(&model, None, &bad).is_err());
    let fixed = LearnedVarianceOptions { variance: VarianceMode::Beta, clip_x0: None };
    assert!(run(&model, None, &fixed).is_err(), "2C output for a fixed variance");
    let (x, _) = init(1, 2, &[1]);
    let mut wrong = NoiseSource::new(1, 0, 3);
    assert!(learned_variance_sample(&model, &s, None, x, &opts, &mut wrong, None).is_err());
}
