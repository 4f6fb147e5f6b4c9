//! The unified continuous "denoiser view" (k-diffusion style, Karras et al. 2022 §2):
//! a model is a function D(x; σ) ≈ E[x₀ | x₀ + σ·n = x], with x in the VE parametrisation.
//! Its score is ∇log p(x; σ) = (D(x; σ) − x)/σ² (Karras et al. Eq. 3), and any SDE's state
//! x_t = m(t)·x_σ at σ = s(t)/m(t) maps onto it.

use super::error::{ContinuousError, Result};
use candle_core::{DType, Tensor};
use rediffuse_core::sde::Sde;

/// A denoiser in σ-space. `x` is `[B, …]`, `sigma` holds one noise level per sample (length B, > 0).
/// Implementations must build their output from tensor ops on `x` (no detaching) so that
/// likelihood computations can differentiate through them.
pub trait SigmaDenoiser {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor>;
}

impl<T: SigmaDenoiser + ?Sized> SigmaDenoiser for &T {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        (**self).denoise(x, sigma)
    }
}

impl<T: SigmaDenoiser + ?Sized> SigmaDenoiser for Box<T> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        (**self).denoise(x, sigma)
    }
}

/// A `[B, 1, …, 1]` tensor of per-sample values in `like`'s dtype and device.
pub fn per_sample(values: &[f64], like: &Tensor) -> Result<Tensor> {
    let b = like.dim(0)?;
    if values.len() != b {
        return Err(ContinuousError::Shape(format!("{} per-sample values for a batch of {b}", values.len())));
    }
    let mut shape = vec![b];
    shape.extend(std::iter::repeat_n(1, like.rank().saturating_sub(1)));
    let t = Tensor::from_slice(values, shape, like.device())?;
    Ok(if like.dtype() == DType::F64 { t } else { t.to_dtype(like.dtype())? })
}

/// D(x; σ) clamped element-wise to [−limit, limit]: the σ-space form of DDPM/DDIM's x̂₀
/// clipping (diffusers' `clip_sample`), for data known to lie in that range (images in [−1, 1]).
/// Every sampler built on D — ODE, DPM-Solver, UniPC, EDM, and through the score
/// (D − x)/σ² the SDE and Langevin samplers — then sees in-range denoised estimates. It is for
/// sampling only: where it is active its gradient is zero, so likelihoods use the plain model.
#[derive(Debug, Clone)]
pub struct ClampDenoised<M> {
    pub model: M,
    pub limit: f64,
}

impl<M: SigmaDenoiser> SigmaDenoiser for ClampDenoised<M> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        Ok(self.model.denoise(x, sigma)?.clamp(-self.limit, self.limit)?)
    }
}

/// Every sample at the same noise level.
pub fn denoise_at(model: &impl SigmaDenoiser, x: &Tensor, sigma: f64) -> Result<Tensor> {
    model.denoise(x, &vec![sigma; x.dim(0)?])
}

/// VE-space score (D − x)/σ² for per-sample σ.
pub fn score_from_denoised(x: &Tensor, denoised: &Tensor, sigma: &[f64]) -> Result<Tensor> {
    let inv: Vec<f64> = sigma.iter().map(|s| 1.0 / (s * s)).collect();
    Ok(denoised.sub(x)?.broadcast_mul(&per_sample(&inv, x)?)?)
}

/// Score ∇log p_t(x_t) of an SDE's marginal at per-sample times `t`, from a σ-space denoiser:
/// x_σ = x_t/m(t), σ = s(t)/m(t), ∇log p_t(x_t) = (D(x_σ; σ) − x_σ)/(m(t)·σ²).
/// Also returns the denoised D (data space).
pub fn sde_score(model: &impl SigmaDenoiser, sde: &Sde, x_t: &Tensor, t: &[f64]) -> Result<(Tensor, Tensor)> {
    let m: Vec<f64> = t.iter().map(|&t| sde.mean_coef(t)).collect();
    let sig: Vec<f64> = t.iter().map(|&t| sde.sigma(t)).collect();
    let inv_m: Vec<f64> = m.iter().map(|m| 1.0 / m).collect();
    let x_sigma = x_t.broadcast_mul(&per_sample(&inv_m, x_t)?)?;
    let d = model.denoise(&x_sigma, &sig)?;
    let w: Vec<f64> = m.iter().zip(&sig).map(|(m, s)| 1.0 / (m * s * s)).collect();
    let score = d.sub(&x_sigma)?.broadcast_mul(&per_sample(&w, x_t)?)?;
    Ok((score, d))
}
