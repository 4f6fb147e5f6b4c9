//! rediffuse-core: the innermost layer. Pure f64 schedule math, the
//! `Denoiser` abstraction, prediction-kind conversions, seeded noise, and
//! the per-element loss/likelihood formulas of the DDPM paper.
//!
//! Nothing here depends on networks, samplers, training or the CLI.

pub mod analytic;
pub mod assignment;
pub mod degradation;
pub mod denoiser;
pub mod error;
pub mod flow;
pub mod gaussian;
pub mod guidance;
pub mod loss;
pub mod noise;
pub mod prediction;
pub mod schedule;
pub mod sde;
pub mod superres;
pub mod tensor_util;
pub mod vlb;

pub use denoiser::Denoiser;
pub use error::{CoreError, Result};
pub use guidance::ClassifierFreeGuidance;
pub use noise::NoiseSource;
pub use prediction::Prediction;
pub use schedule::{BetaSchedule, DiffusionSchedule};
