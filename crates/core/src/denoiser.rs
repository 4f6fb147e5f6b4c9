//! The one abstraction every sampler runs on.

use crate::error::Result;
use crate::prediction::Prediction;
use candle_core::Tensor;

/// A model (trained network, analytic formula, or a wrapper around either)
/// that maps a noisy batch `x_t` at model time `t` to a prediction.
///
/// * `x_t`: `[B, …]` f32.
/// * `t`: `[B]` f32 in the model's own time units. For discrete (DDPM-family)
///   models this is the timestep index `i ∈ {0, …, T−1}` (paper's t = i + 1);
///   fractional values are allowed where a model interpolates.
///
/// The output has the shape of `x_t` and the meaning given by [`Denoiser::prediction`].
pub trait Denoiser {
    fn prediction(&self) -> Prediction;
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor>;
}

impl<D: Denoiser + ?Sized> Denoiser for &D {
    fn prediction(&self) -> Prediction {
        (**self).prediction()
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        (**self).forward(x_t, t)
    }
}

impl<D: Denoiser + ?Sized> Denoiser for Box<D> {
    fn prediction(&self) -> Prediction {
        (**self).prediction()
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        (**self).forward(x_t, t)
    }
}
