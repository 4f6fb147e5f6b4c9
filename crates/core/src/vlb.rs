//! The variational bound of a discrete diffusion, term by term (DDPM Eq. 5; seed 004 §6.2),
//! for a reverse process p_θ(x_{t−1}|x_t) = N(μ_θ, Σ_θ) whose variance is fixed (β_t or β̃_t)
//! or learned as in iDDPM (seed 002, "iDDPM", improvement 1):
//! Σ_θ = exp(v·log β_t + (1 − v)·log β̃_t) with v = (v_net + 1)/2 from the second half of the
//! network output.
//!
//! Index convention as [`DiffusionSchedule`]: index `i` is the paper's t = i + 1, so index 0
//! carries L₀ = −log p_θ(x₀|x₁) and index `i > 0` carries L_{t−1} = KL(q(x_{t−1}|x_t, x₀) ‖ p_θ).
//! All terms are in nats, per sample (`[B]`), reduced over the data dimensions by [`Reduction`].

use crate::denoiser::Denoiser;
use crate::error::{CoreError, Result};
use crate::gaussian::{approx_standard_normal_cdf, approx_standard_normal_cdf_f64, normal_kl};
use crate::prediction::{to_x0_eps, Prediction};
use crate::schedule::DiffusionSchedule;
use crate::tensor_util::{gather_coef, mean_flat, sum_flat};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// The variance Σ_θ = σ_t²·I of p_θ(x_{t−1}|x_t).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VarianceMode {
    /// σ_t² = β_t ("fixed large", DDPM §3.2). As in the DDPM/iDDPM code, the log-variance at
    /// t = 1 uses β̃_2 instead of β_1 (it only enters the decoder L₀).
    Beta,
    /// σ_t² = β̃_t ("fixed small"), log-variance clipped at t = 1 to β̃_2 (β̃_1 = 0).
    BetaTilde,
    /// iDDPM's learned interpolation: the model outputs twice the data channels, the second half
    /// v ∈ [−1, 1] (nominally) gives frac = (v + 1)/2 and
    /// log σ_t² = frac·log β_t + (1 − frac)·log β̃_t (β̃ clipped as in `BetaTilde`).
    LearnedRange,
}

impl VarianceMode {
    /// Whether the model output carries the extra variance half (2C channels).
    pub fn is_learned(&self) -> bool {
        matches!(self, VarianceMode::LearnedRange)
    }
}

/// How the per-element terms are reduced over the non-batch dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// Mean over dimensions (nats/dim; divide by ln 2 for bits/dim).
    Mean,
    /// Sum over dimensions (nats per sample).
    Sum,
}

fn reduce(x: &Tensor, r: Reduction) -> Result<Tensor> {
    match r {
        Reduction::Mean => mean_flat(x),
        Reduction::Sum => sum_flat(x),
    }
}

/// Split a model output into (mean part, Some(v)) for [`VarianceMode::LearnedRange`] — the output
/// must be `[B, 2C, …]` for `x_t` `[B, C, …]`, halves along dim 1 (iDDPM's channel split) —
/// or (output, None) for the fixed modes, where the output must have the shape of `x_t`.
pub fn split_output(mode: VarianceMode, out: &Tensor, x_t: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    if !mode.is_learned() {
        if out.dims() != x_t.dims() {
            return Err(CoreError::Shape(format!(
                "model output {:?} differs from input {:?} (fixed variance)",
                out.dims(),
                x_t.dims()
            )));
        }
        return Ok((out.clone(), None));
    }
    let mut want = x_t.dims().to_vec();
    if want.len() < 2 {
        return Err(CoreError::Shape(format!("input must be [B, C, …], got {:?}", x_t.dims())));
    }
    want[1] *= 2;
    if out.dims() != want.as_slice() {
        return Err(CoreError::Shape(format!(
            "learned-variance output {:?} must be {want:?} (twice the channels of x_t {:?})",
            out.dims(),
            x_t.dims()
        )));
    }
    let c = x_t.dim(1)?;
    Ok((out.narrow(1, 0, c)?, Some(out.narrow(1, c, c)?)))
}

/// A learned-variance model (its `forward` returns `[B, 2C, …]`) seen as a plain [`Denoiser`]:
/// `forward` returns only the mean half, so any fixed-variance sampler (DDPM, DDIM, …) can run it.
/// The full output stays available through [`LearnedVarianceDenoiser::forward_full`].
#[derive(Debug, Clone)]
pub struct LearnedVarianceDenoiser<D> {
    inner: D,
}

