//! Metrics against closed forms and statistical properties.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rediffuse_eval::{
    energy_distance, energy_distance_tensor, median_heuristic, mmd_rbf, mmd_rbf_multi, mmd_rbf_tensor,
    sliced_wasserstein, sliced_wasserstein_tensor, wasserstein2_sq_1d, EvalError,
};

/// `n` rows of N(mean, sd² I) in `mean.len()` dimensions, row-major.
fn gaussian(n: usize, mean: &[f64], sd: f64, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .flat_map(|_| mean.iter().map(|m| m + sd * rng.sample::<f64, _>(StandardNormal)).collect::<Vec<_>>())
        .collect()
}

/// Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn phi(x: f64) -> f64 {
    let z = x.abs() / 2f64.sqrt();
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly =
        t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[test]
fn w2_1d_exact_on_small_sets() {
    // Quantile steps: a = {0 on [0,1/2), 1 on [1/2,1)}, b = {0, 1, 2 on thirds}:
    // (0-1)² on [1/3,1/2) + (1-2)² on [2/3,1) = 1/6 + 1/3.
    assert!((wasserstein2_sq_1d(&[1.0, 0.0], &[2.0, 0.0, 1.0]).unwrap() - 0.5).abs() < 1e-15);
    let a = [0.3, -1.2, 4.0, 2.2];
    let shifted: Vec<f64> = a.iter().map(|v| v + 0.7).collect();
    assert!((wasserstein2_sq_1d(&a, &shifted).unwrap() - 0.49).abs() < 1e-12);
    // Repeating every point k times leaves the empirical measure unchanged.
    let rep: Vec<f64> = a.iter().flat_map(|&v| [v, v, v]).collect();
    assert!(wasserstein2_sq_1d(&a, &rep).unwrap().abs() < 1e-15);
}

#[test]
fn sw_1d_gaussians_closed_form() {
    // W₂²(N(0,1), N(1,2²)) = Δμ² + Δσ² = 1 + 1, with unequal sample sizes.
    let x = gaussian(20_000, &[0.0], 1.0, 1);
    let y = gaussian(15_000, &[1.0], 2.0, 2);
    let sw = sliced_wasserstein(&x, &y, 1, 10, 0).unwrap();
    assert!((sw - 2.0).abs() < 0.06, "sw = {sw}");
}

#[test]
fn sw_isotropic_gaussians_closed_form() {
    // θ uniform on S²: W₂² of projections = (θ·Δμ)² + (1-σ)², E(θ·Δμ)² = |Δμ|²/d.
    let x = gaussian(5000, &[0.0, 0.0, 0.0], 1.0, 3);
    let y = gaussian(4000, &[2.0, 0.0, 0.0], 1.5, 4);
    let sw = sliced_wasserstein(&x, &y, 3, 2000, 7).unwrap();
    let expected = 4.0 / 3.0 + 0.25;
    assert!((sw - expected).abs() < 0.1, "sw = {sw}, expected {expected}");
}

#[test]
fn sw_properties() {
    let x = gaussian(500, &[0.0, 0.0], 1.0, 5);
    let y = gaussian(300, &[0.5, -0.5], 1.0, 6);
    assert_eq!(sliced_wasserstein(&x, &x, 2, 50, 1).unwrap(), 0.0);
    let a = sliced_wasserstein(&x, &y, 2, 50, 1).unwrap();
    assert_eq!(a, sliced_wasserstein(&x, &y, 2, 50, 1).unwrap(), "deterministic per seed");
    assert_ne!(a, sliced_wasserstein(&x, &y, 2, 50, 2).unwrap(), "seed changes directions");
    // Homogeneity: SW₂²(cX, cY) = c² SW₂²(X, Y) for the same directions.
    let sx: Vec<f64> = x.iter().map(|v| 3.0 * v).collect();
    let sy: Vec<f64> = y.iter().map(|v| 3.0 * v).collect();
    assert!((sliced_wasserstein(&sx, &sy, 2, 50, 1).unwrap() - 9.0 * a).abs() < 1e-9 * a);
    // Symmetry.
    assert!((sliced_wasserstein(&y, &x, 2, 50, 1).unwrap() - a).abs() < 1e-12);
}

