//! Reverse-time SDE samplers in the SDE's own time t ∈ [ε, 1] (Song et al. 2021, §4.1–4.2 and
//! Algorithms 2–5): Euler–Maruyama and reverse-diffusion predictors, the Langevin corrector with
//! signal-to-noise ratio r, and predictor–corrector sampling.

use super::error::{non_negative, positive, ContinuousError, Result};
use super::langevin::check_batch;
use super::stats::{notify, Callback, SampleStats};
use super::view::{per_sample, sde_score, SigmaDenoiser};
use candle_core::Tensor;
use rediffuse_core::sde::Sde;
use rediffuse_core::NoiseSource;
use serde::{Deserialize, Serialize};

/// The predictor of a PC sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Predictor {
    /// x ← x − [f(t)x − g(t)²s(x, t)]Δt + g(t)√Δt·z.
    EulerMaruyama,
    /// Ancestral discretisation x_mean = (x + G²s(x, t))/a with (a, G) = `Sde::discretize`
    /// (for VE exactly Song et al.'s reverse-diffusion predictor, Eq. 47; for VP the DDPM ancestral
    /// step, of which Song et al.'s (2 − √(1 − β))x + βs is the first-order expansion).
    ReverseDiffusion,
    /// No predictor (corrector-only sampling).
    None,
}

/// The corrector of a PC sampler.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Corrector {
    /// Langevin MCMC (Algorithms 4/5): ε = 2a(r‖z‖/‖s‖)², x ← x + εs + √(2ε)z, `steps` times per
    /// level; a = α_i = 1 − β_i for VP, 1 otherwise.
    Langevin {
        snr: f64,
        steps: usize,
        norms: SnrNorms,
    },
    None,
}

/// How ‖z‖ and ‖s‖ enter the Langevin step size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnrNorms {
    /// Batch means of the per-sample norms, as in Song et al.'s reference code. Stable in any
    /// dimension, but a sample's step then depends on the rest of its batch.
    BatchMean,
    /// Each sample's own norms: batch-independent; reliable only in high dimension, where the norms
    /// concentrate (in 2-D a sample near the mode has ‖s‖ ≈ 0 and an unbounded step).
    PerSample,
}

/// Configuration of a predictor–corrector run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PcConfig {
    /// N time steps on the uniform grid t_i from 1 down to `eps`.
    pub steps: usize,
    /// Smallest time ε.
    pub eps: f64,
    pub predictor: Predictor,
    pub corrector: Corrector,
    /// Return the noise-free mean of the final step (Song et al.'s `noise_removal`).
    pub denoise: bool,
}

/// t_i = 1 + i/(N − 1)·(ε − 1), i = 0..N−1 (Song et al.'s `torch.linspace(T, eps, N)`).
pub fn time_grid(steps: usize, eps: f64) -> Result<Vec<f64>> {
    positive("eps", eps)?;
    if eps >= 1.0 || steps < 2 {
        return Err(ContinuousError::invalid("steps", "need steps >= 2 and 0 < eps < 1"));
    }
    Ok((0..steps).map(|i| 1.0 + i as f64 / (steps - 1) as f64 * (eps - 1.0)).collect())
}

fn batch_score(model: &impl SigmaDenoiser, sde: &Sde, x: &Tensor, t: f64) -> Result<Tensor> {
    Ok(sde_score(model, sde, x, &vec![t; x.dim(0)?])?.0)
}

/// Per-sample Euclidean norms `[B]` as f64.
fn norms(x: &Tensor) -> Result<Vec<f64>> {
    let b = x.dim(0)?;
    let v: Vec<f64> =
        x.reshape((b, ()))?.sqr()?.sum(1)?.sqrt()?.to_dtype(candle_core::DType::F64)?.to_vec1()?;
    Ok(v)
}

