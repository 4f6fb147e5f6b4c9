//! Continuous-time samplers (SDE, probability-flow ODE, DPM-Solver, EDM) over the σ-space
//! denoiser view, adapters from `rediffuse_core::Denoiser`, exact likelihoods and training losses.

pub mod adapters;
pub mod agreement;
pub mod analytic;
pub mod consistency;
pub mod dpm_solver;
pub mod edm;
pub mod error;
pub mod flow;
pub mod langevin;
pub mod likelihood;
pub mod losses;
pub mod ode;
pub mod rk45;
pub mod sde_samplers;
pub mod stats;
pub mod unipc;
pub mod view;

pub use adapters::{AnalyticSigma, ContinuousModel, DiscreteModel, DiscreteView, EdmPrecond, TimeInput};
pub use agreement::{median, r_squared};
pub use analytic::{DiscreteGaussianEps, GaussianData};
pub use consistency::{consistency_sample, ConsistencyParams, ConsistencyPrecond};
pub use dpm_solver::{
    dpm_solver, dpm_solver_singlestep, dpmpp_multistep, dpmpp_multistep_with, lambda_uniform_sigmas,
    singlestep_orders, DpmAlgorithm,
};
pub use edm::{edm_heun, edm_stochastic, euler, EdmChurn};
pub use error::{ContinuousError, Result};
pub use flow::{straightness, FlowModel, FLOW_TIME_SCALE, FLOW_T_EPS};
pub use langevin::{annealed_langevin, AnnealedLangevin};
pub use likelihood::{
    bits_per_dim, nll_bits_per_dim, ode_log_likelihood, Divergence, LikelihoodOptions, LikelihoodOutput,
    Probe,
};
pub use ode::{ode_fixed_step, ode_rk45, pf_drift, OdeMethod};
pub use rk45::{solve_rk45, Rk45Options, Rk45Stats};
pub use sde_samplers::{
    euler_maruyama, pc_sample, reverse_diffusion, time_grid, Corrector, PcConfig, Predictor, SnrNorms,
};
pub use stats::{Callback, SampleStats, StepInfo};
pub use unipc::{unipc_multistep, UniPcOptions, UniPcVariant};
pub use view::{denoise_at, score_from_denoised, sde_score, ClampDenoised, SigmaDenoiser};