impl<D: Denoiser> LearnedVarianceDenoiser<D> {
    pub fn new(inner: D) -> Self {
        Self { inner }
    }
    pub fn inner(&self) -> &D {
        &self.inner
    }
    pub fn into_inner(self) -> D {
        self.inner
    }
    /// The model's full `[B, 2C, …]` output (mean half, then v).
    pub fn forward_full(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.inner.forward(x_t, t)
    }
}

impl<D: Denoiser> Denoiser for LearnedVarianceDenoiser<D> {
    fn prediction(&self) -> Prediction {
        self.inner.prediction()
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        let out = self.inner.forward(x_t, t)?;
        Ok(split_output(VarianceMode::LearnedRange, &out, x_t)?.0)
    }
}

/// log σ_t² of p_θ for each sample's index `idx[b]`, shaped like `like` (`[B, …]`).
/// `v` (required iff `mode` is learned) has the shape of `like`.
pub fn model_log_variance(
    schedule: &DiffusionSchedule,
    mode: VarianceMode,
    v: Option<&Tensor>,
    idx: &[usize],
    like: &Tensor,
) -> Result<Tensor> {
    let (r, dev) = (like.rank(), like.device());
    let min_log = gather_coef(&schedule.posterior_log_variance_clipped, idx, r, dev)?;
    let lv = match (mode, v) {
        (VarianceMode::BetaTilde, None) => min_log,
        (VarianceMode::Beta, None) => {
            let lb: Vec<f64> = beta_log_variance(schedule);
            gather_coef(&lb, idx, r, dev)?
        }
        (VarianceMode::LearnedRange, Some(v)) => {
            if v.dims() != like.dims() {
                return Err(CoreError::Shape(format!("v {:?} must match {:?}", v.dims(), like.dims())));
            }
            let log_beta: Vec<f64> = schedule.betas.iter().map(|b| b.ln()).collect();
            let max_log = gather_coef(&log_beta, idx, r, dev)?;
            let frac = v.affine(0.5, 0.5)?;
            let one_minus = frac.affine(-1.0, 1.0)?;
            frac.broadcast_mul(&max_log)?.add(&one_minus.broadcast_mul(&min_log)?)?
        }
        (VarianceMode::LearnedRange, None) => {
            return Err(CoreError::invalid("v", "learned variance needs the model's v output"))
        }
        (_, Some(_)) => return Err(CoreError::invalid("v", "a fixed variance takes no v output")),
    };
    Ok(lv.broadcast_as(like.shape())?.contiguous()?)
}

/// log β_t with the t = 1 entry replaced by log β̃_2 ("fixed large" of the DDPM code).
pub fn beta_log_variance(schedule: &DiffusionSchedule) -> Vec<f64> {
    let n = schedule.len();
    (0..n)
        .map(|i| if i == 0 && n > 1 { schedule.posterior_variance[1].ln() } else { schedule.betas[i].ln() })
        .collect()
}

/// p_θ(x_{t−1}|x_t) = N(mean, e^{log_variance}) and the x̂₀ it was built from.
#[derive(Debug, Clone)]
pub struct ReverseGaussian {
    pub mean: Tensor,
    pub log_variance: Tensor,
    pub x0_pred: Tensor,
}

/// μ̃_t(x_t, x₀) = posterior_mean_coef1·x₀ + posterior_mean_coef2·x_t (DDPM Eq. 7).
pub fn posterior_mean(
    schedule: &DiffusionSchedule,
    x0: &Tensor,
    x_t: &Tensor,
    idx: &[usize],
) -> Result<Tensor> {
    let (r, dev) = (x_t.rank(), x_t.device());
    let c1 = gather_coef(&schedule.posterior_mean_coef1, idx, r, dev)?;
    let c2 = gather_coef(&schedule.posterior_mean_coef2, idx, r, dev)?;
    Ok(x0.broadcast_mul(&c1)?.add(&x_t.broadcast_mul(&c2)?)?)
}

/// q(x_{t−1}|x_t, x₀) = N(μ̃_t, β̃_t) (Eq. 6–7) as (mean, clipped log-variance), shaped like `x_t`.
pub fn q_posterior(
    schedule: &DiffusionSchedule,
    x0: &Tensor,
    x_t: &Tensor,
    idx: &[usize],
) -> Result<(Tensor, Tensor)> {
    let mean = posterior_mean(schedule, x0, x_t, idx)?;
    let lv = gather_coef(&schedule.posterior_log_variance_clipped, idx, x_t.rank(), x_t.device())?;
    Ok((mean, lv.broadcast_as(x_t.shape())?.contiguous()?))
}

