//! Consistency models (Song et al. 2023; seed 002 "Consistency Models"): the consistency function
//! ψ_θ(x, σ) = c_skip(σ)·x + c_out(σ)·F_θ(c_in(σ)·x; ¼ ln σ) with
//! c_skip = σ_d²/((σ − σ_min)² + σ_d²), c_out = (σ − σ_min)·σ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²),
//! so ψ(x, σ_min) = x exactly; ψ is an x̂₀ estimate, i.e. a σ-space denoiser. One-step and
//! multistep consistency sampling.

use super::error::{ContinuousError, Result};
use super::stats::SampleStats;
use super::view::{per_sample, SigmaDenoiser};
use candle_core::Tensor;
use rediffuse_core::{Denoiser, NoiseSource};

/// The consistency parameterisation's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsistencyParams {
    pub sigma_min: f64,
    pub sigma_data: f64,
}

impl ConsistencyParams {
    pub fn c_skip(&self, s: f64) -> f64 {
        let sd2 = self.sigma_data * self.sigma_data;
        sd2 / ((s - self.sigma_min).powi(2) + sd2)
    }
    pub fn c_out(&self, s: f64) -> f64 {
        (s - self.sigma_min) * self.sigma_data / (s * s + self.sigma_data * self.sigma_data).sqrt()
    }
    pub fn c_in(&self, s: f64) -> f64 {
        1.0 / (s * s + self.sigma_data * self.sigma_data).sqrt()
    }
}

/// ψ_θ around a raw network F (model time ¼ ln σ, as EDM's c_noise).
#[derive(Debug, Clone)]
pub struct ConsistencyPrecond<D> {
    pub net: D,
    pub params: ConsistencyParams,
}

impl<D: Denoiser> SigmaDenoiser for ConsistencyPrecond<D> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        // (the σ count is checked by `per_sample`)
        if let Some(s) = sigma.iter().find(|s| !(s.is_finite() && **s >= self.params.sigma_min)) {
            return Err(ContinuousError::invalid(
                "sigma",
                format!("a consistency model is defined for σ >= σ_min = {}, got {s}", self.params.sigma_min),
            ));
        }
        let p = &self.params;
        let col = |f: &dyn Fn(f64) -> f64| per_sample(&sigma.iter().map(|&s| f(s)).collect::<Vec<_>>(), x);
        let c_noise: Vec<f32> = sigma.iter().map(|&s| (0.25 * s.ln()) as f32).collect();
        let time = Tensor::from_vec(c_noise, sigma.len(), x.device())?;
        let f = self.net.forward(&x.broadcast_mul(&col(&|s| p.c_in(s))?)?, &time)?;
        let f = if f.dtype() == x.dtype() { f } else { f.to_dtype(x.dtype())? };
        Ok(x.broadcast_mul(&col(&|s| p.c_skip(s))?)?.add(&f.broadcast_mul(&col(&|s| p.c_out(s))?)?)?)
    }
}

/// Multistep consistency sampling (Song et al. 2023, Algorithm 1): x̂ = ψ(σ₀·z, σ₀), then for each
/// further level τ: x = x̂ + √(τ² − σ_min²)·z', x̂ = ψ(x, τ). `levels` descend from σ_max (one
/// level is one-step generation); `x` is the prior draw σ₀·z; fresh noise per sample from `noise`.
pub fn consistency_sample(
    model: &dyn SigmaDenoiser,
    x: &Tensor,
    levels: &[f64],
    sigma_min: f64,
    noise: &mut NoiseSource,
) -> Result<(Tensor, SampleStats)> {
    if levels.is_empty() || levels.windows(2).any(|w| w[1] >= w[0]) || levels.iter().any(|&s| s < sigma_min) {
        return Err(ContinuousError::invalid("levels", "need descending levels >= σ_min"));
    }
    let b = x.dim(0)?;
    let shape = x.dims()[1..].to_vec();
    let mut x0 = model.denoise(x, &vec![levels[0]; b])?;
    for &tau in &levels[1..] {
        let z = noise.randn(&shape, x.device())?.to_dtype(x.dtype())?;
        let xt = x0.add(&z.affine((tau * tau - sigma_min * sigma_min).max(0.0).sqrt(), 0.0)?)?;
        x0 = model.denoise(&xt, &vec![tau; b])?;
    }
    Ok((x0, SampleStats { nfe: levels.len(), steps: levels.len(), rejected_steps: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rediffuse_core::Prediction;

    /// F = 3 everywhere.
    struct Three;
    impl Denoiser for Three {
        fn prediction(&self) -> Prediction {
            Prediction::Sample
        }
        fn forward(&self, x: &Tensor, _t: &Tensor) -> rediffuse_core::Result<Tensor> {
            Ok(x.ones_like()?.affine(3.0, 0.0)?)
        }
    }

    #[test]
    fn boundary_condition_and_sampling() {
        let dev = Device::Cpu;
        let p = ConsistencyParams { sigma_min: 0.002, sigma_data: 0.5 };
        assert_eq!((p.c_skip(0.002), p.c_out(0.002)), (1.0, 0.0));
        let m = ConsistencyPrecond { net: Three, params: p };
        let x = Tensor::new(&[[0.25f32, -1.0]], &dev).unwrap();
        // ψ(x, σ_min) = x exactly, whatever F
        let at_min: Vec<Vec<f32>> = m.denoise(&x, &[0.002]).unwrap().to_vec2().unwrap();
        assert_eq!(at_min, vec![vec![0.25, -1.0]]);
        let s = 1.0;
        let want = p.c_skip(s) * 0.25 + p.c_out(s) * 3.0;
        let v: Vec<Vec<f32>> = m.denoise(&x, &[s]).unwrap().to_vec2().unwrap();
        assert!((v[0][0] as f64 - want).abs() < 1e-6);
        assert!(m.denoise(&x, &[0.001]).is_err());
        assert!(m.denoise(&x, &[1.0, 1.0]).is_err(), "one σ per row");
        // one step: ψ(σ_max z, σ_max); the levels are checked
        let mut noise = NoiseSource::new(0, 0, 1);
        let (one, st) = consistency_sample(&m, &x, &[80.0], 0.002, &mut noise).unwrap();
        assert_eq!(st.nfe, 1);
        let direct = m.denoise(&x, &[80.0]).unwrap();
        assert_eq!(
            one.sub(&direct).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(),
            0.0
        );
        assert!(consistency_sample(&m, &x, &[1.0, 2.0], 0.002, &mut noise).is_err());
        assert!(consistency_sample(&m, &x, &[], 0.002, &mut noise).is_err());
    }
}
