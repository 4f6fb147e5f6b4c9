//! Ancestral sampling with iDDPM's learned variances (seed 002 "iDDPM", improvement 1), on the
//! full schedule or on a respaced one with fewer steps (iDDPM §4).
//!
//! A learned-variance model is an ordinary [`Denoiser`] whose `forward` returns `[B, 2C, …]`:
//! the first C channels are the mean output (of kind `prediction()`), the last C channels v with
//! Σ_θ = exp(frac·log β_t + (1 − frac)·log β̃_t), frac = (v + 1)/2. The sampler is told so by
//! [`VarianceMode::LearnedRange`]; wrap such a model in
//! [`rediffuse_core::vlb::LearnedVarianceDenoiser`] to run it with the fixed-variance samplers.

use crate::error::{Result, SampleError};
use crate::step::{check_clip, check_init, draw_noise, StepInfo};
use candle_core::Tensor;
use rediffuse_core::tensor_util::timesteps_tensor;
use rediffuse_core::vlb::{p_mean_variance, split_output, VarianceMode};
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};
use serde::{Deserialize, Serialize};

/// A diffusion restricted to a subsequence S of the training timesteps (iDDPM §4): ᾱ is kept on
/// S and β_{S_i} = 1 − ᾱ_{S_i}/ᾱ_{S_{i−1}} (ᾱ_{S_{−1}} = 1), so β̃ and the posterior coefficients
/// follow from the new β. Entry j of `schedule` belongs to training index `timesteps[j]`, which
/// is the model time fed to the network.
#[derive(Debug, Clone, PartialEq)]
pub struct RespacedSchedule {
    pub schedule: DiffusionSchedule,
    /// The kept training indices S, ascending.
    pub timesteps: Vec<usize>,
}

/// Respace `schedule` onto the training indices `use_timesteps` (any order, no duplicates, each < T).
pub fn respace(schedule: &DiffusionSchedule, use_timesteps: &[usize]) -> Result<RespacedSchedule> {
    let t = schedule.len();
    if use_timesteps.is_empty() {
        return Err(SampleError::invalid("use_timesteps", "must not be empty"));
    }
    let mut ts = use_timesteps.to_vec();
    ts.sort_unstable();
    if let Some(w) = ts.windows(2).find(|w| w[0] == w[1]) {
        return Err(SampleError::invalid("use_timesteps", format!("index {} appears twice", w[0])));
    }
    if let Some(&bad) = ts.last().filter(|&&i| i >= t) {
        return Err(SampleError::invalid("use_timesteps", format!("index {bad} out of range 0..{t}")));
    }
    let mut last = 1.0;
    let betas: Vec<f64> = ts
        .iter()
        .map(|&i| {
            let ab = schedule.alpha_bar[i];
            let b = 1.0 - ab / last;
            last = ab;
            b
        })
        .collect();
    Ok(RespacedSchedule { schedule: DiffusionSchedule::from_betas(betas)?, timesteps: ts })
}

/// iDDPM's even spacing by sections: split 0..T into `section_counts.len()` equal sections (the
/// first T mod n one longer) and take `count` indices evenly spaced within each section, both
/// ends included: positions 0, d, d + d, … (d = (size − 1)/(count − 1), accumulated by repeated
/// addition as in iDDPM) rounded half-to-even. Returns the indices ascending.
pub fn space_timesteps(num_timesteps: usize, section_counts: &[usize]) -> Result<Vec<usize>> {
    let n = section_counts.len();
    if n == 0 || num_timesteps == 0 {
        return Err(SampleError::invalid("section_counts", "need T >= 1 and at least one section"));
    }
    let (size_per, extra) = (num_timesteps / n, num_timesteps % n);
    let mut out = Vec::new();
    let mut start = 0;
    for (k, &count) in section_counts.iter().enumerate() {
        let size = size_per + usize::from(k < extra);
        if count == 0 || count > size {
            return Err(SampleError::invalid(
                "section_counts",
                format!("section {k} has {size} steps, cannot take {count}"),
            ));
        }
        let stride = if count == 1 { 0.0 } else { (size - 1) as f64 / (count - 1) as f64 };
        let mut pos = 0.0f64;
        for _ in 0..count {
            out.push(start + pos.round_ties_even() as usize);
            pos += stride;
        }
        start += size;
    }
    Ok(out)
}

/// Options of [`learned_variance_sample`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LearnedVarianceOptions {
    /// `LearnedRange` for iDDPM models (2C output channels); `Beta`/`BetaTilde` run a fixed-variance
    /// model on the (respaced) schedule.
    pub variance: VarianceMode,
    /// Clamp x̂₀ to [−c, c] before forming μ_θ.
    pub clip_x0: Option<f32>,
}

impl Default for LearnedVarianceOptions {
    fn default() -> Self {
        Self { variance: VarianceMode::LearnedRange, clip_x0: None }
    }
}

/// Ancestral sampling x_{t−1} = μ_θ(x_t) + exp(½ log Σ_θ)·z (DDPM Algorithm 2 with iDDPM's Σ_θ)
/// from `x_t` (= x_T, `[B, …]`) over the training indices `use_timesteps` (None: all T steps),
/// on the schedule respaced by [`respace`]. μ_θ = μ̃(x_t, x̂₀) with x̂₀ from the mean half via
/// the model's prediction kind; z ~ N(0, I) from `noise` at every step but the last.
pub fn learned_variance_sample(
    model: &dyn Denoiser,
    schedule: &DiffusionSchedule,
    use_timesteps: Option<&[usize]>,
    x_t: Tensor,
    opts: &LearnedVarianceOptions,
    noise: &mut NoiseSource,
    mut on_step: Option<&mut dyn FnMut(&StepInfo)>,
) -> Result<Tensor> {
    check_clip(opts.clip_x0)?;
    let mut x = check_init(&x_t, noise)?;
    let all: Vec<usize>;
    let ts = match use_timesteps {
        Some(ts) => ts,
        None => {
            all = (0..schedule.len()).collect();
            &all
        }
    };
    let resp = respace(schedule, ts)?;
    let (b, k) = (x.dim(0)?, resp.timesteps.len());
    for (step, j) in (0..k).rev().enumerate() {
        let t_model = timesteps_tensor(&vec![resp.timesteps[j]; b], x.device())?;
        let out = model.forward(&x, &t_model)?;
        let (mean_out, v) = split_output(opts.variance, &out, &x)?;
        let p = p_mean_variance(
            &resp.schedule,
            model.prediction(),
            opts.variance,
            &mean_out,
            v.as_ref(),
            &x,
            &vec![j; b],
            opts.clip_x0,
        )?;
        if let Some(cb) = on_step.as_mut() {
            cb(&StepInfo { step, num_steps: k, t_index: resp.timesteps[j], x_t: &x, x0_pred: &p.x0_pred });
        }
        x = if j > 0 {
            let z = draw_noise(noise, &x)?;
            p.mean.add(&p.log_variance.affine(0.5, 0.0)?.exp()?.mul(&z)?)?
        } else {
            p.mean
        };
    }
    Ok(x)
}
