//! DDIM sampling on a timestep sub-sequence (Song et al. 2021, Eq. 12 and 16;
//! seed 002 "Accelerating Inference"; diffusers' `DDIMScheduler.step`).

use crate::error::{Result, SampleError};
use crate::step::{check_clip, check_init, draw_noise, predict, StepInfo};
use crate::timesteps::{ddim_timesteps, TimestepSpacing};
use candle_core::Tensor;
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DdimOptions {
    /// Number K of inference steps, 1 ≤ K ≤ T.
    pub steps: usize,
    /// η ≥ 0: 0 is deterministic DDIM, 1 matches DDPM's β̃ variance on the sub-sequence.
    pub eta: f64,
    pub spacing: TimestepSpacing,
    /// Clamp x̂₀ to [−c, c].
    pub clip_x0: Option<f32>,
    /// With `clip_x0`: re-derive ε̂ = (x_t − √ᾱ_t·x̂₀)/√(1 − ᾱ_t) from the clipped x̂₀, as
    /// diffusers' `use_clipped_model_output = True` and as the σ-space samplers do with a clipped
    /// D; `false` (the default, diffusers' default) keeps the model's ε̂.
    #[serde(default)]
    pub clipped_model_output: bool,
    /// Take ᾱ_prev at τ − T/K instead of at the next timestep of the sub-sequence, as diffusers'
    /// `DDIMScheduler.step` does whatever the spacing (the same for leading and trailing; with
    /// linspace its steps then land between the timesteps the model is next evaluated at). For
    /// reproducing diffusers only; default false.
    #[serde(default)]
    pub stride_prev: bool,
}

impl Default for DdimOptions {
    fn default() -> Self {
        Self {
            steps: 50,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        }
    }
}

/// DDIM σ_τ(η) = η·√((1 − ᾱ_prev)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev) (DDIM Eq. 16).
pub fn ddim_sigma(alpha_bar_t: f64, alpha_bar_prev: f64, eta: f64) -> f64 {
    eta * ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)).sqrt() * (1.0 - alpha_bar_t / alpha_bar_prev).sqrt()
}

/// Sample from `x_t` (the initial x_T, `[B, …]`) along the K timesteps of
/// `ddim_timesteps(T, K, spacing)`: at τ with successor τ' (ᾱ_prev = ᾱ_{τ'}, or 1
/// after the last step as diffusers' `set_alpha_to_one = True`),
/// x_{τ'} = √ᾱ_prev·x̂₀ + √(1 − ᾱ_prev − σ²)·ε̂ + σ z  (DDIM Eq. 12),
/// with z ~ N(0, I) from `noise` drawn only where σ > 0.
///
/// ᾱ_prev comes from the next element of the sub-sequence (the paper's τ_{i−1}); for
/// leading/trailing spacings with T divisible by K this is diffusers' `t − T//K`.
pub fn ddim_sample(
    model: &dyn Denoiser,
    schedule: &DiffusionSchedule,
    x_t: Tensor,
    opts: &DdimOptions,
    noise: &mut NoiseSource,
    mut on_step: Option<&mut dyn FnMut(&StepInfo)>,
) -> Result<Tensor> {
    if !opts.eta.is_finite() || opts.eta < 0.0 {
        return Err(SampleError::invalid("eta", format!("must be finite and >= 0, got {}", opts.eta)));
    }
    check_clip(opts.clip_x0)?;
    let timesteps = ddim_timesteps(schedule.len(), opts.steps, opts.spacing)?;
    let mut x = check_init(&x_t, noise)?;
    let k = timesteps.len();
    for (step, &t) in timesteps.iter().enumerate() {
        let ab_t = schedule.alpha_bar[t];
        let ab_prev = if opts.stride_prev {
            let stride = schedule.len() / opts.steps;
            t.checked_sub(stride).map_or(1.0, |p| schedule.alpha_bar[p])
        } else {
            timesteps.get(step + 1).map_or(1.0, |&p| schedule.alpha_bar[p])
        };
        let sigma = ddim_sigma(ab_t, ab_prev, opts.eta);
        let dir_var = 1.0 - ab_prev - sigma * sigma;
        if dir_var < -1e-12 {
            return Err(SampleError::invalid(
                "eta",
                format!("η = {} gives σ² > 1 − ᾱ_prev at timestep {t}; use η ≤ 1", opts.eta),
            ));
        }
        let (x0, mut eps) = predict(model, schedule, &x, t, opts.clip_x0)?;
        if opts.clipped_model_output && opts.clip_x0.is_some() {
            eps = x.sub(&x0.affine(ab_t.sqrt(), 0.0)?)?.affine(1.0 / (1.0 - ab_t).sqrt(), 0.0)?;
        }
        if let Some(cb) = on_step.as_mut() {
            cb(&StepInfo { step, num_steps: k, t_index: t, x_t: &x, x0_pred: &x0 });
        }
        let mut next = x0.affine(ab_prev.sqrt(), 0.0)?.add(&eps.affine(dir_var.max(0.0).sqrt(), 0.0)?)?;
        if sigma > 0.0 {
            next = next.add(&draw_noise(noise, &x)?.affine(sigma, 0.0)?)?;
        }
        x = next;
    }
    Ok(x)
}
