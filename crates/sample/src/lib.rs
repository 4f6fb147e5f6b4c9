//! rediffuse-sample: samplers as free functions over any `Denoiser`.

pub mod continuous;