#[test]
fn energy_distance_point_masses() {
    let x: Vec<f64> = [1.0, 2.0].repeat(10);
    let y: Vec<f64> = [4.0, 6.0].repeat(7);
    let e = energy_distance(&x, &y, 2).unwrap();
    assert!((e - 2.0 * 5.0).abs() < 1e-12, "e = {e}");
}

#[test]
fn energy_distance_gaussian_shift_closed_form() {
    // X ~ N(0,1), Y ~ N(μ,1): E|X-X'| = 2/√π; X-Y ~ N(-μ, 2): E|Z| = s√(2/π) e^{-μ²/2s²} + μ(1 - 2Φ(-μ/s)).
    let mu = 1.0;
    let s = 2f64.sqrt();
    let e_xy = s * (2.0 / std::f64::consts::PI).sqrt() * (-mu * mu / (2.0 * s * s)).exp()
        + mu * (1.0 - 2.0 * phi(-mu / s));
    let e_xx = 2.0 / std::f64::consts::PI.sqrt();
    let expected = 2.0 * e_xy - 2.0 * e_xx;
    let x = gaussian(3000, &[0.0], 1.0, 10);
    let y = gaussian(3000, &[mu], 1.0, 11);
    let e = energy_distance(&x, &y, 1).unwrap();
    assert!((e - expected).abs() < 0.03, "e = {e}, expected {expected}");
    // Same distribution: near zero.
    let z = gaussian(3000, &[0.0], 1.0, 12);
    assert!(energy_distance(&x, &z, 1).unwrap().abs() < 0.01);
}

#[test]
fn mmd_gaussian_closed_form() {
    // N(0, I₂) vs N(Δ, I₂), bandwidth h: with c = (h²/(h²+2))^{d/2},
    // MMD² = 2c (1 − exp(−|Δ|² / (2(h² + 2)))).
    let x = gaussian(3000, &[0.0, 0.0], 1.0, 20);
    let y = gaussian(3000, &[1.0, 0.0], 1.0, 21);
    let r = mmd_rbf(&x, &y, 2, Some(1.0)).unwrap();
    let expected = 2.0 / 3.0 * (1.0 - (-1.0f64 / 6.0).exp());
    assert_eq!(r.bandwidth, 1.0);
    assert!((r.value - expected).abs() < 0.01, "mmd² = {}, expected {expected}", r.value);
}

#[test]
fn mmd_identical_sets_and_unbiasedness() {
    let x = gaussian(400, &[0.0, 0.0], 1.0, 30);
    let n = 400.0;
    let same = mmd_rbf(&x, &x, 2, Some(1.0)).unwrap().value;
    // Identical sets: MMD²_u = 2S/(n²(n−1)) − 2/n with S ≤ n(n−1), so −2/n ≤ value ≤ 0.
    assert!((-2.0 / n..=0.0).contains(&same), "{same}");
    // Mean over independent same-distribution pairs is 0 within 3 standard errors.
    let vals: Vec<f64> = (0..60)
        .map(|k| {
            let a = gaussian(150, &[0.0, 0.0], 1.0, 1000 + 2 * k);
            let b = gaussian(150, &[0.0, 0.0], 1.0, 1001 + 2 * k);
            mmd_rbf(&a, &b, 2, Some(1.0)).unwrap().value
        })
        .collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (vals.len() - 1) as f64).sqrt();
    let se = sd / (vals.len() as f64).sqrt();
    // The biased (V-statistic) estimator would be off by ≈ 2(1 − E k)/n = 2(1 − 1/3)/150 ≈ 0.009.
    assert!(mean.abs() < 3.0 * se && 3.0 * se < 0.004, "mean {mean}, se {se}");
}

