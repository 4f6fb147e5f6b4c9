//! Probability-flow ODE samplers (Song et al. 2021, §4.3, Eq. 13): dx/dt = f(t)x − ½g(t)²∇log p_t(x),
//! integrated from t = 1 to ε with Euler, Heun, or adaptive RK45.

use super::error::{ContinuousError, Result};
use super::rk45::{solve_rk45, Rk45Options, Rk45Stats};
use super::sde_samplers::time_grid;
use super::stats::{notify, Callback, SampleStats};
use super::view::{per_sample, sde_score, SigmaDenoiser};
use candle_core::{DType, Tensor};
use rediffuse_core::sde::Sde;
use serde::{Deserialize, Serialize};

/// Probability-flow drift F(x, t) at per-sample times (`x` in the SDE's state space).
pub fn pf_drift(model: &impl SigmaDenoiser, sde: &Sde, x: &Tensor, t: &[f64]) -> Result<Tensor> {
    let (score, _) = sde_score(model, sde, x, t)?;
    let (a, b): (Vec<f64>, Vec<f64>) = t.iter().map(|&t| sde.reverse_drift_coefs(t, true)).unzip();
    Ok(x.broadcast_mul(&per_sample(&a, x)?)?.add(&score.broadcast_mul(&per_sample(&b, x)?)?)?)
}

/// Fixed-step probability-flow solvers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OdeMethod {
    /// NFE = N.
    Euler,
    /// Explicit trapezoid (Heun), NFE = 2N.
    Heun,
}

/// Final x at t = ε, or its denoised estimate D(x_ε/m(ε); σ(ε)) (one more NFE) when `denoise`.
fn finish(
    model: &impl SigmaDenoiser,
    sde: &Sde,
    x: Tensor,
    eps: f64,
    denoise: bool,
    stats: &mut SampleStats,
) -> Result<Tensor> {
    if !denoise {
        return Ok(x);
    }
    stats.nfe += 1;
    Ok(sde_score(model, sde, &x, &vec![eps; x.dim(0)?])?.1)
}

/// Integrate the probability-flow ODE from t = 1 (x ~ prior) to `eps` with `steps` uniform steps.
#[allow(clippy::too_many_arguments)]
pub fn ode_fixed_step(
    model: &impl SigmaDenoiser,
    sde: &Sde,
    x: &Tensor,
    method: OdeMethod,
    steps: usize,
    eps: f64,
    denoise: bool,
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    sde.validate()?;
    if steps == 0 {
        return Err(ContinuousError::invalid("steps", "must be >= 1"));
    }
    let ts = time_grid(steps + 1, eps)?;
    let b = x.dim(0)?;
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    for (i, w) in ts.windows(2).enumerate() {
        let h = w[1] - w[0];
        let d1 = pf_drift(model, sde, &x, &vec![w[0]; b])?;
        let x_euler = x.add(&d1.affine(h, 0.0)?)?;
        x = match method {
            OdeMethod::Euler => {
                stats.nfe += 1;
                x_euler
            }
            OdeMethod::Heun => {
                let d2 = pf_drift(model, sde, &x_euler, &vec![w[1]; b])?;
                stats.nfe += 2;
                x.add(&d1.add(&d2)?.affine(0.5 * h, 0.0)?)?
            }
        };
        stats.steps += 1;
        notify(&mut callback, i + 1, w[1], &x, None);
    }
    let x = finish(model, sde, x, eps, denoise, &mut stats)?;
    Ok((x, stats))
}

pub(crate) fn to_f64_vec(x: &Tensor) -> Result<Vec<f64>> {
    Ok(x.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?)
}

/// Rebuild a `[rows, sample_shape…]` tensor of dtype `dtype` from f64 rows.
pub(crate) fn rows_tensor(y: &[f64], rows: usize, sample_shape: &[usize], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![rows];
    shape.extend_from_slice(sample_shape);
    let t = Tensor::from_slice(y, shape, like.device())?;
    Ok(if like.dtype() == DType::F64 { t } else { t.to_dtype(like.dtype())? })
}

/// Adaptive RK45 probability-flow sampler from t = 1 to `eps`; each sample has its own steps.
/// `SampleStats::nfe` counts batched evaluations (= the largest per-sample NFE); the full
/// per-sample statistics are returned too.
pub fn ode_rk45(
    model: &impl SigmaDenoiser,
    sde: &Sde,
    x: &Tensor,
    eps: f64,
    opts: &Rk45Options,
    denoise: bool,
) -> Result<(Tensor, SampleStats, Rk45Stats)> {
    sde.validate()?;
    if !(eps > 0.0 && eps < 1.0) {
        return Err(ContinuousError::invalid("eps", "must lie in (0, 1)"));
    }
    let b = x.dim(0)?;
    let shape = x.dims()[1..].to_vec();
    let y0 = to_f64_vec(x)?;
    let (y, rk) = solve_rk45(
        |rows, ts, y| {
            let xt = rows_tensor(y, rows.len(), &shape, x)?;
            to_f64_vec(&pf_drift(model, sde, &xt, ts)?)
        },
        1.0,
        eps,
        &y0,
        b,
        opts,
    )?;
    let mut stats = SampleStats {
        nfe: rk.nfe,
        steps: rk.accepted_per_row.iter().copied().max().unwrap_or(0),
        rejected_steps: rk.rejected_per_row.iter().sum(),
    };
    let xe = rows_tensor(&y, b, &shape, x)?;
    let out = finish(model, sde, xe, eps, denoise, &mut stats)?;
    Ok((out, stats, rk))
}
