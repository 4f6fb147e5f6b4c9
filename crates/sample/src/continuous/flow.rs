//! Flow-matching velocity models in σ-space, and the straightness of their ODE paths
//! (`rediffuse_core::flow`; Lipman et al. 2023, Liu et al. 2023).

use super::error::{ContinuousError, Result};
use super::view::{per_sample, SigmaDenoiser};
use candle_core::{DType, Tensor};
use rediffuse_core::flow::{check_sigma_min, time_of_sigma, velocity_to_data};
use rediffuse_core::Denoiser;

/// Model time of flow time t: `scale·t` (999·t, as score-SDE networks, so the sinusoidal
/// embedding sized for 1000 DDPM indices covers t ∈ [0, 1]).
pub const FLOW_TIME_SCALE: f64 = 999.0;

/// Flow times of the σ-space frame of a flow model: σ̃ from σ̃(1 − t_eps) to σ̃(t_eps).
pub const FLOW_T_EPS: f64 = 1e-3;

/// A velocity network v(x_t, model time) seen in σ-space: for x̃ at σ̃, t = 1/(σ̃ + 1 − σ_min),
/// x_t = t·x̃ and D(x̃; σ̃) = (1 − σ_min)·x_t + σ_t·v(x_t, t). Every σ-space sampler then
/// integrates the flow's ODE (Euler on the uniform-in-t grid is exactly Euler in t).
#[derive(Debug, Clone)]
pub struct FlowModel<D> {
    pub model: D,
    pub sigma_min: f64,
}

impl<D: Denoiser> FlowModel<D> {
    pub fn new(model: D, sigma_min: f64) -> Result<Self> {
        check_sigma_min(sigma_min)?;
        Ok(Self { model, sigma_min })
    }

    /// The raw velocity v(x_t, t) at flow times `t` (one per row).
    pub fn velocity(&self, x_t: &Tensor, t: &[f64]) -> Result<Tensor> {
        let mt: Vec<f32> = t.iter().map(|&t| (FLOW_TIME_SCALE * t) as f32).collect();
        let time = Tensor::from_vec(mt, t.len(), x_t.device())?;
        let v = self.model.forward(x_t, &time)?;
        if v.dims() != x_t.dims() {
            return Err(ContinuousError::Shape(format!(
                "velocity network output {:?} for input {:?}",
                v.dims(),
                x_t.dims()
            )));
        }
        Ok(if v.dtype() == x_t.dtype() { v } else { v.to_dtype(x_t.dtype())? })
    }
}

impl<D: Denoiser> SigmaDenoiser for FlowModel<D> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        // (the σ count is checked by `per_sample`)
        if sigma.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err(ContinuousError::invalid("sigma", "must be finite and >= 0"));
        }
        // σ̃ = 0 is t = 1/(1 − σ_min) ≥ 1: clamp to the data end t = 1
        let t: Vec<f64> = sigma.iter().map(|&s| time_of_sigma(s, self.sigma_min).min(1.0)).collect();
        let x_t = x.broadcast_mul(&per_sample(&t, x)?)?;
        let v = self.velocity(&x_t, &t)?;
        Ok(velocity_to_data(&x_t.to_dtype(DType::F32)?, &v.to_dtype(DType::F32)?, &t, self.sigma_min)?
            .to_dtype(x.dtype())?)
    }
}

/// Straightness of a flow's paths (Liu et al. 2023, Def. 2):
/// S = ∫₀¹ E‖(Z₁ − Z₀) − v(Z_t, t)‖² dt along the ODE from Z₀ = `z`, estimated with `steps`
/// Euler steps uniform in t (t_k = k/steps, with the flow's velocity at t_k; t = 0 is evaluated
/// at `FLOW_T_EPS`). Returned per dimension (the squared norm divided by the sample's size), with
/// the end points Z₁.
pub fn straightness<D: Denoiser>(model: &FlowModel<D>, z: &Tensor, steps: usize) -> Result<(f64, Tensor)> {
    if steps == 0 {
        return Err(ContinuousError::invalid("steps", "need at least 1 step"));
    }
    let b = z.dim(0)?;
    let dt = 1.0 / steps as f64;
    let mut x = z.to_dtype(DType::F32)?;
    let mut vs = Vec::with_capacity(steps);
    for k in 0..steps {
        let t = (k as f64 * dt).max(FLOW_T_EPS);
        let v = model.velocity(&x, &vec![t; b])?;
        x = (x + v.affine(dt, 0.0)?)?;
        vs.push(v);
    }
    let chord = x.sub(&z.to_dtype(DType::F32)?)?;
    let mut total = 0.0f64;
    for v in &vs {
        total += chord.sub(v)?.sqr()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    }
    Ok((total / steps as f64, x))
}