#[test]
fn mmd_increases_with_shift_and_multi_is_linear() {
    let x = gaussian(800, &[0.0, 0.0], 1.0, 40);
    let vals: Vec<f64> = [0.25, 0.5, 1.0, 2.0]
        .iter()
        .map(|&s| mmd_rbf(&x, &gaussian(800, &[s, 0.0], 1.0, 41), 2, Some(1.0)).unwrap().value)
        .collect();
    assert!(vals.windows(2).all(|w| w[0] < w[1]), "{vals:?}");
    let y = gaussian(600, &[0.5, 0.5], 1.2, 42);
    let multi = mmd_rbf_multi(&x, &y, 2, &[0.5, 2.0]).unwrap();
    let single = mmd_rbf(&x, &y, 2, Some(0.5)).unwrap().value + mmd_rbf(&x, &y, 2, Some(2.0)).unwrap().value;
    assert!((multi - single).abs() < 1e-12, "{multi} vs {single}");
    let auto = mmd_rbf(&x, &y, 2, None).unwrap();
    assert_eq!(auto.bandwidth, median_heuristic(&x, &y, 2).unwrap());
}

#[test]
fn median_heuristic_exact() {
    // Pooled {0, 1, 3}: distances 1, 3, 2 -> median 2.
    assert_eq!(median_heuristic(&[0.0, 1.0], &[3.0], 1).unwrap(), 2.0);
    assert!(matches!(median_heuristic(&[1.0, 1.0], &[1.0], 1), Err(EvalError::DegenerateBandwidth)));
}

#[test]
fn tensor_wrappers_match_slices() {
    let dev = Device::Cpu;
    let x = gaussian(200, &[0.0, 0.0, 0.0, 0.0], 1.0, 50);
    let y = gaussian(150, &[0.3, 0.0, 0.0, 0.0], 1.0, 51);
    // [N, 2, 2] tensors flatten to rows of dimension 4.
    let tx = Tensor::from_slice(&x, (200, 2, 2), &dev).unwrap();
    let ty = Tensor::from_slice(&y, (150, 2, 2), &dev).unwrap();
    assert_eq!(
        sliced_wasserstein_tensor(&tx, &ty, 20, 3).unwrap(),
        sliced_wasserstein(&x, &y, 4, 20, 3).unwrap()
    );
    assert_eq!(mmd_rbf_tensor(&tx, &ty, None).unwrap(), mmd_rbf(&x, &y, 4, None).unwrap());
    assert_eq!(energy_distance_tensor(&tx, &ty).unwrap(), energy_distance(&x, &y, 4).unwrap());
    let bad = Tensor::zeros((10, 4), candle_core::DType::F32, &dev).unwrap();
    assert!(matches!(energy_distance_tensor(&tx, &bad), Err(EvalError::Shape(_))));
}

#[test]
fn invalid_inputs_are_typed_errors() {
    let x = [0.0, 1.0, 2.0, 3.0];
    assert!(matches!(sliced_wasserstein(&x, &x, 0, 10, 0), Err(EvalError::InvalidParameter { .. })));
    assert!(matches!(sliced_wasserstein(&x, &x[..3], 2, 10, 0), Err(EvalError::Shape(_))));
    assert!(matches!(sliced_wasserstein(&x, &x, 2, 0, 0), Err(EvalError::InvalidParameter { .. })));
    assert!(matches!(sliced_wasserstein(&x, &[], 2, 5, 0), Err(EvalError::Shape(_))));
    assert!(matches!(
        sliced_wasserstein(&x, &[0.0, f64::NAN], 2, 5, 0),
        Err(EvalError::NonFinite { which: "y", row: 0 })
    ));
    assert!(matches!(mmd_rbf(&x, &x, 2, Some(-1.0)), Err(EvalError::InvalidParameter { .. })));
    assert!(matches!(mmd_rbf(&x, &x, 2, Some(f64::NAN)), Err(EvalError::InvalidParameter { .. })));
    assert!(matches!(mmd_rbf(&x, &x[..2], 2, Some(1.0)), Err(EvalError::Shape(_))));
    assert!(matches!(mmd_rbf_multi(&x, &x, 2, &[]), Err(EvalError::InvalidParameter { .. })));
    assert!(matches!(energy_distance(&x[..2], &x, 2), Err(EvalError::Shape(_))));
    assert!(matches!(
        energy_distance(&[f64::INFINITY, 0.0, 1.0, 1.0], &x, 2),
        Err(EvalError::NonFinite { .. })
    ));
}
