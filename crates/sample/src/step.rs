//! Pieces shared by the discrete-time samplers: progress information, input
//! checks and the model call returning (x̂₀, ε̂).

use crate::error::{Result, SampleError};
use candle_core::Tensor;
use rediffuse_core::prediction::to_x0_eps;
use rediffuse_core::tensor_util::{scalar_like, timesteps_tensor, to_f32};
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};

/// What a sampler reports at each step (progress bars, denoising strips).
#[derive(Debug, Clone, Copy)]
pub struct StepInfo<'a> {
    /// 0-based position in the sampling loop.
    pub step: usize,
    /// Total number of steps of the loop.
    pub num_steps: usize,
    /// Schedule index i of this step (paper's t = i + 1).
    pub t_index: usize,
    /// The noisy batch x_t entering this step.
    pub x_t: &'a Tensor,
    /// The model's x̂₀ at this step (after optional clipping).
    pub x0_pred: &'a Tensor,
}

/// Validate the initial batch against the noise source and return it as f32.
pub(crate) fn check_init(x_t: &Tensor, noise: &NoiseSource) -> Result<Tensor> {
    if x_t.rank() < 1 || x_t.dim(0)? == 0 {
        return Err(SampleError::Shape(format!(
            "initial sample must be a non-empty [B, …] batch, got {:?}",
            x_t.dims()
        )));
    }
    if x_t.dim(0)? != noise.len() {
        return Err(SampleError::Shape(format!(
            "initial sample has batch {} but the noise source serves {} samples",
            x_t.dim(0)?,
            noise.len()
        )));
    }
    Ok(to_f32(x_t)?)
}

pub(crate) fn check_clip(clip_x0: Option<f32>) -> Result<()> {
    if let Some(c) = clip_x0 {
        if !c.is_finite() || c <= 0.0 {
            return Err(SampleError::invalid("clip_x0", format!("must be finite and > 0, got {c}")));
        }
    }
    Ok(())
}

/// Run `model` on the whole batch at schedule index `idx` and express its output
/// as (x̂₀, ε̂) via core's `to_x0_eps`; x̂₀ is clamped to ±`clip_x0` if given
/// (ε̂ stays the unclipped one, as diffusers' `use_clipped_model_output=False`).
pub(crate) fn predict(
    model: &dyn Denoiser,
    schedule: &DiffusionSchedule,
    x: &Tensor,
    idx: usize,
    clip_x0: Option<f32>,
) -> Result<(Tensor, Tensor)> {
    let b = x.dim(0)?;
    let t = timesteps_tensor(&vec![idx; b], x.device())?;
    let out = model.forward(x, &t)?;
    if out.dims() != x.dims() {
        return Err(SampleError::Shape(format!(
            "model output {:?} differs from input {:?}",
            out.dims(),
            x.dims()
        )));
    }
    let out = to_f32(&out)?;
    let a = scalar_like(schedule.sqrt_alpha_bar[idx], b, x.rank(), x.device())?;
    let s = scalar_like(schedule.sqrt_one_minus_alpha_bar[idx], b, x.rank(), x.device())?;
    let (x0, eps) = to_x0_eps(model.prediction(), &out, x, &a, &s)?;
    let x0 = match clip_x0 {
        Some(c) => x0.clamp(-c, c)?,
        None => x0,
    };
    Ok((x0, eps))
}

/// Per-sample N(0, I) noise shaped like `x`, drawn from `noise`.
pub(crate) fn draw_noise(noise: &mut NoiseSource, x: &Tensor) -> Result<Tensor> {
    Ok(noise.randn(&x.dims()[1..], x.device())?)
}
