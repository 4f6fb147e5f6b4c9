//! NCSN annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1; seed 002 "NCSN").

use super::error::{check_sigmas, positive, ContinuousError, Result};
use super::stats::{notify, Callback, SampleStats};
use super::view::{denoise_at, score_from_denoised, SigmaDenoiser};
use candle_core::Tensor;
use rediffuse_core::sde::langevin_step_size;
use rediffuse_core::NoiseSource;
use serde::{Deserialize, Serialize};

/// Parameters of annealed Langevin dynamics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnealedLangevin {
    /// σ₁ > … > σ_L (all > 0).
    pub sigmas: Vec<f64>,
    /// T, Langevin steps per noise level.
    pub steps_per_level: usize,
    /// ε: the step size at the last level; α_i = ε·σ_i²/σ_L².
    pub eps: f64,
    /// Finish with x ← x + σ_L²·s(x, σ_L) = D(x; σ_L) (Tweedie denoising, NCSNv2 / Jolicoeur-Martineau et al.).
    pub final_denoise: bool,
}

/// Run annealed Langevin dynamics from `x` (e.g. σ₁·N(0, I) or uniform noise):
/// for each level i, T times: x ← x + (α_i/2)·s(x, σ_i) + √α_i·z.
pub fn annealed_langevin(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    cfg: &AnnealedLangevin,
    noise: &mut NoiseSource,
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    if cfg.sigmas.len() < 2 || cfg.sigmas.iter().any(|&s| s <= 0.0) {
        return Err(ContinuousError::invalid("sigmas", "need ≥ 2 noise levels, all > 0"));
    }
    check_sigmas(&cfg.sigmas)?;
    positive("eps", cfg.eps)?;
    if cfg.steps_per_level == 0 {
        return Err(ContinuousError::invalid("steps_per_level", "must be >= 1"));
    }
    check_batch(x, noise)?;
    let shape = x.dims()[1..].to_vec();
    let sigma_last = *cfg.sigmas.last().unwrap_or(&1.0);
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    for &sigma in &cfg.sigmas {
        let alpha = langevin_step_size(cfg.eps, sigma, sigma_last);
        for _ in 0..cfg.steps_per_level {
            let d = denoise_at(model, &x, sigma)?;
            stats.nfe += 1;
            let score = score_from_denoised(&x, &d, &vec![sigma; x.dim(0)?])?;
            let z = noise.randn(&shape, x.device())?.to_dtype(x.dtype())?;
            x = (x + score.affine(0.5 * alpha, 0.0)?)?.add(&z.affine(alpha.sqrt(), 0.0)?)?;
            stats.steps += 1;
            notify(&mut callback, stats.steps, sigma, &x, Some(&d));
        }
    }
    if cfg.final_denoise {
        x = denoise_at(model, &x, sigma_last)?;
        stats.nfe += 1;
    }
    Ok((x, stats))
}

pub(crate) fn check_batch(x: &Tensor, noise: &NoiseSource) -> Result<()> {
    if x.rank() < 2 || x.dim(0)? != noise.len() {
        return Err(ContinuousError::Shape(format!(
            "x must be [B, …] with B = noise streams ({}), got {:?}",
            noise.len(),
            x.dims()
        )));
    }
    Ok(())
}
