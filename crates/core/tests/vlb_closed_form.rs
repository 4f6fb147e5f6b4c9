//! The variational-bound terms of `rediffuse_core::vlb` against closed forms on Gaussian data
//! with the exact denoiser.

use candle_core::{Device, Tensor};
use rediffuse_core::analytic::GaussianDenoiser;
use rediffuse_core::gaussian::discretized_gaussian_log_likelihood;
use rediffuse_core::gaussian::normal_kl_f64;
use rediffuse_core::loss::q_sample;
use rediffuse_core::tensor_util::timesteps_tensor;
use rediffuse_core::vlb::{
    decoder_nll, kl_term, model_log_variance, p_mean_variance, prior_kl, prior_kl_f64, split_output,
    vlb_terms, LearnedVarianceDenoiser, Reduction, ReverseGaussian, VarianceMode, EIGHT_BIT_LEVELS,
};
use rediffuse_core::vlb::{
    discretized_gaussian_log_likelihood_levels, discretized_gaussian_log_likelihood_levels_f64,
};
use rediffuse_core::{BetaSchedule, Denoiser, DiffusionSchedule, NoiseSource, Prediction};

fn vec1(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(candle_core::DType::F64).unwrap().to_vec1().unwrap()
}

/// Per sample: with the exact x̂₀ of 1-D Gaussian data and σ² = β̃, L_{t−1} equals
/// KL(N(μ̃(x₀), β̃) ‖ N(μ̃(x̂₀), β̃)) computed in f64 from the closed-form x̂₀.
#[test]
fn kl_term_matches_closed_form_per_sample() {
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let (m, s2) = (0.3f64, 0.25f64);
    let den = GaussianDenoiser::new(vec![m], vec![vec![s2]], &sch).unwrap();
    let dev = Device::Cpu;
    let n = 64;
    let x0 = NoiseSource::new(1, 0, n).randn(&[1], &dev).unwrap().affine(s2.sqrt(), m).unwrap();
    let eps = NoiseSource::new(2, 0, n).randn(&[1], &dev).unwrap();
    for &i in &[1usize, 10, 300, 999] {
        let idx = vec![i; n];
        let xt = q_sample(&sch, &x0, &eps, &idx).unwrap();
        let out = den.forward(&xt, &timesteps_tensor(&idx, &dev).unwrap()).unwrap();
        let p =
            p_mean_variance(&sch, Prediction::Sample, VarianceMode::BetaTilde, &out, None, &xt, &idx, None)
                .unwrap();
        let got = vec1(&kl_term(&sch, &x0, &xt, &idx, &p, Reduction::Sum).unwrap());
        let (x0v, xtv) = (vec1(&x0), vec1(&xt));
        let ab = sch.alpha_bar[i];
        let a = ab.sqrt();
        let k = a * s2 / (ab * s2 + 1.0 - ab);
        let lv = sch.posterior_variance[i].ln();
        let (c1, c2) = (sch.posterior_mean_coef1[i], sch.posterior_mean_coef2[i]);
        for b in 0..n {
            let x0_hat = m + k * (xtv[b] - a * m);
            let want = normal_kl_f64(c1 * x0v[b] + c2 * xtv[b], lv, c1 * x0_hat + c2 * xtv[b], lv);
            let tol = 2e-4 * want.abs() + 2e-5;
            assert!((got[b] - want).abs() < tol, "i={i} b={b}: {} vs {want}", got[b]);
        }
    }
}

