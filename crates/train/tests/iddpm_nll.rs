//! NLL in bits/dim from the full variational bound, on exactly known discretised-Gaussian data.

use candle_core::{Device, Tensor};
use rediffuse_core::analytic::{timestep_indices, GaussianDenoiser};
use rediffuse_core::gaussian::approx_standard_normal_cdf_f64;
use rediffuse_core::vlb::VarianceMode;
use rediffuse_core::{BetaSchedule, Denoiser, DiffusionSchedule, NoiseSource, Prediction};
use rediffuse_train::iddpm::{nll_bits_per_dim, BoundTimesteps, NllOptions, NllResult};

/// Data with L levels x_k = 2k/(L − 1) − 1 and P_k = Φ((x_k + h − m)/s) − Φ((x_k − h − m)/s),
/// h = 1/(L − 1), the end bins open (the discretized decoder's own bins).
fn discretised_gaussian_levels(m: f64, s: f64, levels: usize) -> (Vec<f64>, Vec<f64>) {
    let h = 1.0 / (levels - 1) as f64;
    let xs: Vec<f64> = (0..levels).map(|k| 2.0 * k as f64 * h - 1.0).collect();
    let cdf = |x: f64| approx_standard_normal_cdf_f64((x - m) / s);
    let p = xs
        .iter()
        .enumerate()
        .map(|(k, &x)| {
            let hi = if k == levels - 1 { 1.0 } else { cdf(x + h) };
            let lo = if k == 0 { 0.0 } else { cdf(x - h) };
            hi - lo
        })
        .collect();
    (xs, p)
}

/// 8-bit version of [`discretised_gaussian_levels`].
fn discretised_gaussian(m: f64, s: f64) -> (Vec<f64>, Vec<f64>) {
    discretised_gaussian_levels(m, s, 256)
}

/// Exact reverse process of Gaussian data N(m, s²): the exact x̂₀ and, in a second channel, the
/// v that makes exp(frac·log β + (1 − frac)·log β̃) equal Var(x_{t−1}|x_t) = β̃_t + coef1²·Var(x₀|x_t).
struct OptimalGaussian {
    den: GaussianDenoiser,
    sch: DiffusionSchedule,
    s2: f64,
}

impl Denoiser for OptimalGaussian {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let x0 = self.den.forward(x_t, t)?;
        let idx = timestep_indices(t, x_t.dim(0)?, self.sch.len())?;
        let v: Vec<f32> = idx
            .iter()
            .map(|&i| {
                let ab = self.sch.alpha_bar[i];
                let var_x0 = self.s2 * (1.0 - ab) / (ab * self.s2 + 1.0 - ab);
                let c1 = self.sch.posterior_mean_coef1[i];
                let target = (self.sch.posterior_variance[i] + c1 * c1 * var_x0).ln();
                let (lo, hi) = (self.sch.posterior_log_variance_clipped[i], self.sch.betas[i].ln());
                (2.0 * (target - lo) / (hi - lo) - 1.0) as f32
            })
            .collect();
        let v = Tensor::from_vec(v, (idx.len(), 1), x_t.device())?;
        Ok(Tensor::cat(&[&x0, &v], 1)?)
    }
}

/// A fixed-variance model exposed as a learned one with a constant v.
struct ConstV<'a>(&'a GaussianDenoiser, f32);
impl Denoiser for ConstV<'_> {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let x0 = self.0.forward(x_t, t)?;
        Ok(Tensor::cat(&[&x0, &x0.ones_like()?.affine(self.1 as f64, 0.0)?], 1)?)
    }
}

/// Every bin `reps` times: `[256·reps, 1]`.
fn all_bins(xs: &[f64], reps: usize) -> Tensor {
    replicated(xs, &vec![reps; xs.len()])
}

/// Bin k repeated `reps[k]` times: `[Σ reps, 1]`.
fn replicated(xs: &[f64], reps: &[usize]) -> Tensor {
    let v: Vec<f32> = xs.iter().zip(reps).flat_map(|(&x, &r)| std::iter::repeat_n(x as f32, r)).collect();
    let n = v.len();
    Tensor::from_vec(v, (n, 1), &Device::Cpu).unwrap()
}

/// Stratified replicas: about `total`·P_k draws of bin k, at least 2.
fn allocation(p: &[f64], total: usize) -> Vec<usize> {
    p.iter().map(|q| ((q * total as f64).round() as usize).max(2)).collect()
}

