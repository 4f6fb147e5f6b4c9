//! The iDDPM training objective for a learned-variance network (seed 002 "iDDPM": "Objective:
//! L_simple + λ·L_vlb, λ = 10⁻³; in L_vlb, μ_θ stops gradient").

use super::config::{IddpmConfig, IddpmObjective};
use crate::error::{Result, TrainError};
use candle_core::Tensor;
use rediffuse_core::loss::l_simple_per_sample;
use rediffuse_core::vlb::{p_mean_variance, split_output, vlb_terms, Reduction, VarianceMode};
use rediffuse_core::{DiffusionSchedule, Prediction};

/// Per-sample parts of the iDDPM objective, each `[B]`.
#[derive(Debug, Clone)]
pub struct IddpmLoss {
    /// The loss to minimise (after weighting by importance weights, see [`weighted_mean`]).
    pub loss: Tensor,
    /// L_simple of the mean half (DDPM Eq. 14 on the target of `prediction`).
    pub l_simple: Tensor,
    /// The bound term L_t of each sample's timestep (L₀ at index 0, else the KL L_{t−1}),
    /// in bits/dim, unscaled; for `Hybrid` it carries gradient only to the variance half.
    pub vlb: Tensor,
}

/// iDDPM's per-sample loss from a network output `[B, 2C, …]` (mean half of kind `prediction`,
/// then v; see [`rediffuse_core::vlb::VarianceMode::LearnedRange`]) at x_t = q_sample(x₀, ε, t).
///
/// * `Hybrid`: loss = L_simple + λ·T·L_t, with L_t computed from the *detached* mean half
///   (stop-gradient on μ_θ), so the mean is trained by L_simple only and v by the bound only.
///   T·L_t is the single-sample estimate of L_vlb = Σ_t L_t for uniform t (iDDPM code: `vb·T/1000`).
/// * `Vlb`: loss = T·L_t with gradient to both halves.
#[allow(clippy::too_many_arguments)]
pub fn iddpm_loss(
    config: &IddpmConfig,
    schedule: &DiffusionSchedule,
    prediction: Prediction,
    net_output: &Tensor,
    x0: &Tensor,
    eps: &Tensor,
    x_t: &Tensor,
    t_idx: &[usize],
) -> Result<IddpmLoss> {
    config.validate()?;
    if x0.dims() != x_t.dims() || eps.dims() != x_t.dims() || t_idx.len() != x_t.dim(0)? {
        return Err(TrainError::Data(format!(
            "x0 {:?}, eps {:?}, x_t {:?} and {} timesteps disagree",
            x0.dims(),
            eps.dims(),
            x_t.dims(),
            t_idx.len()
        )));
    }
    let (mean_out, v) = split_output(VarianceMode::LearnedRange, net_output, x_t)?;
    let l_simple = l_simple_per_sample(schedule, prediction, &mean_out, x0, eps, t_idx)?;
    let frozen = match config.objective {
        IddpmObjective::Hybrid => mean_out.detach(),
        IddpmObjective::Vlb => mean_out,
    };
    let p = p_mean_variance(
        schedule,
        prediction,
        VarianceMode::LearnedRange,
        &frozen,
        v.as_ref(),
        x_t,
        t_idx,
        None,
    )?;
    let vlb = vlb_terms(schedule, x0, x_t, t_idx, &p, config.data_levels, Reduction::Mean)?
        .affine(1.0 / std::f64::consts::LN_2, 0.0)?;
    let t = schedule.len() as f64;
    let loss = match config.objective {
        IddpmObjective::Hybrid => l_simple.add(&vlb.affine(config.lambda_vlb * t, 0.0)?)?,
        IddpmObjective::Vlb => vlb.affine(t, 0.0)?,
    };
    Ok(IddpmLoss { loss, l_simple, vlb })
}

/// mean_b(weights[b]·loss[b]): the batch loss with importance weights 1/(T·p_t).
pub fn weighted_mean(loss: &Tensor, weights: &[f32]) -> Result<Tensor> {
    if loss.dims() != [weights.len()] {
        return Err(TrainError::Data(format!("loss {:?} but {} weights", loss.dims(), weights.len())));
    }
    let w = Tensor::from_slice(weights, weights.len(), loss.device())?.to_dtype(loss.dtype())?;
    Ok(loss.mul(&w)?.mean_all()?)
}