/// Averaged over x₀ ~ N(μ, Σ) (2-D, correlated) and x_t, each L_{t−1} (mean over dims) equals
/// ½(−1 + lv_p − lv_q + e^{lv_q − lv_p} + coef1²·tr Cov(x₀|x_t)/(D e^{lv_p})) with
/// tr Cov(x₀|x_t) = Σ_k λ_k(1 − ᾱ)/(ᾱλ_k + 1 − ᾱ), for fixed and learned variances.
#[test]
fn kl_terms_average_to_the_closed_form_expectation() {
    let sch = DiffusionSchedule::new(BetaSchedule::cosine(), 200).unwrap();
    let mu = [0.2f64, -0.4];
    let cov = [[0.5f64, 0.2], [0.2, 0.3]];
    let den = GaussianDenoiser::new(mu.to_vec(), cov.iter().map(|r| r.to_vec()).collect(), &sch).unwrap();
    let lambdas = den.eigenvalues().to_vec();
    // Cholesky of Σ to draw x₀.
    let l00 = cov[0][0].sqrt();
    let l10 = cov[1][0] / l00;
    let l11 = (cov[1][1] - l10 * l10).sqrt();
    let n = 40_000;
    let dev = Device::Cpu;
    let z: Vec<f64> = NoiseSource::new(11, 0, n).randn_vec(&[2]).iter().map(|&v| v as f64).collect();
    let x0: Vec<f32> = (0..n)
        .flat_map(|b| {
            let (z0, z1) = (z[2 * b], z[2 * b + 1]);
            [(mu[0] + l00 * z0) as f32, (mu[1] + l10 * z0 + l11 * z1) as f32]
        })
        .collect();
    let x0 = Tensor::from_vec(x0, (n, 2), &dev).unwrap();
    let eps = NoiseSource::new(12, 0, n).randn(&[2], &dev).unwrap();
    let v_const = 0.3f64;
    for &i in &[1usize, 50, 120, 199] {
        let idx = vec![i; n];
        let xt = q_sample(&sch, &x0, &eps, &idx).unwrap();
        let out = den.forward(&xt, &timesteps_tensor(&idx, &dev).unwrap()).unwrap();
        let ab = sch.alpha_bar[i];
        let tr: f64 = lambdas.iter().map(|l| l * (1.0 - ab) / (ab * l + 1.0 - ab)).sum();
        let lv_q = sch.posterior_variance[i].ln();
        let c1 = sch.posterior_mean_coef1[i];
        let frac = (v_const + 1.0) / 2.0;
        let v = Tensor::full(v_const as f32, (n, 2), &dev).unwrap();
        for (mode, v, lv_p) in [
            (VarianceMode::BetaTilde, None, lv_q),
            (VarianceMode::Beta, None, sch.betas[i].ln()),
            (VarianceMode::LearnedRange, Some(&v), frac * sch.betas[i].ln() + (1.0 - frac) * lv_q),
        ] {
            let p = p_mean_variance(&sch, Prediction::Sample, mode, &out, v, &xt, &idx, None).unwrap();
            let terms = vec1(&kl_term(&sch, &x0, &xt, &idx, &p, Reduction::Mean).unwrap());
            let mc = terms.iter().sum::<f64>() / n as f64;
            let var = terms.iter().map(|t| (t - mc).powi(2)).sum::<f64>() / (n - 1) as f64;
            let se = (var / n as f64).sqrt();
            let want = 0.5 * (-1.0 + lv_p - lv_q + (lv_q - lv_p).exp() + c1 * c1 * tr / 2.0 * (-lv_p).exp());
            println!("i={i} {mode:?}: MC {mc:.6} ± {se:.2e}, closed form {want:.6}");
            assert!((mc - want).abs() < 4.0 * se + 1e-4 * want.abs(), "i={i} {mode:?}: {mc} vs {want}");
        }
    }
}

#[test]
fn prior_term_matches_closed_form() {
    let dev = Device::Cpu;
    let xs = [-1.0f32, -0.5, 0.0, 0.25, 1.0, 3.0];
    let x0 = Tensor::new(&xs, &dev).unwrap().reshape((3, 2)).unwrap();
    for sch in [
        DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap(),
        DiffusionSchedule::new(BetaSchedule::cosine(), 4000).unwrap(),
        DiffusionSchedule::new(BetaSchedule::linear(), 10).unwrap(),
    ] {
        let ab = *sch.alpha_bar.last().unwrap();
        let sum = vec1(&prior_kl(&sch, &x0, Reduction::Sum).unwrap());
        let mean = vec1(&prior_kl(&sch, &x0, Reduction::Mean).unwrap());
        for b in 0..3 {
            let want = prior_kl_f64(ab, xs[2 * b] as f64) + prior_kl_f64(ab, xs[2 * b + 1] as f64);
            // closed form written out independently: KL(N(√ᾱ x, 1 − ᾱ) ‖ N(0, 1))
            let direct: f64 = (0..2)
                .map(|k| normal_kl_f64(ab.sqrt() * xs[2 * b + k] as f64, (1.0 - ab).ln(), 0.0, 0.0))
                .sum();
            assert!((want - direct).abs() < 1e-12);
            assert!((sum[b] - want).abs() < 1e-6 + 1e-4 * want, "ᾱ_T={ab}: {} vs {want}", sum[b]);
            assert!((mean[b] - want / 2.0).abs() < 1e-6 + 1e-4 * want);
        }
    }
}

