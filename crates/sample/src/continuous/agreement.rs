//! How well one denoiser predicts another (seed 002, Analytic Theory: the ELS machine against a
//! trained network along the network's own Euler/DDIM trajectory): r² per sample and its median.

use super::error::{ContinuousError, Result};
use candle_core::{DType, Tensor};

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
}