/// E_P[bound] = Σ_k P_k·mean(bound of bin k) and its standard error, from per-sample bounds of
/// bin k repeated `reps[k]` times.
fn expected_bound(r: &NllResult, p: &[f64], reps: &[usize]) -> (f64, f64) {
    let (mut e, mut var, mut start) = (0.0, 0.0, 0);
    for (pk, &rk) in p.iter().zip(reps) {
        let vals = &r.bits_per_dim[start..start + rk];
        start += rk;
        let m = vals.iter().sum::<f64>() / rk as f64;
        let v = vals.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (rk - 1) as f64;
        e += pk * m;
        var += pk * pk * v / rk as f64;
    }
    (e, var.sqrt())
}

/// The bound property E_P[−ELBO] ≥ H(P) for data that are exactly a discretised Gaussian (8-bit,
/// and 17 levels like the digits). For 8-bit data the exact reverse process of the continuous
/// Gaussian (mean and learned variance) is near-tight: its bins (2/255) are narrower than the
/// smallest noise level (√β₁ = 0.01). With 17 levels (bins of 0.125) the continuous model
/// mismatches the discrete posterior wherever the noise is below the bin width, and the bound
/// stays well above H (a dequantisation gap a network can only remove by learning the levels).
/// Fixed σ² = β̃ is looser in both cases.
#[test]
fn bound_is_above_the_true_nll_and_close_to_it() {
    for (levels, max_gap) in [(256usize, Some(0.05)), (17, None)] {
        let (m, s) = (0.1, 0.3);
        let (xs, p) = discretised_gaussian_levels(m, s, levels);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let entropy_bits =
            -p.iter().filter(|&&q| q > 0.0).map(|q| q * q.ln()).sum::<f64>() / std::f64::consts::LN_2;
        let mean: f64 = xs.iter().zip(&p).map(|(x, q)| x * q).sum();
        let var: f64 = xs.iter().zip(&p).map(|(x, q)| (x - mean).powi(2) * q).sum();
        let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
        let den = GaussianDenoiser::new(vec![mean], vec![vec![var]], &sch).unwrap();
        let opts = NllOptions { timesteps: BoundTimesteps::All, clip_x0: None, levels: levels as u32 };
        let optimal = OptimalGaussian { den: den.clone(), sch: sch.clone(), s2: var };
        let reps_l = allocation(&p, 16_000);
        let x0 = replicated(&xs, &reps_l);
        let mut noise = NoiseSource::new(3, 0, x0.dim(0).unwrap());
        let learned =
            nll_bits_per_dim(&optimal, VarianceMode::LearnedRange, &sch, &x0, &mut noise, &opts).unwrap();
        let reps_f = allocation(&p, 2_000);
        let x0 = replicated(&xs, &reps_f);
        let mut noise = NoiseSource::new(4, 0, x0.dim(0).unwrap());
        let fixed = nll_bits_per_dim(&den, VarianceMode::BetaTilde, &sch, &x0, &mut noise, &opts).unwrap();
        assert!(learned.exact && learned.terms.len() == 1000);
        let (e_l, se_l) = expected_bound(&learned, &p, &reps_l);
        let (e_f, se_f) = expected_bound(&fixed, &p, &reps_f);
        println!("{levels} levels: true NLL H(P) = {entropy_bits:.5} bits/dim");
        println!(
            "  bound, exact mean + learned variance: {e_l:.5} ± {se_l:.5} (gap {:.5})",
            e_l - entropy_bits
        );
        println!(
            "  bound, exact mean + σ² = β̃:          {e_f:.5} ± {se_f:.5} (gap {:.5})",
            e_f - entropy_bits
        );
        let sm = learned.summary();
        println!("  L0 = {:.5}, prior = {:.2e}", sm.decoder_bits_per_dim, sm.prior_bits_per_dim);
        assert!(e_l > entropy_bits - 3.0 * se_l, "bound property violated: {e_l} < {entropy_bits}");
        assert!(e_f > entropy_bits - 3.0 * se_f);
        if let Some(g) = max_gap {
            assert!(e_l - entropy_bits < g, "the exact reverse process should be within {g} bit of H");
        }
        assert!(e_f > e_l + 3.0 * (se_f + se_l), "σ² = β̃ is a looser bound than the exact variance");
    }
}