/// p_θ(x_{t−1}|x_t) from the mean part of a model output (`prediction` kind, shape of `x_t`) and
/// optional v: x̂₀ via [`to_x0_eps`], optionally clamped to ±`clip_x0`, μ_θ = μ̃_t(x_t, x̂₀),
/// log σ² by [`model_log_variance`]. `idx[b]` is the schedule index of sample `b`.
#[allow(clippy::too_many_arguments)]
pub fn p_mean_variance(
    schedule: &DiffusionSchedule,
    prediction: Prediction,
    mode: VarianceMode,
    mean_out: &Tensor,
    v: Option<&Tensor>,
    x_t: &Tensor,
    idx: &[usize],
    clip_x0: Option<f32>,
) -> Result<ReverseGaussian> {
    if mean_out.dims() != x_t.dims() || idx.len() != x_t.dim(0)? {
        return Err(CoreError::Shape(format!(
            "mean output {:?}, x_t {:?} and {} timesteps disagree",
            mean_out.dims(),
            x_t.dims(),
            idx.len()
        )));
    }
    let (r, dev) = (x_t.rank(), x_t.device());
    let a = gather_coef(&schedule.sqrt_alpha_bar, idx, r, dev)?;
    let s = gather_coef(&schedule.sqrt_one_minus_alpha_bar, idx, r, dev)?;
    let (x0, _) = to_x0_eps(prediction, mean_out, x_t, &a, &s)?;
    let x0 = match clip_x0 {
        Some(c) if !(c.is_finite() && c > 0.0) => {
            return Err(CoreError::invalid("clip_x0", format!("must be finite and > 0, got {c}")))
        }
        Some(c) => x0.clamp(-c, c)?,
        None => x0,
    };
    let mean = posterior_mean(schedule, &x0, x_t, idx)?;
    let log_variance = model_log_variance(schedule, mode, v, idx, x_t)?;
    Ok(ReverseGaussian { mean, log_variance, x0_pred: x0 })
}

/// L_{t−1} = KL(q(x_{t−1}|x_t, x₀) ‖ p_θ(x_{t−1}|x_t)) per sample (Eq. 5), in nats.
pub fn kl_term(
    schedule: &DiffusionSchedule,
    x0: &Tensor,
    x_t: &Tensor,
    idx: &[usize],
    model: &ReverseGaussian,
    reduction: Reduction,
) -> Result<Tensor> {
    let (q_mean, q_lv) = q_posterior(schedule, x0, x_t, idx)?;
    reduce(&normal_kl(&q_mean, &q_lv, &model.mean, &model.log_variance)?, reduction)
}

/// Levels of 8-bit data: x = k/127.5 − 1, k = 0, …, 255.
pub const EIGHT_BIT_LEVELS: u32 = 256;

fn check_levels(levels: u32) -> Result<f64> {
    if levels < 2 {
        return Err(CoreError::invalid("levels", format!("data need at least 2 levels, got {levels}")));
    }
    Ok(1.0 / (levels - 1) as f64)
}

/// log p(x | μ, σ) of the discretized Gaussian decoder (DDPM Eq. 13) for data with `levels`
/// equally spaced values x = 2k/(levels − 1) − 1 in [−1, 1]: bins of width 2/(levels − 1) around
/// each value, the outermost bins extended to ±∞ (so the probabilities of all levels sum to one).
/// Φ uses the same tanh approximation as [`crate::gaussian`]; for `levels` = 256 this equals
/// [`crate::gaussian::discretized_gaussian_log_likelihood`].
pub fn discretized_gaussian_log_likelihood_levels(
    x: &Tensor,
    means: &Tensor,
    log_scales: &Tensor,
    levels: u32,
) -> Result<Tensor> {
    let half = check_levels(levels)?;
    let centered = x.broadcast_sub(means)?;
    let inv_stdv = log_scales.neg()?.exp()?;
    let cdf_plus = approx_standard_normal_cdf(&centered.affine(1.0, half)?.broadcast_mul(&inv_stdv)?)?;
    let cdf_min = approx_standard_normal_cdf(&centered.affine(1.0, -half)?.broadcast_mul(&inv_stdv)?)?;
    let log_cdf_plus = cdf_plus.maximum(1e-12)?.log()?;
    let log_one_minus_cdf_min = cdf_min.affine(-1.0, 1.0)?.maximum(1e-12)?.log()?;
    let log_delta = cdf_plus.sub(&cdf_min)?.maximum(1e-12)?.log()?;
    let lo = x.lt(-1.0 + half)?;
    let hi = x.gt(1.0 - half)?;
    let inner = hi.where_cond(&log_one_minus_cdf_min, &log_delta)?;
    Ok(lo.where_cond(&log_cdf_plus, &inner)?)
}

