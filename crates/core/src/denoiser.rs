//! The one abstraction every sampler runs on.

use crate::error::{CoreError, Result};
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

    /// The prediction given class labels `labels` (`[B]` u32 in `0..=num_classes`, the last
    /// index being the null label of classifier-free guidance). `None` is [`Denoiser::forward`]
    /// (the null label for a class-conditional model); labels on an unconditional model are an
    /// error (the default).
    fn forward_with_labels(&self, x_t: &Tensor, t: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        match labels {
            None => self.forward(x_t, t),
            Some(_) => Err(CoreError::invalid("labels", "the model is not class-conditional")),
        }
    }

    /// Number of classes of a class-conditional model (`None`: unconditional).
    fn num_classes(&self) -> Option<usize> {
        None
    }
}

impl<D: Denoiser + ?Sized> Denoiser for &D {
    fn prediction(&self) -> Prediction {
        (**self).prediction()
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        (**self).forward(x_t, t)
    }
    fn forward_with_labels(&self, x_t: &Tensor, t: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        (**self).forward_with_labels(x_t, t, labels)
    }
    fn num_classes(&self) -> Option<usize> {
        (**self).num_classes()
    }
}

impl<D: Denoiser + ?Sized> Denoiser for Box<D> {
    fn prediction(&self) -> Prediction {
        (**self).prediction()
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        (**self).forward(x_t, t)
    }
    fn forward_with_labels(&self, x_t: &Tensor, t: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        (**self).forward_with_labels(x_t, t, labels)
    }
    fn num_classes(&self) -> Option<usize> {
        (**self).num_classes()
    }
}
