//! Flow matching with the linear (optimal-transport) interpolant (Lipman et al. 2023; Liu et al.
//! 2023 "rectified flow"; seed 002 "Flow Matching", seed 000 "Rectified Flow").
//!
//! Noise x₀ ~ N(0, I) at t = 0, data x₁ at t = 1:
//! x_t = t·x₁ + (1 − (1 − σ_min)·t)·x₀, target velocity u = x₁ − (1 − σ_min)·x₀.
//!
//! In σ-space (the view every σ-space sampler uses, x̃ = x/α with α_t = t and
//! σ_t = 1 − (1 − σ_min)t): σ̃ = σ_t/t, so t = 1/(σ̃ + 1 − σ_min), and the data prediction is
//! D = E[x₁ | x_t] = (1 − σ_min)·x_t + σ_t·v(x_t, t) (because σ_t + (1 − σ_min)t = 1).

use crate::error::{CoreError, Result};
use candle_core::Tensor;

/// Check σ_min ∈ [0, 1).
pub fn check_sigma_min(sigma_min: f64) -> Result<()> {
    if !(sigma_min.is_finite() && (0.0..1.0).contains(&sigma_min)) {
        return Err(CoreError::invalid("sigma_min", format!("must lie in [0, 1), got {sigma_min}")));
    }
    Ok(())
}

/// σ_t = 1 − (1 − σ_min)·t, the noise scale of x_t.
pub fn sigma_t(t: f64, sigma_min: f64) -> f64 {
    1.0 - (1.0 - sigma_min) * t
}

/// σ̃(t) = σ_t / t, the σ-space noise level of flow time t ∈ (0, 1].
pub fn sigma_of_time(t: f64, sigma_min: f64) -> f64 {
    sigma_t(t, sigma_min) / t
}

/// The flow time t = 1/(σ̃ + 1 − σ_min) of the σ-space level σ̃ ≥ 0 (inverse of [`sigma_of_time`]).
pub fn time_of_sigma(sigma: f64, sigma_min: f64) -> f64 {
    1.0 / (sigma + 1.0 - sigma_min)
}

/// Per-sample column `[B, 1, …]` (rank of `like`) of `v`.
fn column(v: &[f64], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![v.len()];
    shape.resize(like.rank(), 1);
    let data: Vec<f32> = v.iter().map(|&a| a as f32).collect();
    Ok(Tensor::from_vec(data, shape, like.device())?)
}

/// x_t = t·x₁ + σ_t·x₀ for one t per row, and the target u = x₁ − (1 − σ_min)·x₀.
pub fn interpolate(x1: &Tensor, x0: &Tensor, t: &[f64], sigma_min: f64) -> Result<(Tensor, Tensor)> {
    if x1.dims() != x0.dims() || t.len() != x1.dim(0)? {
        return Err(CoreError::Shape(format!(
            "flow pair {:?} / {:?} with {} times",
            x1.dims(),
            x0.dims(),
            t.len()
        )));
    }
    let a = column(t, x1)?;
    let s: Vec<f64> = t.iter().map(|&t| sigma_t(t, sigma_min)).collect();
    let x_t = x1.broadcast_mul(&a)?.add(&x0.broadcast_mul(&column(&s, x1)?)?)?;
    let u = x1.sub(&x0.affine(1.0 - sigma_min, 0.0)?)?;
    Ok((x_t, u))
}

/// The data prediction D = (1 − σ_min)·x_t + σ_t·v of a velocity `v` at `x_t` (one t per row).
pub fn velocity_to_data(x_t: &Tensor, v: &Tensor, t: &[f64], sigma_min: f64) -> Result<Tensor> {
    let s: Vec<f64> = t.iter().map(|&t| sigma_t(t, sigma_min)).collect();
    Ok(x_t.affine(1.0 - sigma_min, 0.0)?.add(&v.broadcast_mul(&column(&s, v)?)?)?)
}

/// The exact marginal velocity field v*(x, t) = E[x₁ − (1 − σ_min)x₀ | x_t = x] of Gaussian data
/// x₁ ~ N(μ, diag(s²)) with independent noise: per coordinate
/// v* = μ + (t s² − (1 − σ_min)σ_t)/(t² s² + σ_t²)·(x − tμ). `x` is `n·d` row-major.
pub fn gaussian_velocity(x: &[f64], t: f64, mean: &[f64], var: &[f64], sigma_min: f64) -> Vec<f64> {
    let d = mean.len();
    let st = sigma_t(t, sigma_min);
    x.iter()
        .enumerate()
        .map(|(i, &xi)| {
            let (m, s2) = (mean[i % d], var[i % d]);
            let gain = (t * s2 - (1.0 - sigma_min) * st) / (t * t * s2 + st * st);
            m + gain * (xi - t * m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn time_sigma_round_trip_and_endpoints() {
        for sm in [0.0, 1e-4, 0.1] {
            for t in [1e-3, 0.3, 0.9, 1.0] {
                let s = sigma_of_time(t, sm);
                assert!((time_of_sigma(s, sm) - t).abs() < 1e-12);
            }
            assert!((sigma_of_time(1.0, sm) - sm).abs() < 1e-15);
        }
    }

    #[test]
    fn interpolant_target_and_data_prediction() {
        let dev = Device::Cpu;
        let x1 = Tensor::new(&[[1f32, 2.0], [3.0, -1.0]], &dev).unwrap();
        let x0 = Tensor::new(&[[0.5f32, -0.5], [1.0, 1.0]], &dev).unwrap();
        let sm = 0.1;
        let (x_t, u) = interpolate(&x1, &x0, &[0.25, 0.5], sm).unwrap();
        let xt: Vec<Vec<f32>> = x_t.to_vec2().unwrap();
        // row 0: 0.25·1 + (1 − 0.9·0.25)·0.5 = 0.25 + 0.3875
        assert!((xt[0][0] - 0.6375).abs() < 1e-6);
        let uu: Vec<Vec<f32>> = u.to_vec2().unwrap();
        assert!((uu[1][1] - (-1.0 - 0.9)).abs() < 1e-6);
        // with the exact velocity (the true u), D recovers x₁ exactly
        let d = velocity_to_data(&x_t, &u, &[0.25, 0.5], sm).unwrap();
        let diff = d.sub(&x1).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn gaussian_velocity_limits() {
        // t → 1 with σ_min = 0: v* = E[x₁ − x₀ | x₁ = x] = x; at t = 0: v* = μ − x
        let v1 = gaussian_velocity(&[0.7], 1.0, &[0.2], &[2.0], 0.0);
        assert!((v1[0] - 0.7).abs() < 1e-12);
        let v0 = gaussian_velocity(&[0.7], 0.0, &[0.2], &[2.0], 0.0);
        assert!((v0[0] - (0.2 - 0.7)).abs() < 1e-12);
        assert!(
            check_sigma_min(-0.1).is_err() && check_sigma_min(1.0).is_err() && check_sigma_min(0.0).is_ok()
        );
    }
}
