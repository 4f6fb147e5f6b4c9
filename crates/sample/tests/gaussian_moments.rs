//! With the exact denoiser of N(μ, Σ), DDPM and DDIM outputs are checked against
//! (a) the exact law of the discretised sampler (linear-Gaussian propagation in
//! f64, within Monte-Carlo error) and (b) the data distribution itself.

mod common;

use candle_core::Tensor;
use common::{exact_law, init, linear, moments_2d, AffineStep, M2};
use rediffuse_core::analytic::GaussianDenoiser;
use rediffuse_core::DiffusionSchedule;
use rediffuse_sample::{
    ddim_sample, ddim_timesteps, ddpm_sample, DdimOptions, DdpmOptions, DdpmVariance, StepInfo,
    TimestepSpacing,
};

const MU: [f64; 2] = [1.0, -0.5];
const SIGMA: M2 = [[1.0, 0.6], [0.6, 0.5]];
const N: usize = 20_000;

fn denoiser(s: &DiffusionSchedule) -> GaussianDenoiser {
    GaussianDenoiser::new(MU.to_vec(), vec![SIGMA[0].to_vec(), SIGMA[1].to_vec()], s).unwrap()
}

/// |got − want| within `z` standard errors of N draws from N(·, c):
/// SE(mean_i) = √(c_ii/N), SE(cov_ij) = √((c_ii c_jj + c_ij²)/N).
fn assert_moments(label: &str, got: &([f64; 2], M2), want: &([f64; 2], M2), c: &M2, z: f64) {
    let n = N as f64;
    for i in 0..2 {
        let tol = z * (c[i][i] / n).sqrt();
        assert!(
            (got.0[i] - want.0[i]).abs() < tol,
            "{label}: mean[{i}] {} vs {} (tol {tol})",
            got.0[i],
            want.0[i]
        );
        for j in 0..2 {
            let tol = z * ((c[i][i] * c[j][j] + c[i][j].powi(2)) / n).sqrt();
            let (g, w) = (got.1[i][j], want.1[i][j]);
            assert!((g - w).abs() < tol, "{label}: cov[{i}][{j}] {g} vs {w} (tol {tol})");
        }
    }
}

/// Largest relative deviation of the covariance entries from Σ.
fn rel_cov_err(c: &M2) -> f64 {
    let mut worst = 0.0f64;
    for i in 0..2 {
        for j in 0..2 {
            worst = worst.max((c[i][j] - SIGMA[i][j]).abs() / SIGMA[i][j].abs());
        }
    }
    worst
}

fn run_check(label: &str, s: &DiffusionSchedule, out: &Tensor, steps: &[AffineStep], max_bias: f64) {
    let got = moments_2d(out);
    let law = exact_law(s, MU, SIGMA, steps);
    let bias = rel_cov_err(&law.1);
    println!(
        "{label}: sample mean {:?} cov {:?}; exact law mean {:?} cov {:?}; bias {bias:.4}",
        got.0, got.1, law.0, law.1
    );
    // Sampler implements its own law (4.5 standard errors).
    assert_moments(label, &got, &law, &law.1, 4.5);
    // Its law is close to the data: mean and covariance within `max_bias` relative.
    let mean_err = (law.0[0] - MU[0]).abs().max((law.0[1] - MU[1]).abs() / 0.5);
    assert!(mean_err < max_bias, "{label}: mean {:?}", law.0);
    assert!(bias < max_bias, "{label}: covariance bias {bias}");
    // And the samples are close to the data within sampling error plus that bias.
    let data = (MU, SIGMA);
    assert_moments(label, &got, &data, &SIGMA, 4.5 + bias * (N as f64).sqrt() / 0.5f64.sqrt());
}

