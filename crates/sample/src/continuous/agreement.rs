//! How well one denoiser predicts another along the second's own sampling trajectory (seed 002,
//! Analytic Theory: the ELS machine against a trained network): the deterministic trajectory,
//! r² per sample and its median.

use super::error::{ContinuousError, Result};
use super::view::{denoise_at, SigmaDenoiser};
use candle_core::{DType, Tensor};

/// The DDIM (η = 0) trajectory of `model` in σ-space — Euler steps of dx/dσ = (x − D(x; σ))/σ
/// through `sigmas` (descending, ≥ 0) from `x` — calling `visit(i, σ_i, x_i, D(x_i; σ_i))` at
/// every σ_i > 0 before stepping. Returns the end point.
pub fn ddim_trajectory(
    model: &dyn SigmaDenoiser,
    mut x: Tensor,
    sigmas: &[f64],
    mut visit: impl FnMut(usize, f64, &Tensor, &Tensor) -> Result<()>,
) -> Result<Tensor> {
    if sigmas.len() < 2 || sigmas.windows(2).any(|w| !(w[1] < w[0])) || sigmas.iter().any(|s| !(*s >= 0.0)) {
        return Err(ContinuousError::invalid("sigmas", "need ≥ 2 strictly decreasing noise levels ≥ 0"));
    }
    for (i, w) in sigmas.windows(2).enumerate() {
        let (s, next) = (w[0], w[1]);
        let d = denoise_at(&model, &x, s)?;
        visit(i, s, &x, &d)?;
        // x + (σ' − σ)(x − D)/σ = D + (σ'/σ)(x − D)
        x = (&d + x.sub(&d)?.affine(next / s, 0.0)?)?;
    }
    Ok(x)
}

/// Coefficient of determination of `pred` as a prediction of `reference` (`[B, …]`), per sample:
/// r² = 1 − Σ(ref − pred)² / Σ(ref − mean(ref))², sums over the sample's values (1 is a perfect
/// prediction, 0 no better than the sample's mean value, negative worse).
pub fn r_squared(reference: &Tensor, pred: &Tensor) -> Result<Vec<f64>> {
    if reference.dims() != pred.dims() || reference.rank() < 1 {
        return Err(ContinuousError::Shape(format!("r²: {:?} vs {:?}", reference.dims(), pred.dims())));
    }
    let b = reference.dim(0)?;
    let r: Vec<Vec<f64>> = reference.to_dtype(DType::F64)?.reshape((b, ()))?.to_vec2()?;
    let p: Vec<Vec<f64>> = pred.to_dtype(DType::F64)?.reshape((b, ()))?.to_vec2()?;
    Ok(r.iter()
        .zip(&p)
        .map(|(r, p)| {
            let mean = r.iter().sum::<f64>() / r.len() as f64;
            let ss_res: f64 = r.iter().zip(p).map(|(a, b)| (a - b).powi(2)).sum();
            let ss_tot: f64 = r.iter().map(|a| (a - mean).powi(2)).sum();
            if ss_tot > 0.0 {
                1.0 - ss_res / ss_tot
            } else if ss_res == 0.0 {
                1.0
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect())
}

/// Median of `values` (NaN for none; the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// D(x; σ) = x/(1 + σ²): the exact denoiser of standard normal data.
    struct Shrink;
    impl SigmaDenoiser for Shrink {
        fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
            Ok(x.affine(1.0 / (1.0 + sigma[0] * sigma[0]), 0.0)?)
        }
    }

    #[test]
    fn r_squared_and_median() {
        let d = Device::Cpu;
        let r = Tensor::new(&[[1f32, 2.0, 3.0], [0.0, 0.0, 0.0]], &d).unwrap();
        let p = Tensor::new(&[[1f32, 2.0, 4.0], [0.0, 0.0, 0.0]], &d).unwrap();
        let v = r_squared(&r, &p).unwrap();
        assert!((v[0] - 0.5).abs() < 1e-12, "{v:?}"); // 1 − 1/2
        assert_eq!(v[1], 1.0);
        assert!(r_squared(&r, &p.narrow(1, 0, 2).unwrap()).is_err());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    /// For Gaussian data the probability-flow ODE maps x(σ) = x(σ₀)·√((1 + σ²)/(1 + σ₀²)); the
    /// Euler trajectory approaches it as steps are refined, and visits every σ > 0 once.
    #[test]
    fn ddim_trajectory_follows_the_ode() {
        let d = Device::Cpu;
        let s0 = 10.0f64;
        let x0 = Tensor::new(&[[s0 as f32]], &d).unwrap();
        let n = 2000;
        let sigmas: Vec<f64> = (0..=n).map(|i| s0 * (1.0 - i as f64 / n as f64)).collect();
        let mut visits = 0;
        let end = ddim_trajectory(&Shrink, x0, &sigmas, |_, s, _, _| {
            assert!(s > 0.0);
            visits += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(visits, n);
        let want = s0 * (1.0 / (1.0 + s0 * s0)).sqrt();
        let got = end.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - want).abs() < 2e-3, "{got} vs {want}");
        assert!(ddim_trajectory(
            &Shrink,
            Tensor::zeros((1, 1), DType::F32, &d).unwrap(),
            &[1.0, 2.0],
            |_, _, _, _| Ok(())
        )
        .is_err());
    }
}
