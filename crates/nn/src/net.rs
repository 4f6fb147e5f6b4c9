//! The interface every trainable diffusion network implements.

use candle_core::{Result, Tensor};

/// A network f_θ(x_t, t) (optionally class-conditioned) whose output has the
/// shape of `x_t` (or twice its channels for learned-variance models).
///
/// * `x_t`: `[B, …]` f32; `t`: `[B]` f32 model time (timestep index for DDPM models).
/// * `train`: dropout and other train-only behaviour on.
pub trait DiffusionNet: Send + Sync {
    fn forward(&self, x_t: &Tensor, t: &Tensor, train: bool) -> Result<Tensor>;
}
