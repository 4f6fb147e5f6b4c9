//! The two calls a training step makes for iDDPM: draw timesteps (uniform, or from the importance
//! sampler) and turn the network output into the batch loss, updating the sampler's history.

use super::config::IddpmConfig;
use super::importance::ImportanceSampler;
use super::loss::{iddpm_loss, weighted_mean, IddpmLoss};
use crate::error::{Result, TrainError};
use candle_core::{DType, Tensor};
use rand::Rng;
use rediffuse_core::{DiffusionSchedule, Prediction};

/// The importance sampler `config` asks for (None when `importance_sampling` is off).
pub fn new_sampler(config: &IddpmConfig, timesteps: usize) -> Result<Option<ImportanceSampler>> {
    Ok(if config.importance_sampling {
        Some(ImportanceSampler::from_config(config, timesteps)?)
    } else {
        None
    })
}

/// `batch` timestep indices and their loss weights: from `sampler` when given, otherwise
/// t ~ U{0, …, T−1} drawn as `rng.random_range(0..T)` (the DDPM trainer's draw) with weights 1.
pub fn draw_timesteps<R: Rng + ?Sized>(
    sampler: Option<&ImportanceSampler>,
    rng: &mut R,
    batch: usize,
    timesteps: usize,
) -> (Vec<usize>, Vec<f32>) {
    match sampler {
        Some(s) => s.sample_t(rng, batch),
        None => ((0..batch).map(|_| rng.random_range(0..timesteps)).collect(), vec![1.0; batch]),
    }
}

/// The scalar batch loss mean_b(w_b·loss_b) of [`iddpm_loss`] for timesteps `t_idx` with weights
/// `weights` (from [`draw_timesteps`]), and the per-sample parts. When `sampler` is given, the
/// unweighted per-sample losses are read back and added to its history (iDDPM updates with the
/// loss being optimised).
#[allow(clippy::too_many_arguments)]
pub fn batch_loss(
    config: &IddpmConfig,
    sampler: Option<&mut ImportanceSampler>,
    schedule: &DiffusionSchedule,
    prediction: Prediction,
    net_output: &Tensor,
    x0: &Tensor,
    eps: &Tensor,
    x_t: &Tensor,
    t_idx: &[usize],
    weights: &[f32],
) -> Result<(Tensor, IddpmLoss)> {
    if weights.len() != t_idx.len() {
        return Err(TrainError::Data(format!("{} timesteps but {} weights", t_idx.len(), weights.len())));
    }
    let parts = iddpm_loss(config, schedule, prediction, net_output, x0, eps, x_t, t_idx)?;
    let loss = weighted_mean(&parts.loss, weights)?;
    if let Some(s) = sampler {
        let per_sample: Vec<f64> = parts.loss.detach().to_dtype(DType::F64)?.to_vec1()?;
        s.update(t_idx, &per_sample)?;
    }
    Ok((loss, parts))
}