/// f64 scalar version of [`discretized_gaussian_log_likelihood_levels`].
pub fn discretized_gaussian_log_likelihood_levels_f64(
    x: f64,
    mean: f64,
    log_scale: f64,
    levels: u32,
) -> Result<f64> {
    let half = check_levels(levels)?;
    let inv = (-log_scale).exp();
    let cdf_plus = approx_standard_normal_cdf_f64((x - mean + half) * inv);
    let cdf_min = approx_standard_normal_cdf_f64((x - mean - half) * inv);
    Ok(if x < -1.0 + half {
        cdf_plus.max(1e-12).ln()
    } else if x > 1.0 - half {
        (1.0 - cdf_min).max(1e-12).ln()
    } else {
        (cdf_plus - cdf_min).max(1e-12).ln()
    })
}

/// L₀ = −log p_θ(x₀|x₁) with the discretized Gaussian decoder (Eq. 13) for data in [−1, 1] with
/// `levels` values ([`EIGHT_BIT_LEVELS`] for 8-bit images), σ = e^{log_variance/2}; per sample, in nats.
pub fn decoder_nll(
    x0: &Tensor,
    model: &ReverseGaussian,
    levels: u32,
    reduction: Reduction,
) -> Result<Tensor> {
    let log_scales = model.log_variance.affine(0.5, 0.0)?;
    let ll = discretized_gaussian_log_likelihood_levels(x0, &model.mean, &log_scales, levels)?;
    reduce(&ll.neg()?, reduction)
}

/// The bound term of each sample's own timestep: L₀ (decoder NLL for data with `levels` values)
/// where `idx[b] == 0`, the KL L_{t−1} elsewhere (iDDPM's `_vb_terms_bpd`, in nats). `[B]`.
pub fn vlb_terms(
    schedule: &DiffusionSchedule,
    x0: &Tensor,
    x_t: &Tensor,
    idx: &[usize],
    model: &ReverseGaussian,
    levels: u32,
    reduction: Reduction,
) -> Result<Tensor> {
    check_levels(levels)?;
    let kl = kl_term(schedule, x0, x_t, idx, model, reduction)?;
    if idx.iter().all(|&i| i > 0) {
        return Ok(kl);
    }
    let dec = decoder_nll(x0, model, levels, reduction)?;
    let first: Vec<u8> = idx.iter().map(|&i| u8::from(i == 0)).collect();
    let mask = Tensor::from_vec(first, idx.len(), kl.device())?;
    Ok(mask.where_cond(&dec, &kl)?)
}

/// Prior term L_T = KL(q(x_T|x₀) ‖ N(0, I)) = KL(N(√ᾱ_T x₀, 1 − ᾱ_T) ‖ N(0, 1)) per sample, in nats.
pub fn prior_kl(schedule: &DiffusionSchedule, x0: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let last = schedule.len() - 1;
    let ab = schedule.alpha_bar[last];
    let mean = x0.affine(ab.sqrt(), 0.0)?;
    let lv = Tensor::full(((1.0 - ab).max(1e-20)).ln() as f32, x0.shape(), x0.device())?;
    let zeros = Tensor::zeros(x0.shape(), x0.dtype(), x0.device())?;
    reduce(&normal_kl(&mean, &lv, &zeros, &zeros)?, reduction)
}

/// f64 closed form of [`prior_kl`] for one element: ½(ᾱ x₀² + (1 − ᾱ) − 1 − ln(1 − ᾱ)).
pub fn prior_kl_f64(alpha_bar_t: f64, x0: f64) -> f64 {
    0.5 * (alpha_bar_t * x0 * x0 + (1.0 - alpha_bar_t) - 1.0 - (1.0 - alpha_bar_t).ln())
}
