//! RePaint inpainting (Lugmayr et al. 2022; seed 002 "RePaint"): an unconditional model fills the
//! unknown pixels of an image while the known ones are re-noised to the current level at every
//! step, with resampling jumps (go back up `jump_length` steps, `jump_n_sample` times) that let the
//! generated part harmonise with the known part.

use crate::error::{Result, SampleError};
use crate::step::{check_clip, check_init, draw_noise, predict, StepInfo};
use candle_core::Tensor;
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};
use serde::{Deserialize, Serialize};

/// RePaint's settings; the defaults are the paper's (250 steps, jumps of j = 10 steps repeated
/// r = 10 times, DDPM's ancestral variance η = 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RePaintOptions {
    /// Inference steps (the training schedule's T must be a multiple of it, as in diffusers).
    pub steps: usize,
    /// j: how many steps a resampling jump goes back up.
    pub jump_length: usize,
    /// r: how often every jump is made (1 = no resampling).
    pub jump_n_sample: usize,
    /// η of the reverse step (1: DDPM's σ² = β̃, 0: DDIM).
    pub eta: f64,
    /// Clamp x̂₀ to [−c, c] (images: 1).
    pub clip_x0: Option<f32>,
}

impl Default for RePaintOptions {
    fn default() -> Self {
        Self { steps: 250, jump_length: 10, jump_n_sample: 10, eta: 1.0, clip_x0: None }
    }
}

/// The inference timesteps of RePaint's jump schedule (diffusers' `RePaintScheduler.set_timesteps`):
/// going down one step at a time, and at every multiple of `jump_length` (below the top) back up
/// `jump_length` steps, `jump_n_sample − 1` times; indices into the training schedule
/// (inference step k ↦ k·(T/steps)).
pub fn repaint_timesteps(t_train: usize, o: &RePaintOptions) -> Result<Vec<usize>> {
    let n = o.steps;
    if n == 0 || n > t_train || !t_train.is_multiple_of(n) {
        return Err(SampleError::invalid(
            "steps",
            format!("must divide the {t_train} training timesteps (1..={t_train}), got {n}"),
        ));
    }
    if o.jump_length == 0 || o.jump_length >= n {
        return Err(SampleError::invalid(
            "jump_length",
            format!("must lie in 1..{n}, got {}", o.jump_length),
        ));
    }
    if o.jump_n_sample == 0 {
        return Err(SampleError::invalid("jump_n_sample", "must be >= 1"));
    }
    let mut jumps: std::collections::HashMap<usize, usize> =
        (0..n - o.jump_length).step_by(o.jump_length).map(|j| (j, o.jump_n_sample - 1)).collect();
    let mut out = Vec::new();
    let mut t = n;
    while t >= 1 {
        t -= 1;
        out.push(t);
        if let Some(left) = jumps.get_mut(&t).filter(|l| **l > 0) {
            *left -= 1;
            for _ in 0..o.jump_length {
                t += 1;
                out.push(t);
            }
        }
    }
    let ratio = t_train / n;
    Ok(out.into_iter().map(|t| t * ratio).collect())
}