/// exp(−L₀) over the 256 bin centres of 8-bit data in [−1, 1] sums to one, and the index-0 term
/// of `vlb_terms` is exactly the decoder NLL.
#[test]
fn decoder_probabilities_sum_to_one_over_256_bins() {
    let dev = Device::Cpu;
    let bins: Vec<f32> = (0..256).map(|k| k as f32 / 127.5 - 1.0).collect();
    let x0 = Tensor::from_vec(bins, (256, 1), &dev).unwrap();
    for (mean, lv) in [(0.0f32, -6.0f32), (0.37, -2.0), (-0.95, -10.0), (0.999, 1.0), (0.5, -12.0)] {
        let p = ReverseGaussian {
            mean: Tensor::full(mean, (256, 1), &dev).unwrap(),
            log_variance: Tensor::full(lv, (256, 1), &dev).unwrap(),
            x0_pred: Tensor::zeros((256, 1), candle_core::DType::F32, &dev).unwrap(),
        };
        let nll = vec1(&decoder_nll(&x0, &p, EIGHT_BIT_LEVELS, Reduction::Sum).unwrap());
        let total: f64 = nll.iter().map(|l| (-l).exp()).sum();
        println!("mean {mean} log σ² {lv}: Σ p = {total:.8}");
        assert!((total - 1.0).abs() < 2e-5, "mean {mean} lv {lv}: {total}");
        let sch = DiffusionSchedule::new(BetaSchedule::linear(), 10).unwrap();
        let terms =
            vec1(&vlb_terms(&sch, &x0, &x0, &[0; 256], &p, EIGHT_BIT_LEVELS, Reduction::Sum).unwrap());
        assert_eq!(terms, nll);
    }
}

/// The decoder for `levels` values sums to one over those values (17 levels: the digits), and for
/// 256 levels it is core's 8-bit decoder.
#[test]
fn decoder_with_other_bit_depths() {
    let dev = Device::Cpu;
    for levels in [2u32, 17, 256, 1024] {
        for (mean, ls) in [(0.0, -3.0), (0.37, -1.0), (-0.9, -5.0), (0.99, 0.5)] {
            let total: f64 = (0..levels)
                .map(|k| {
                    let x = 2.0 * k as f64 / (levels - 1) as f64 - 1.0;
                    discretized_gaussian_log_likelihood_levels_f64(x, mean, ls, levels).unwrap().exp()
                })
                .sum();
            assert!((total - 1.0).abs() < 1e-9, "levels {levels}: {total}");
        }
    }
    let x =
        Tensor::from_vec((0..256).map(|k| k as f32 / 127.5 - 1.0).collect::<Vec<_>>(), 256, &dev).unwrap();
    let m = Tensor::full(0.2f32, 256, &dev).unwrap();
    let ls = Tensor::full(-2.5f32, 256, &dev).unwrap();
    let a = vec1(&discretized_gaussian_log_likelihood_levels(&x, &m, &ls, 256).unwrap());
    let b = vec1(&discretized_gaussian_log_likelihood(&x, &m, &ls).unwrap());
    assert_eq!(a, b);
    let x17 = Tensor::from_vec((0..17).map(|k| k as f32 / 8.0 - 1.0).collect::<Vec<_>>(), 17, &dev).unwrap();
    let m17 = Tensor::full(0.2f32, 17, &dev).unwrap();
    let ls17 = Tensor::full(-2.5f32, 17, &dev).unwrap();
    let t: f64 = vec1(&discretized_gaussian_log_likelihood_levels(&x17, &m17, &ls17, 17).unwrap())
        .iter()
        .map(|l| l.exp())
        .sum();
    assert!((t - 1.0).abs() < 1e-5);
    assert!(discretized_gaussian_log_likelihood_levels(&x17, &m17, &ls17, 1).is_err());
    assert!(discretized_gaussian_log_likelihood_levels_f64(0.0, 0.0, 0.0, 0).is_err());
}

#[test]
fn learned_range_interpolates_between_the_fixed_variances() {
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 100).unwrap();
    let dev = Device::Cpu;
    let like = Tensor::zeros((4, 3), candle_core::DType::F32, &dev).unwrap();
    let idx = [0usize, 1, 50, 99];
    let lv = |mode, v: Option<f32>| {
        let v = v.map(|v| Tensor::full(v, (4, 3), &dev).unwrap());
        vec1(&model_log_variance(&sch, mode, v.as_ref(), &idx, &like).unwrap())
    };
    let small = lv(VarianceMode::BetaTilde, None);
    let large = lv(VarianceMode::Beta, None);
    let up = lv(VarianceMode::LearnedRange, Some(1.0));
    let down = lv(VarianceMode::LearnedRange, Some(-1.0));
    let mid = lv(VarianceMode::LearnedRange, Some(0.0));
    for (r, &i) in idx.iter().enumerate() {
        let j = 3 * r;
        let clipped = if i == 0 { sch.posterior_variance[1] } else { sch.posterior_variance[i] }.ln();
        assert!((small[j] - clipped).abs() < 1e-5);
        assert!((down[j] - clipped).abs() < 1e-5);
        assert!((up[j] - sch.betas[i].ln()).abs() < 1e-5);
        // fixed-large uses β̃_2 at t = 1 as the DDPM code; β_t elsewhere
        let want_large = if i == 0 { clipped } else { sch.betas[i].ln() };
        assert!((large[j] - want_large).abs() < 1e-5);
        assert!((mid[j] - 0.5 * (sch.betas[i].ln() + clipped)).abs() < 1e-5, "geometric mean at v = 0");
    }
}

