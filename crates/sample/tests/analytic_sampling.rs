//! Sampling with the empirical and mixture denoisers.

mod common;

use common::{init, linear};
use rediffuse_core::analytic::{EmpiricalDenoiser, GmmDenoiser, GmmSpec};
use rediffuse_sample::{ddim_sample, ddpm_sample, DdimOptions, DdpmOptions, DdpmVariance, TimestepSpacing};

const POINTS: [[f64; 2]; 5] = [[0.0, 0.0], [1.0, 1.0], [-1.0, 0.5], [0.5, -1.0], [2.0, -0.5]];

fn nearest_distances(x: &candle_core::Tensor) -> Vec<f64> {
    let rows: Vec<Vec<f32>> = x.to_vec2().unwrap();
    rows.iter()
        .map(|r| {
            POINTS
                .iter()
                .map(|p| ((r[0] as f64 - p[0]).powi(2) + (r[1] as f64 - p[1]).powi(2)).sqrt())
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

#[test]
fn empirical_denoiser_samples_land_on_training_points() {
    let s = linear(1000);
    let pts: Vec<Vec<f64>> = POINTS.iter().map(|p| p.to_vec()).collect();
    let den = EmpiricalDenoiser::from_samples(&pts, &s).unwrap();
    let n = 2000;
    for (steps, spacing) in [(50, TimestepSpacing::Leading), (100, TimestepSpacing::Trailing)] {
        let (x, mut noise) = init(5, n, &[2]);
        let opts = DdimOptions {
            steps,
            eta: 0.0,
            spacing,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        };
        let out = ddim_sample(&den, &s, x, &opts, &mut noise, None).unwrap();
        let d = nearest_distances(&out);
        let close = d.iter().filter(|&&v| v < 1e-2).count() as f64 / n as f64;
        println!("DDIM {steps} {spacing:?}: fraction within 1e-2 of a training point = {close}");
        assert!(close >= 0.99, "{close}");
    }
    // DDPM (β̃) with the same denoiser also memorises.
    let (x, mut noise) = init(6, 500, &[2]);
    let opts = DdpmOptions { variance: DdpmVariance::BetaTilde, clip_x0: None };
    let out = ddpm_sample(&den, &s, x, &opts, &mut noise, None).unwrap();
    let close = nearest_distances(&out).iter().filter(|&&v| v < 1e-2).count() as f64 / 500.0;
    println!("DDPM: fraction within 1e-2 = {close}");
    assert!(close >= 0.99, "{close}");
}

#[test]
fn gmm_sampling_recovers_mixture_weights() {
    let s = linear(1000);
    let spec = GmmSpec::from_json_str(
        r#"{"weights": [0.3, 0.7], "means": [[-2, 0], [2, 0.5]], "stds": [0.3, 0.5]}"#,
    )
    .unwrap();
    let den = GmmDenoiser::new(&spec, &s).unwrap();
    let n = 4000usize;
    // 4.5 standard errors of a proportion: 4.5·√(0.21/4000) ≈ 0.033.
    let tol = 4.5 * (0.21f64 / n as f64).sqrt();
    for eta in [0.0, 1.0] {
        let (x, mut noise) = init(9, n, &[2]);
        let opts = DdimOptions {
            steps: 100,
            eta,
            spacing: TimestepSpacing::Trailing,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        };
        let out = ddim_sample(&den, &s, x, &opts, &mut noise, None).unwrap();
        let rows: Vec<Vec<f32>> = out.to_vec2().unwrap();
        let first: Vec<&Vec<f32>> = rows.iter().filter(|r| r[0] < 0.0).collect();
        let frac = first.len() as f64 / n as f64;
        // Spread of the first component's x-coordinate ≈ its std 0.3.
        let m = first.iter().map(|r| r[0] as f64).sum::<f64>() / first.len() as f64;
        let sd = (first.iter().map(|r| (r[0] as f64 - m).powi(2)).sum::<f64>() / first.len() as f64).sqrt();
        println!("GMM eta={eta}: weight of component 0 = {frac:.4}, its mean x {m:.4}, std {sd:.4}");
        assert!((frac - 0.3).abs() < tol, "eta {eta}: {frac}");
        assert!((m + 2.0).abs() < 0.05, "eta {eta}: mean {m}");
        assert!((sd - 0.3).abs() < 0.05, "eta {eta}: std {sd}");
    }
}