/// Inpaint `known` (`[B, …]`, the original images) where `mask` is 0, keeping it where `mask` is 1
/// (`mask` of the shape of one sample or of the batch), from x_T = `x_t`. A reverse step from t to
/// t' = t − T/steps: the model's x̂₀ and ε̂ give the unknown part by the DDIM/DDPM update with η,
/// the known part is q(x_t' | x₀) = √ᾱ_t'·x₀ + √(1 − ᾱ_t')·ε, and x_t' = m⊙known + (1 − m)⊙unknown;
/// a jump back up re-noises one training step at a time, x_s = √(1 − β_s)·x_{s−1} + √β_s·ε
/// (Lugmayr et al. Eq. 9 / Algorithm 1 line 11), from the current level to the next timestep's.
/// Returns x₀ (the known region is `known` exactly) and the number of model evaluations.
#[allow(clippy::too_many_arguments)]
pub fn repaint_sample(
    model: &dyn Denoiser,
    schedule: &DiffusionSchedule,
    x_t: Tensor,
    known: &Tensor,
    mask: &Tensor,
    opts: &RePaintOptions,
    noise: &mut NoiseSource,
    mut on_step: Option<&mut dyn FnMut(&StepInfo)>,
) -> Result<(Tensor, usize)> {
    check_clip(opts.clip_x0)?;
    if !(opts.eta.is_finite() && (0.0..=1.0).contains(&opts.eta)) {
        return Err(SampleError::invalid("eta", format!("must lie in [0, 1], got {}", opts.eta)));
    }
    let mut x = check_init(&x_t, noise)?;
    if known.dims() != x.dims() {
        return Err(SampleError::Shape(format!(
            "known images {:?} but samples {:?}",
            known.dims(),
            x.dims()
        )));
    }
    let mask = if mask.dims() == &x.dims()[1..] { mask.unsqueeze(0)? } else { mask.clone() };
    if mask.dims() != x.dims() && mask.dims()[1..] != x.dims()[1..] {
        return Err(SampleError::Shape(format!(
            "mask {:?} does not fit samples {:?}",
            mask.dims(),
            x.dims()
        )));
    }
    let mask = mask.to_dtype(candle_core::DType::F32)?.broadcast_as(x.shape())?.contiguous()?;
    let inv = mask.affine(-1.0, 1.0)?;
    let known = known.to_dtype(candle_core::DType::F32)?;
    let ts = repaint_timesteps(schedule.len(), opts)?;
    let stride = schedule.len() / opts.steps;
    // the training index whose marginal x follows (−1: clean); a model evaluation at t needs t
    let mut level = ts[0] as isize;
    let mut nfe = 0;
    let total = ts.len();
    for (step, &t) in ts.iter().enumerate() {
        let target = t as isize;
        if target > level {
            // a jump back up: x_s = √(1 − β_s)·x_{s−1} + √β_s·ε, one training step at a time
            for s in (level + 1) as usize..=t {
                let beta = schedule.betas[s];
                x = x
                    .affine((1.0 - beta).sqrt(), 0.0)?
                    .add(&draw_noise(noise, &x)?.affine(beta.sqrt(), 0.0)?)?;
            }
        }
        let (x0, eps) = predict(model, schedule, &x, t, opts.clip_x0)?;
        nfe += 1;
        if let Some(cb) = on_step.as_mut() {
            cb(&StepInfo { step, num_steps: total, t_index: t, x_t: &x, x0_pred: &x0 });
        }
        let ab_t = schedule.alpha_bar[t];
        let ab_prev = if t >= stride { schedule.alpha_bar[t - stride] } else { 1.0 };
        let var = (1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev);
        let sigma = opts.eta * var.max(0.0).sqrt();
        let dir = (1.0 - ab_prev - sigma * sigma).max(0.0).sqrt();
        let mut unknown = x0.affine(ab_prev.sqrt(), 0.0)?.add(&eps.affine(dir, 0.0)?)?;
        let z = draw_noise(noise, &x)?;
        if sigma > 0.0 {
            unknown = unknown.add(&z.affine(sigma, 0.0)?)?;
        }
        let zk = draw_noise(noise, &x)?;
        let known_t = known.affine(ab_prev.sqrt(), 0.0)?.add(&zk.affine((1.0 - ab_prev).sqrt(), 0.0)?)?;
        x = mask.mul(&known_t)?.add(&inv.mul(&unknown)?)?;
        // now at t − stride; the next timestep is that one (a step down) or above (a jump up)
        level = if t >= stride { (t - stride) as isize } else { -1 };
    }
    Ok((x, nfe))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// diffusers' `RePaintScheduler.set_timesteps(10, jump_length=3, jump_n_sample=2)` over 1000
    /// training steps, in inference units: down to 6, up to 9, …
    #[test]
    fn jump_schedule() {
        let o = RePaintOptions { steps: 10, jump_length: 3, jump_n_sample: 2, ..Default::default() };
        let ts = repaint_timesteps(1000, &o).unwrap();
        let units: Vec<usize> = ts.iter().map(|t| t / 100).collect();
        assert_eq!(
            units,
            vec![9, 8, 7, 6, 7, 8, 9, 8, 7, 6, 5, 4, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
        );
        // r = 1: plain descent
        let plain = RePaintOptions { jump_n_sample: 1, ..o };
        assert_eq!(
            repaint_timesteps(1000, &plain).unwrap(),
            (0..10).rev().map(|t| t * 100).collect::<Vec<_>>()
        );
        assert!(repaint_timesteps(1000, &RePaintOptions { steps: 300, ..o }).is_err());
        assert!(repaint_timesteps(1000, &RePaintOptions { jump_length: 10, ..o }).is_err());
        assert!(repaint_timesteps(1000, &RePaintOptions { jump_n_sample: 0, ..o }).is_err());
    }
}