/// An ε-model that outputs the true ε has μ_θ = μ̃_t, so with σ² = β̃ every KL term is zero and
/// with σ² = β only the variance mismatch remains.
#[test]
fn exact_epsilon_gives_the_variance_only_kl() {
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let dev = Device::Cpu;
    let x0 = NoiseSource::new(5, 0, 8).randn(&[2, 2, 2], &dev).unwrap();
    let eps = NoiseSource::new(6, 0, 8).randn(&[2, 2, 2], &dev).unwrap();
    let idx: Vec<usize> = (1..9).map(|k| k * 100).collect();
    let xt = q_sample(&sch, &x0, &eps, &idx).unwrap();
    for (mode, pred, out) in [
        (VarianceMode::BetaTilde, Prediction::Epsilon, eps.clone()),
        (VarianceMode::Beta, Prediction::Epsilon, eps.clone()),
        (VarianceMode::BetaTilde, Prediction::Sample, x0.clone()),
    ] {
        let p = p_mean_variance(&sch, pred, mode, &out, None, &xt, &idx, None).unwrap();
        let kl = vec1(&kl_term(&sch, &x0, &xt, &idx, &p, Reduction::Mean).unwrap());
        for (b, &i) in idx.iter().enumerate() {
            let (lq, lp) = (sch.posterior_variance[i].ln(), vec1(&p.log_variance)[b * 8]);
            let want = normal_kl_f64(0.0, lq, 0.0, lp);
            assert!((kl[b] - want).abs() < 2e-4, "{mode:?} {pred:?} i={i}: {} vs {want}", kl[b]);
        }
    }
}

/// A stand-in learned-variance model: x̂₀ = 0 in the first half and v = 0.5 in the second.
struct TwoHalves;
impl Denoiser for TwoHalves {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x_t: &Tensor, _t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let z = x_t.zeros_like()?;
        Ok(Tensor::cat(&[&z, &z.affine(0.0, 0.5)?], 1)?)
    }
}

#[test]
fn output_split_and_shape_errors() {
    let dev = Device::Cpu;
    let x = Tensor::ones((2, 3, 4, 4), candle_core::DType::F32, &dev).unwrap();
    let full = TwoHalves.forward(&x, &Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap()).unwrap();
    let (m, v) = split_output(VarianceMode::LearnedRange, &full, &x).unwrap();
    assert_eq!(m.dims(), x.dims());
    assert!(vec1(&m).iter().all(|&a| a == 0.0));
    assert!(vec1(&v.unwrap()).iter().all(|&a| a == 0.5));
    assert!(split_output(VarianceMode::LearnedRange, &x, &x).is_err());
    assert!(split_output(VarianceMode::BetaTilde, &full, &x).is_err());
    let (same, none) = split_output(VarianceMode::Beta, &x, &x).unwrap();
    assert!(none.is_none() && same.dims() == x.dims());
    let wrapped = LearnedVarianceDenoiser::new(TwoHalves);
    let t = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
    assert_eq!(wrapped.forward(&x, &t).unwrap().dims(), x.dims());
    assert_eq!(wrapped.forward_full(&x, &t).unwrap().dims(), &[2, 6, 4, 4]);

    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 10).unwrap();
    let like = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
    assert!(model_log_variance(&sch, VarianceMode::LearnedRange, None, &[1, 2], &like).is_err());
    assert!(model_log_variance(&sch, VarianceMode::Beta, Some(&like), &[1, 2], &like).is_err());
    assert!(model_log_variance(&sch, VarianceMode::BetaTilde, None, &[1, 10], &like).is_err());
    let bad_v = Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap();
    assert!(model_log_variance(&sch, VarianceMode::LearnedRange, Some(&bad_v), &[1, 2], &like).is_err());
    let r = p_mean_variance(
        &sch,
        Prediction::Epsilon,
        VarianceMode::Beta,
        &like,
        None,
        &like,
        &[1, 2],
        Some(f32::NAN),
    );
    assert!(r.is_err());
    let r = p_mean_variance(&sch, Prediction::Epsilon, VarianceMode::Beta, &like, None, &like, &[1], None);
    assert!(r.is_err());
}
