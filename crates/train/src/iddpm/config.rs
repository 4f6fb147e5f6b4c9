//! Hyper-parameters of iDDPM training.

use crate::error::{Result, TrainError};
use rediffuse_core::vlb::EIGHT_BIT_LEVELS;
use serde::{Deserialize, Serialize};

/// Which objective the learned-variance network is trained with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IddpmObjective {
    /// L_hybrid = L_simple + λ·L_vlb with a stop-gradient on μ_θ inside L_vlb (iDDPM §3.1).
    #[default]
    Hybrid,
    /// L_vlb alone (iDDPM §3.3; best NLL, usually with importance sampling). μ_θ is trained by it.
    Vlb,
}

fn default_lambda_vlb() -> f64 {
    1e-3
}
fn default_history_per_term() -> usize {
    10
}
fn default_uniform_prob() -> f64 {
    1e-3
}
fn default_data_levels() -> u32 {
    EIGHT_BIT_LEVELS
}

/// iDDPM options of a run (e.g. the `[method.iddpm]` table of a config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IddpmConfig {
    /// λ of L_hybrid (iDDPM: 1e-3). L_vlb = T·L_t (bits/dim) for the sampled t.
    #[serde(default = "default_lambda_vlb")]
    pub lambda_vlb: f64,
    #[serde(default)]
    pub objective: IddpmObjective,
    /// Sample t with p_t ∝ √E[L_t²] (iDDPM §3.3) instead of uniformly.
    #[serde(default)]
    pub importance_sampling: bool,
    /// Losses remembered per timestep; p_t stays uniform until every t has this many (iDDPM: 10).
    #[serde(default = "default_history_per_term")]
    pub history_per_term: usize,
    /// Probability mass spread uniformly over all t once warmed up (iDDPM code: 0.001), so that
    /// no timestep gets p_t = 0.
    #[serde(default = "default_uniform_prob")]
    pub uniform_prob: f64,
    /// Number of values of the data in [−1, 1] for the decoder term L₀ (256 for 8-bit images,
    /// 17 for scikit-learn's digits scaled as v/16·2 − 1).
    #[serde(default = "default_data_levels")]
    pub data_levels: u32,
}

impl Default for IddpmConfig {
    fn default() -> Self {
        Self {
            lambda_vlb: default_lambda_vlb(),
            objective: IddpmObjective::Hybrid,
            importance_sampling: false,
            history_per_term: default_history_per_term(),
            uniform_prob: default_uniform_prob(),
            data_levels: default_data_levels(),
        }
    }
}

impl IddpmConfig {
    /// Check every value; errors name the field (prefix `iddpm.`).
    pub fn validate(&self) -> Result<()> {
        if !self.lambda_vlb.is_finite() || self.lambda_vlb < 0.0 {
            return Err(TrainError::invalid(
                "iddpm.lambda_vlb",
                format!("must be finite and >= 0, got {}", self.lambda_vlb),
            ));
        }
        if self.history_per_term == 0 {
            return Err(TrainError::invalid("iddpm.history_per_term", "must be >= 1"));
        }
        if !self.uniform_prob.is_finite() || !(0.0..1.0).contains(&self.uniform_prob) {
            return Err(TrainError::invalid(
                "iddpm.uniform_prob",
                format!("must lie in [0, 1), got {}", self.uniform_prob),
            ));
        }
        if self.data_levels < 2 {
            return Err(TrainError::invalid("iddpm.data_levels", "must be >= 2"));
        }
        Ok(())
    }
}
