//! EDM samplers (Karras et al. 2022): deterministic Heun (Algorithm 1) and the stochastic
//! sampler with churn (Algorithm 2), on D(x; σ) with x in σ-space.

use super::error::{check_sigmas, non_negative, Result};
use super::langevin::check_batch;
use super::stats::{notify, Callback, SampleStats};
use super::view::{denoise_at, SigmaDenoiser};
use candle_core::Tensor;
use rediffuse_core::NoiseSource;
use serde::{Deserialize, Serialize};

/// Algorithm 2's stochasticity parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EdmChurn {
    pub s_churn: f64,
    pub s_tmin: f64,
    pub s_tmax: f64,
    pub s_noise: f64,
}

impl Default for EdmChurn {
    /// S_churn = 0 (deterministic), S_tmin = 0, S_tmax = ∞, S_noise = 1.
    fn default() -> Self {
        Self { s_churn: 0.0, s_tmin: 0.0, s_tmax: f64::INFINITY, s_noise: 1.0 }
    }
}

/// One Heun step from (x, σ) to σ_next with derivative d = (x − D)/σ; second-order correction
/// unless σ_next = 0 (Algorithm 1 lines 4–8). Returns (x_next, nfe).
fn heun_step(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    d: &Tensor,
    sigma: f64,
    sigma_next: f64,
) -> Result<(Tensor, usize)> {
    let h = sigma_next - sigma;
    let x_euler = x.add(&d.affine(h, 0.0)?)?;
    if sigma_next == 0.0 {
        return Ok((x_euler, 0));
    }
    let den = denoise_at(model, &x_euler, sigma_next)?;
    let d2 = x_euler.sub(&den)?.affine(1.0 / sigma_next, 0.0)?;
    Ok((x.add(&d.add(&d2)?.affine(0.5 * h, 0.0)?)?, 1))
}

/// Algorithm 1: deterministic Heun over σ₀ > … > σ_N = 0 (e.g. `karras_sigmas`), NFE = 2N − 1.
/// `x` is x₀ ~ N(0, σ₀²I).
pub fn edm_heun(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    sigmas: &[f64],
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    check_sigmas(sigmas)?;
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    for (i, w) in sigmas.windows(2).enumerate() {
        let den = denoise_at(model, &x, w[0])?;
        let d = x.sub(&den)?.affine(1.0 / w[0], 0.0)?;
        let (xn, extra) = heun_step(model, &x, &d, w[0], w[1])?;
        stats.nfe += 1 + extra;
        stats.steps += 1;
        x = xn;
        notify(&mut callback, i + 1, w[1], &x, Some(&den));
    }
    Ok((x, stats))
}

/// Euler steps of the probability-flow ODE dx/dσ = (x − D(x; σ))/σ over σ₀ > … > σ_N (k-diffusion's
/// `sample_euler` without churn; diffusers' `EulerDiscreteScheduler`), NFE = N.
pub fn euler(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    sigmas: &[f64],
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    check_sigmas(sigmas)?;
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    for (i, w) in sigmas.windows(2).enumerate() {
        let den = denoise_at(model, &x, w[0])?;
        let d = x.sub(&den)?.affine(1.0 / w[0], 0.0)?;
        x = x.add(&d.affine(w[1] - w[0], 0.0)?)?;
        stats.nfe += 1;
        stats.steps += 1;
        notify(&mut callback, i + 1, w[1], &x, Some(&den));
    }
    Ok((x, stats))
}

/// Algorithm 2: stochastic sampler. At each step with σ_i ∈ [S_tmin, S_tmax],
/// γ = min(S_churn/N, √2 − 1), σ̂ = σ_i(1 + γ), x̂ = x + √(σ̂² − σ_i²)·S_noise·ε, then a Heun step σ̂ → σ_{i+1}.
pub fn edm_stochastic(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    sigmas: &[f64],
    churn: &EdmChurn,
    noise: &mut NoiseSource,
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    check_sigmas(sigmas)?;
    non_negative("s_churn", churn.s_churn)?;
    non_negative("s_tmin", churn.s_tmin)?;
    non_negative("s_noise", churn.s_noise)?;
    if churn.s_tmax.is_nan() || churn.s_tmax < churn.s_tmin {
        return Err(super::error::ContinuousError::invalid("s_tmax", "must be >= s_tmin"));
    }
    check_batch(x, noise)?;
    let shape = x.dims()[1..].to_vec();
    let n = (sigmas.len() - 1) as f64;
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    for (i, w) in sigmas.windows(2).enumerate() {
        let sigma = w[0];
        let gamma = if sigma >= churn.s_tmin && sigma <= churn.s_tmax {
            (churn.s_churn / n).min(std::f64::consts::SQRT_2 - 1.0)
        } else {
            0.0
        };
        let sigma_hat = sigma * (1.0 + gamma);
        // Draw every step so the noise stream position does not depend on γ.
        let eps = noise.randn(&shape, x.device())?.to_dtype(x.dtype())?;
        let x_hat = if gamma > 0.0 {
            x.add(&eps.affine((sigma_hat * sigma_hat - sigma * sigma).sqrt() * churn.s_noise, 0.0)?)?
        } else {
            x.clone()
        };
        let den = denoise_at(model, &x_hat, sigma_hat)?;
        let d = x_hat.sub(&den)?.affine(1.0 / sigma_hat, 0.0)?;
        let (xn, extra) = heun_step(model, &x_hat, &d, sigma_hat, w[1])?;
        stats.nfe += 1 + extra;
        stats.steps += 1;
        x = xn;
        notify(&mut callback, i + 1, w[1], &x, Some(&den));
    }
    Ok((x, stats))
}