/// Learned range with v ≡ −1 is the fixed σ² = β̃ model; the per-sample bound agrees under the
/// same noise, term by term.
#[test]
fn learned_v_minus_one_equals_fixed_beta_tilde() {
    let sch = DiffusionSchedule::new(BetaSchedule::cosine(), 100).unwrap();
    let den = GaussianDenoiser::new(vec![0.0, 0.2], vec![vec![0.3, 0.1], vec![0.1, 0.2]], &sch).unwrap();
    let vals: Vec<f32> = (0..16).map(|k| ((k * 37) % 256) as f32 / 127.5 - 1.0).collect();
    let x0 = Tensor::from_vec(vals, (8, 2), &Device::Cpu).unwrap();
    let opts = NllOptions::default();
    let a = nll_bits_per_dim(
        &ConstV(&den, -1.0),
        VarianceMode::LearnedRange,
        &sch,
        &x0,
        &mut NoiseSource::new(1, 0, 8),
        &opts,
    )
    .unwrap();
    let b = nll_bits_per_dim(&den, VarianceMode::BetaTilde, &sch, &x0, &mut NoiseSource::new(1, 0, 8), &opts)
        .unwrap();
    for (x, y) in a.bits_per_dim.iter().zip(&b.bits_per_dim) {
        assert!((x - y).abs() < 1e-5 * y.abs(), "{x} vs {y}");
    }
    for (x, y) in a.terms.iter().zip(&b.terms) {
        assert!((x.sum - y.sum).abs() < 1e-5 * y.sum.abs().max(1e-3));
    }
    // v ≡ +1 is σ² = β_t on every KL term (t > 1)
    let c = nll_bits_per_dim(
        &ConstV(&den, 1.0),
        VarianceMode::LearnedRange,
        &sch,
        &x0,
        &mut NoiseSource::new(1, 0, 8),
        &opts,
    )
    .unwrap();
    let d =
        nll_bits_per_dim(&den, VarianceMode::Beta, &sch, &x0, &mut NoiseSource::new(1, 0, 8), &opts).unwrap();
    for (x, y) in c.terms.iter().zip(&d.terms).skip(1) {
        assert!((x.sum - y.sum).abs() < 1e-5 * y.sum.abs().max(1e-3), "index {}", x.index);
    }
}

/// Per-sample noise streams: two half batches merged equal the whole batch; the CSV lists all
/// T terms and the prior, and Σ weight·term + prior reproduces the mean bound.
#[test]
fn batching_merge_and_terms_file() {
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 50).unwrap();
    let den = GaussianDenoiser::new(vec![0.1], vec![vec![0.2]], &sch).unwrap();
    let vals: Vec<f32> = (0..8).map(|k| (k * 30) as f32 / 127.5 - 1.0).collect();
    let x0 = Tensor::from_vec(vals, (8, 1), &Device::Cpu).unwrap();
    let opts = NllOptions::default();
    let whole =
        nll_bits_per_dim(&den, VarianceMode::Beta, &sch, &x0, &mut NoiseSource::new(9, 0, 8), &opts).unwrap();
    let mut parts = nll_bits_per_dim(
        &den,
        VarianceMode::Beta,
        &sch,
        &x0.narrow(0, 0, 3).unwrap(),
        &mut NoiseSource::new(9, 0, 3),
        &opts,
    )
    .unwrap();
    let rest = nll_bits_per_dim(
        &den,
        VarianceMode::Beta,
        &sch,
        &x0.narrow(0, 3, 5).unwrap(),
        &mut NoiseSource::new(9, 3, 5),
        &opts,
    )
    .unwrap();
    parts.merge(rest).unwrap();
    assert_eq!(parts.len(), 8);
    for (a, b) in parts.bits_per_dim.iter().zip(&whole.bits_per_dim) {
        assert!((a - b).abs() < 1e-9 * b.abs(), "{a} vs {b}");
    }
    let s = parts.summary();
    assert!((s.bits_per_dim - whole.mean_bits_per_dim()).abs() < 1e-9);
    assert!(s.standard_error > 0.0 && s.exact && s.n == 8);

    let dir = std::env::temp_dir().join(format!("rediffuse-nll-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("terms.csv");
    whole.write_terms_csv(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "index,t,term,weight,mean_bits_per_dim,std_bits_per_dim");
    assert_eq!(lines.len(), 1 + 50 + 1);
    assert!(lines[1].starts_with("0,1,L0,1,") && lines[51].starts_with("50,51,L_T,1,"));
    let total: f64 = lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[3].parse::<f64>().unwrap() * f[4].parse::<f64>().unwrap()
        })
        .sum();
    assert!((total - whole.mean_bits_per_dim()).abs() < 1e-6, "{total} vs {}", whole.mean_bits_per_dim());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The stratified mode is marked approximate, evaluates the first block exactly and one index per
