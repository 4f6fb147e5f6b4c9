//! Continuous-time SDE math (VE, VP, sub-VP), NCSN noise levels, EDM preconditioning and the
//! σ-space view of discrete DDPM schedules. All f64.

pub mod discrete;
pub mod edm;
pub mod ncsn;
pub mod process;

pub use discrete::{alpha_bar_from_sigma, DiscreteSigmas};
pub use edm::{karras_sigmas, nested_karras_sigmas, EdmConfig};
pub use ncsn::{geometric_sigmas, langevin_step_size};
pub use process::{betas_from_alpha_bar, Sde};
