//! Improved DDPM (Nichol & Dhariwal 2021; seed 002 "iDDPM", seed 000 "Improved DDPM"):
//! learned reverse variances trained with the hybrid objective L_simple + λ·L_vlb,
//! importance sampling of timesteps, and the exact variational bound as NLL in bits/dim
//! (DDPM Eq. 5 with the discretized decoder Eq. 13; seed 004 §6, §10.4).
//!
//! The pieces are pure functions and a small serialisable sampler state, called by the trainer:
//! * [`iddpm_loss`]: per-sample hybrid (or pure-VLB) loss from a `[B, 2C, …]` network output;
//! * [`ImportanceSampler`]: t ~ p_t ∝ √E[L_t²] over the last 10 losses of each t, with weights 1/(T·p_t);
//! * [`draw_timesteps`] / [`batch_loss`]: the two calls of a training step;
//! * [`nll_bits_per_dim`]: the full bound over all T terms for a batch of 8-bit data in [−1, 1].

pub mod config;
pub mod importance;
pub mod loss;
pub mod nll;
pub mod step;

pub use config::{IddpmConfig, IddpmObjective};
pub use importance::ImportanceSampler;
pub use loss::{iddpm_loss, weighted_mean, IddpmLoss};
pub use nll::{nll_bits_per_dim, BoundTimesteps, NllOptions, NllResult, NllSummary, TermStats};
pub use step::{batch_loss, draw_timesteps, new_sampler};