#[test]
fn ddpm_both_variances_reproduce_gaussian() {
    let s = linear(1000);
    let g = denoiser(&s);
    for variance in [DdpmVariance::BetaTilde, DdpmVariance::Beta] {
        let (x, mut noise) = init(1, N, &[2]);
        let opts = DdpmOptions { variance, clip_x0: None };
        let out = ddpm_sample(&g, &s, x, &opts, &mut noise, None).unwrap();
        let steps: Vec<AffineStep> = (0..1000)
            .rev()
            .map(|i| {
                let var = match variance {
                    DdpmVariance::Beta => s.betas[i],
                    DdpmVariance::BetaTilde => s.posterior_variance[i],
                };
                AffineStep {
                    t: i,
                    alpha: s.posterior_mean_coef1[i],
                    beta: s.posterior_mean_coef2[i],
                    sigma: if i > 0 { var.sqrt() } else { 0.0 },
                }
            })
            .collect();
        // 1000-step DDPM: the exact law is within 2% of Σ (β̃: −1.0%).
        run_check(&format!("ddpm {variance:?}"), &s, &out, &steps, 0.02);
    }
}

#[test]
fn ddim_eta0_and_eta1_reproduce_gaussian() {
    let s = linear(1000);
    let g = denoiser(&s);
    // Discretisation bias of 50 steps on this Σ (smallest eigenvalue 0.1):
    // η = 0 loses ≈ 8% of the covariance, η = 1 ≈ 15%.
    for (eta, max_bias) in [(0.0, 0.09), (1.0, 0.18)] {
        let (x, mut noise) = init(2, N, &[2]);
        let opts = DdimOptions {
            steps: 50,
            eta,
            spacing: TimestepSpacing::Leading,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        };
        let mut count = 0usize;
        let mut last_t = usize::MAX;
        let mut cb = |info: &StepInfo| {
            assert_eq!((info.step, info.num_steps), (count, 50));
            assert!(info.t_index < last_t);
            assert_eq!(info.x0_pred.dims(), info.x_t.dims());
            last_t = info.t_index;
            count += 1;
        };
        let out = ddim_sample(&g, &s, x, &opts, &mut noise, Some(&mut cb)).unwrap();
        assert_eq!(count, 50);
        let ts = ddim_timesteps(1000, 50, TimestepSpacing::Leading).unwrap();
        let steps: Vec<AffineStep> = ts
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                let ab = s.alpha_bar[t];
                let abp = ts.get(j + 1).map_or(1.0, |&p| s.alpha_bar[p]);
                let sig = eta * ((1.0 - abp) / (1.0 - ab) * (1.0 - ab / abp)).sqrt();
                let d = (1.0 - abp - sig * sig).max(0.0).sqrt();
                // √ᾱ_p x̂₀ + d (x − a x̂₀)/s + σ z
                AffineStep {
                    t,
                    alpha: abp.sqrt() - d * ab.sqrt() / (1.0 - ab).sqrt(),
                    beta: d / (1.0 - ab).sqrt(),
                    sigma: sig,
                }
            })
            .collect();
        run_check(&format!("ddim eta={eta}"), &s, &out, &steps, max_bias);
    }
}

#[test]
fn ddim_converges_to_data_with_more_steps() {
    // Exact law only (no sampling): the η = 0 bias shrinks as K grows.
    let s = linear(1000);
    let mut prev = f64::INFINITY;
    for k in [10usize, 50, 200, 1000] {
        let ts = ddim_timesteps(1000, k, TimestepSpacing::Trailing).unwrap();
        let steps: Vec<AffineStep> = ts
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                let (ab, abp) = (s.alpha_bar[t], ts.get(j + 1).map_or(1.0, |&p| s.alpha_bar[p]));
                let d = (1.0 - abp).sqrt();
                AffineStep {
                    t,
                    alpha: abp.sqrt() - d * ab.sqrt() / (1.0 - ab).sqrt(),
                    beta: d / (1.0 - ab).sqrt(),
                    sigma: 0.0,
                }
            })
            .collect();
        let bias = rel_cov_err(&exact_law(&s, MU, SIGMA, &steps).1);
        println!("K={k}: bias {bias:.4}");
        assert!(bias < prev);
        prev = bias;
    }
    assert!(prev < 0.015);
}
