//! What a network predicts, and conversions between the parameterisations
//! for the variance-preserving forward process x_t = a·x₀ + s·ε with
//! a = √ᾱ_t, s = √(1 − ᾱ_t) (DDPM Eq. 4).

use crate::error::Result;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// The quantity a `Denoiser` outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prediction {
    /// ε: the noise added (DDPM Eq. 11).
    Epsilon,
    /// x₀: the clean sample (DDIM's f_θ).
    Sample,
    /// v = a·ε − s·x₀ (progressive distillation / diffusers' "v_prediction").
    V,
    /// ∇ log p_t(x_t) = −ε/s.
    Score,
}

impl Prediction {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "epsilon" | "eps" => Some(Self::Epsilon),
            "sample" | "x0" => Some(Self::Sample),
            "v" | "v-prediction" => Some(Self::V),
            "score" => Some(Self::Score),
            _ => None,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Self::Epsilon => "epsilon",
            Self::Sample => "sample",
            Self::V => "v",
            Self::Score => "score",
        }
    }
}

/// Recover (x̂₀, ε̂) from a model `output` of kind `kind` at `x_t`.
/// `a`, `s` are `[B, 1, …]` tensors holding √ᾱ_t and √(1 − ᾱ_t).
pub fn to_x0_eps(
    kind: Prediction,
    output: &Tensor,
    x_t: &Tensor,
    a: &Tensor,
    s: &Tensor,
) -> Result<(Tensor, Tensor)> {
    Ok(match kind {
        Prediction::Epsilon => {
            let eps = output.clone();
            let x0 = x_t.sub(&eps.broadcast_mul(s)?)?.broadcast_div(a)?;
            (x0, eps)
        }
        Prediction::Sample => {
            let x0 = output.clone();
            let eps = x_t.sub(&x0.broadcast_mul(a)?)?.broadcast_div(s)?;
            (x0, eps)
        }
        Prediction::V => {
            let x0 = x_t.broadcast_mul(a)?.sub(&output.broadcast_mul(s)?)?;
            let eps = x_t.broadcast_mul(s)?.add(&output.broadcast_mul(a)?)?;
            (x0, eps)
        }
        Prediction::Score => {
            let eps = output.broadcast_mul(s)?.neg()?;
            let x0 = x_t.sub(&eps.broadcast_mul(s)?)?.broadcast_div(a)?;
            (x0, eps)
        }
    })
}

/// The regression target of kind `kind` for the pair (x₀, ε) (L_simple targets).
pub fn target(kind: Prediction, x0: &Tensor, eps: &Tensor, a: &Tensor, s: &Tensor) -> Result<Tensor> {
    Ok(match kind {
        Prediction::Epsilon => eps.clone(),
        Prediction::Sample => x0.clone(),
        Prediction::V => eps.broadcast_mul(a)?.sub(&x0.broadcast_mul(s)?)?,
        Prediction::Score => eps.broadcast_div(s)?.neg()?,
    })
}

/// Express a prediction in another parameterisation.
pub fn convert(
    from: Prediction,
    to: Prediction,
    output: &Tensor,
    x_t: &Tensor,
    a: &Tensor,
    s: &Tensor,
) -> Result<Tensor> {
    if from == to {
        return Ok(output.clone());
    }
    let (x0, eps) = to_x0_eps(from, output, x_t, a, s)?;
    target(to, &x0, &eps, a, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn round_trips() {
        let d = Device::Cpu;
        let x0 = Tensor::new(&[[0.3f32, -1.2], [2.0, 0.5]], &d).unwrap();
        let eps = Tensor::new(&[[1.1f32, 0.4], [-0.7, 0.2]], &d).unwrap();
        let a = Tensor::new(&[[0.8f32], [0.3]], &d).unwrap();
        let s = a.sqr().unwrap().affine(-1.0, 1.0).unwrap().sqrt().unwrap();
        let xt = x0.broadcast_mul(&a).unwrap().add(&eps.broadcast_mul(&s).unwrap()).unwrap();
        for k in [Prediction::Epsilon, Prediction::Sample, Prediction::V, Prediction::Score] {
            let out = target(k, &x0, &eps, &a, &s).unwrap();
            let (x0h, epsh) = to_x0_eps(k, &out, &xt, &a, &s).unwrap();
            let e1 = (x0h - &x0).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            let e2 = (epsh - &eps).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(e1 < 1e-5 && e2 < 1e-5, "{k:?}: {e1} {e2}");
        }
    }
}