/// later block, and is unbiased: its average over index draws matches the exact bound.
#[test]
fn stratified_mode_is_an_unbiased_approximation() {
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 200).unwrap();
    let den = GaussianDenoiser::new(vec![0.0], vec![vec![0.25]], &sch).unwrap();
    let (xs, _) = discretised_gaussian(0.0, 0.5);
    let x0 = all_bins(&xs[64..192], 16);
    let n = x0.dim(0).unwrap();
    let run = |timesteps, seed| {
        let opts = NllOptions { timesteps, clip_x0: Some(1.0), levels: 256 };
        nll_bits_per_dim(&den, VarianceMode::BetaTilde, &sch, &x0, &mut NoiseSource::new(seed, 0, n), &opts)
            .unwrap()
    };
    let exact = run(BoundTimesteps::All, 100);
    let first = run(BoundTimesteps::Stratified { every: 10, seed: 0 }, 0);
    assert!(!first.exact);
    let idx: Vec<usize> = first.terms.iter().map(|t| t.index).collect();
    // indices 0..10 exactly, then one index from each of the 19 blocks [10k, 10k + 10)
    assert_eq!(idx.len(), 10 + 19);
    assert_eq!(idx[..10], (0..10).collect::<Vec<_>>()[..]);
    for (k, &i) in idx[10..].iter().enumerate() {
        assert!((10 * (k + 1)..10 * (k + 2)).contains(&i), "block {k}: {i}");
    }
    assert_eq!(first.terms.iter().map(|t| t.weight).sum::<usize>(), 200);
    let estimates: Vec<f64> = (0..32u64)
        .map(|s| run(BoundTimesteps::Stratified { every: 10, seed: s }, 1000 + s).mean_bits_per_dim())
        .collect();
    let m = estimates.iter().sum::<f64>() / 32.0;
    let sd = (estimates.iter().map(|e| (e - m).powi(2)).sum::<f64>() / 31.0).sqrt();
    let se = (sd * sd / 32.0 + exact.standard_error().powi(2)).sqrt();
    let e = exact.mean_bits_per_dim();
    println!(
        "exact {e:.4} ± {:.4}; stratified(10) over 32 draws {m:.4} ± {:.4} (single-draw sd {sd:.3})",
        exact.standard_error(),
        sd / 32f64.sqrt()
    );
    assert!((m - e).abs() < 4.0 * se, "{m} vs {e} (se {se})");
    assert!(run(BoundTimesteps::Stratified { every: 1, seed: 3 }, 0).exact);
    let opts = NllOptions {
        timesteps: BoundTimesteps::Stratified { every: 0, seed: 0 },
        clip_x0: None,
        levels: 256,
    };
    assert!(nll_bits_per_dim(
        &den,
        VarianceMode::BetaTilde,
        &sch,
        &x0,
        &mut NoiseSource::new(2, 0, n),
        &opts
    )
    .is_err());
}

#[test]
fn invalid_inputs_are_errors() {
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 10).unwrap();
    let den = GaussianDenoiser::new(vec![0.0], vec![vec![0.25]], &sch).unwrap();
    let opts = NllOptions::default();
    let run = |x: &[f32], mode, n: usize| {
        let t = Tensor::from_slice(x, (x.len(), 1), &Device::Cpu).unwrap();
        nll_bits_per_dim(&den, mode, &sch, &t, &mut NoiseSource::new(0, 0, n), &opts)
    };
    assert!(
        run(&[128.0 / 127.5 - 1.0], VarianceMode::Beta, 1).is_ok(),
        "1/255 lies on the 8-bit grid (k = 128)"
    );
    assert!(run(&[0.5], VarianceMode::Beta, 1).is_err(), "off the 8-bit grid");
    assert!(run(&[1.5], VarianceMode::Beta, 1).is_err(), "outside [−1, 1]");
    assert!(run(&[f32::NAN], VarianceMode::Beta, 1).is_err());
    assert!(run(&[1.0, -1.0], VarianceMode::Beta, 3).is_err(), "noise source of another batch size");
    assert!(run(&[1.0], VarianceMode::LearnedRange, 1).is_err(), "C-channel output for a learned variance");
    // 0.5 is the 13th of 17 levels (digits scaled as v/16·2 − 1)
    let x = Tensor::from_slice(&[0.5f32, -0.875], (2, 1), &Device::Cpu).unwrap();
    let o17 = NllOptions { levels: 17, ..NllOptions::default() };
    assert!(
        nll_bits_per_dim(&den, VarianceMode::Beta, &sch, &x, &mut NoiseSource::new(0, 0, 2), &o17).is_ok()
    );
    let o1 = NllOptions { levels: 1, ..NllOptions::default() };
    assert!(
        nll_bits_per_dim(&den, VarianceMode::Beta, &sch, &x, &mut NoiseSource::new(0, 0, 2), &o1).is_err()
    );
}
