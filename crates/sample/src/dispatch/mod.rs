//! One entry point for every sampler on every model: [`SamplerSpec`] names a sampler and its
//! options (serde, `kind` tag), [`SampleModel`] bundles the views of one model that the sampler
//! families need, and [`sample`] draws x_T at the right scale and runs the sampler.
//! [`nll_ode`] computes probability-flow log-likelihoods of given points.
//!
//! # Views of a model
//! * a discrete `Denoiser` + `DiffusionSchedule` (DDPM, DDIM): the network itself for DDPM-trained
//!   models, `DiscreteView` over the σ-space model for continuous ones;
//! * a σ-space [`SigmaDenoiser`] (Langevin, DPM-Solver(++), EDM, and through `sde_score` the
//!   SDE/ODE samplers): `DiscreteModel` for DDPM models, `ContinuousModel` / `EdmPrecond` for
//!   continuous ones;
//! * for learned-variance (iDDPM) models, the full `[B, 2C, …]` network output over the same
//!   schedule ([`SampleModel::with_learned_variance`]) for [`SamplerSpec::DdpmLearned`]; the
//!   other views then see only the mean half (`LearnedVarianceDenoiser`);
//! * a [`Frame`]: the SDE the SDE/ODE samplers integrate, their smallest time ε, and the σ range
//!   [σ_min, σ_max] the σ-space samplers cover.
//!
//! # Prior noise
//! x_T = c·z where z ~ N(0, I) comes from `NoiseSource` (first draw of each sample's stream) or from
//! the caller (e.g. an `--init-noise` file of unit-variance values), and c depends on the family:
//! * DDPM, DDIM, DDPM with learned variances: c = 1 (the VP state x_T);
//! * Euler–Maruyama, PC, probability-flow ODE: c = the SDE's prior std (σ_max for VE, 1 for VP/sub-VP);
//! * Langevin: c = σ₁, the first (largest) level;
//! * DPM-Solver(++), UniPC on VP frames: c = √(1 + σ₀²) with σ₀ the first level of the σ grid
//!   (x_T ~ N(0, I) of the VP process, diffusers' `init_noise_sigma = 1`); on other frames and for
//!   Euler, Heun, EDM: c = σ₀ (k-diffusion's `randn·sigmas[0]`, diffusers' Euler/Heun).
//!
//! # σ grids
//! The σ-space samplers run on [`SampleModel::sigma_grid`]: diffusers' choice of training
//! timesteps for discrete-time models (so the same x_T reproduces diffusers' schedulers), uniform
//! in λ (DPM family) or Karras ρ = 7 (Euler, Heun) for continuous-time ones, or whatever
//! [`SampleModel::with_sigma_schedule`] sets; EDM's samplers always use Karras' schedule.
//!
//! So one z file gives consistent starting points for every sampler.

mod model;
mod nll;
mod run;
mod sigmas;
mod spec;

pub use model::{finite_discrete_sigmas, sigma_grid_schedule, Frame, SampleModel};
pub use nll::{nll_ode, NllOptions, NllReport};
pub use run::{sample, OnStep, Progress};
pub use sigmas::{diffusers_timesteps, FinalSigma, GridFamily, SigmaSchedule, DEFAULT_LAMBDA_MIN_CLIPPED};
pub use spec::SamplerSpec;

use crate::continuous::ContinuousError;
use crate::error::SampleError;

/// Errors of [`sample`], [`nll_ode`] and the [`SampleModel`] constructors.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Discrete(#[from] SampleError),
    #[error(transparent)]
    Continuous(#[from] ContinuousError),
    #[error(transparent)]
    Core(#[from] rediffuse_core::CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A sampler option or model description is out of range.
    #[error("invalid `{name}`: {reason}")]
    Invalid { name: &'static str, reason: String },
    /// Initial noise or data of the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

pub type Result<T> = std::result::Result<T, DispatchError>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> DispatchError {
    DispatchError::Invalid { name, reason: reason.into() }
}
