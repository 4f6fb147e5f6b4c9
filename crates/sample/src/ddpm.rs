//! Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2; seed 004).

use crate::error::{Result, SampleError};
use crate::step::{check_clip, check_init, draw_noise, predict, StepInfo};
use candle_core::Tensor;
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};
use serde::{Deserialize, Serialize};

/// The fixed reverse-process variance σ_t² (DDPM §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DdpmVariance {
    /// σ_t² = β_t (optimal for x₀ ~ N(0, I); "fixed large").
    Beta,
    /// σ_t² = β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t (optimal for a point mass x₀; "fixed small").
    BetaTilde,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DdpmOptions {
    pub variance: DdpmVariance,
    /// Clamp x̂₀ to [−c, c] before forming the posterior mean (DDPM's `clip_denoised`).
    pub clip_x0: Option<f32>,
}

impl Default for DdpmOptions {
    fn default() -> Self {
        Self { variance: DdpmVariance::BetaTilde, clip_x0: None }
    }
}

/// σ_t for schedule index `i`.
pub fn ddpm_sigma(schedule: &DiffusionSchedule, variance: DdpmVariance, i: usize) -> f64 {
    match variance {
        DdpmVariance::Beta => schedule.betas[i].sqrt(),
        DdpmVariance::BetaTilde => schedule.posterior_variance[i].sqrt(),
    }
}

/// DDPM Algorithm 2 from `x_t` (= x_T, `[B, …]`) down to x₀ over all T steps:
/// for i = T−1, …, 0: (x̂₀, ε̂) from the model, optional clipping, then
/// x_{t−1} = μ̃_t(x_t, x̂₀) + σ_t z with μ̃_t = posterior_mean_coef1·x̂₀ + posterior_mean_coef2·x_t
/// (Eq. 7; identical to Eq. 11 for ε-models without clipping), z ~ N(0, I) from `noise`
/// except at the last step (i = 0) where z = 0. `on_step` sees every step.
pub fn ddpm_sample(
    model: &dyn Denoiser,
    schedule: &DiffusionSchedule,
    x_t: Tensor,
    opts: &DdpmOptions,
    noise: &mut NoiseSource,
    mut on_step: Option<&mut dyn FnMut(&StepInfo)>,
) -> Result<Tensor> {
    check_clip(opts.clip_x0)?;
    let mut x = check_init(&x_t, noise)?;
    let n = schedule.len();
    if n == 0 {
        return Err(SampleError::invalid("schedule", "has no timesteps"));
    }
    for (step, i) in (0..n).rev().enumerate() {
        let (x0, _eps) = predict(model, schedule, &x, i, opts.clip_x0)?;
        if let Some(cb) = on_step.as_mut() {
            cb(&StepInfo { step, num_steps: n, t_index: i, x_t: &x, x0_pred: &x0 });
        }
        let mean = x0
            .affine(schedule.posterior_mean_coef1[i], 0.0)?
            .add(&x.affine(schedule.posterior_mean_coef2[i], 0.0)?)?;
        x = if i > 0 {
            let z = draw_noise(noise, &x)?;
            mean.add(&z.affine(ddpm_sigma(schedule, opts.variance, i), 0.0)?)?
        } else {
            mean
        };
    }
    Ok(x)
}