/// Predictor–corrector sampling from `x` ~ prior at t = 1 (Song et al. Algorithm 1 with the
/// predictor/corrector of Algorithms 2–5). The step Δ between grid points is also used at the
/// last point (its predictor step ends at ε − Δ, as in the reference code).
pub fn pc_sample(
    model: &impl SigmaDenoiser,
    sde: &Sde,
    x: &Tensor,
    cfg: &PcConfig,
    noise: &mut NoiseSource,
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    sde.validate()?;
    check_batch(x, noise)?;
    let ts = time_grid(cfg.steps, cfg.eps)?;
    if let Corrector::Langevin { snr, steps, .. } = cfg.corrector {
        non_negative("snr", snr)?;
        if steps == 0 {
            return Err(ContinuousError::invalid("corrector steps", "must be >= 1"));
        }
    }
    if cfg.predictor == Predictor::None && cfg.corrector == Corrector::None {
        return Err(ContinuousError::invalid("predictor", "need a predictor, a corrector or both"));
    }
    let dt = (1.0 - cfg.eps) / (cfg.steps - 1) as f64;
    let shape = x.dims()[1..].to_vec();
    let mut x = x.clone();
    let mut x_mean = x.clone();
    let mut stats = SampleStats::default();
    for (i, &t) in ts.iter().enumerate() {
        if let Corrector::Langevin { snr, steps, norms: how } = cfg.corrector {
            let a = match sde {
                Sde::Vp { .. } => sde.discretize((t - dt).max(0.0), t)?.0.powi(2),
                _ => 1.0,
            };
            for _ in 0..steps {
                let s = batch_score(model, sde, &x, t)?;
                stats.nfe += 1;
                let z = noise.randn(&shape, x.device())?.to_dtype(x.dtype())?;
                let (mut gn, mut zn) = (norms(&s)?, norms(&z)?);
                if how == SnrNorms::BatchMean {
                    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
                    let (g, n) = (mean(&gn), mean(&zn));
                    gn.iter_mut().for_each(|v| *v = g);
                    zn.iter_mut().for_each(|v| *v = n);
                }
                let step: Vec<f64> =
                    gn.iter().zip(&zn).map(|(g, n)| 2.0 * a * (snr * n / g.max(1e-30)).powi(2)).collect();
                let noise_scale: Vec<f64> = step.iter().map(|e| (2.0 * e).sqrt()).collect();
                x_mean = x.add(&s.broadcast_mul(&per_sample(&step, &x)?)?)?;
                x = x_mean.add(&z.broadcast_mul(&per_sample(&noise_scale, &x)?)?)?;
            }
        }
        match cfg.predictor {
            Predictor::None => {}
            Predictor::EulerMaruyama => {
                let s = batch_score(model, sde, &x, t)?;
                stats.nfe += 1;
                let (fa, fb) = sde.reverse_drift_coefs(t, false);
                let drift = x.affine(fa, 0.0)?.add(&s.affine(fb, 0.0)?)?;
                x_mean = x.sub(&drift.affine(dt, 0.0)?)?;
                let z = noise.randn(&shape, x.device())?.to_dtype(x.dtype())?;
                x = x_mean.add(&z.affine(sde.diffusion(t) * dt.sqrt(), 0.0)?)?;
            }
            Predictor::ReverseDiffusion => {
                let s = batch_score(model, sde, &x, t)?;
                stats.nfe += 1;
                let (a, g) = sde.discretize((t - dt).max(0.0), t)?;
                x_mean = x.add(&s.affine(g * g, 0.0)?)?.affine(1.0 / a, 0.0)?;
                let z = noise.randn(&shape, x.device())?.to_dtype(x.dtype())?;
                x = x_mean.add(&z.affine(g, 0.0)?)?;
            }
        }
        stats.steps += 1;
        notify(&mut callback, i + 1, t, &x, None);
    }
    Ok((if cfg.denoise { x_mean } else { x }, stats))
}

/// Reverse-SDE Euler–Maruyama sampler (predictor only).
#[allow(clippy::too_many_arguments)]
pub fn euler_maruyama(
    model: &impl SigmaDenoiser,
    sde: &Sde,
    x: &Tensor,
    steps: usize,
    eps: f64,
    denoise: bool,
    noise: &mut NoiseSource,
    callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    let cfg =
        PcConfig { steps, eps, predictor: Predictor::EulerMaruyama, corrector: Corrector::None, denoise };
    pc_sample(model, sde, x, &cfg, noise, callback)
}

/// Reverse-diffusion sampler (predictor only).
#[allow(clippy::too_many_arguments)]
pub fn reverse_diffusion(
    model: &impl SigmaDenoiser,
    sde: &Sde,
    x: &Tensor,
    steps: usize,
    eps: f64,
    denoise: bool,
    noise: &mut NoiseSource,
    callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    let cfg =
        PcConfig { steps, eps, predictor: Predictor::ReverseDiffusion, corrector: Corrector::None, denoise };
    pc_sample(model, sde, x, &cfg, noise, callback)
}
