//! rediffuse-sample: samplers as free functions over any `Denoiser`.
//!
//! Discrete-time samplers: [`ddpm_sample`] (DDPM Algorithm 2) and [`ddim_sample`]
//! (DDIM on a timestep sub-sequence chosen by [`ddim_timesteps`]). The caller
//! creates x_T (e.g. `noise.randn(sample_shape, device)`) and passes the same
//! `NoiseSource` for the per-step noise, so every sample is independent of batching.

pub mod cold;
pub mod continuous;
pub mod ddim;
pub mod ddpm;
pub mod dispatch;
pub mod error;
pub mod interpolate;
pub mod learned_variance;
pub mod repaint;
pub mod step;
pub mod timesteps;

pub use ddim::{ddim_sample, ddim_sigma, DdimOptions};
pub use ddpm::{ddpm_sample, ddpm_sigma, DdpmOptions, DdpmVariance};
pub use dispatch::{
    finite_discrete_sigmas, nll_ode, sample, sigma_grid_schedule, DispatchError, Frame, NllOptions,
    NllReport, Progress, SampleModel, SamplerSpec,
};
pub use error::SampleError;
pub use interpolate::slerp;
pub use learned_variance::{
    learned_variance_sample, respace, space_timesteps, LearnedVarianceOptions, RespacedSchedule,
};
pub use repaint::{repaint_sample, repaint_timesteps, RePaintOptions};
pub use step::StepInfo;
pub use timesteps::{ddim_timesteps, TimestepSpacing};
