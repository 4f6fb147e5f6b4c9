//! Gaussian KL and the discretized Gaussian decoder (DDPM Eq. 5, 13), elementwise.

use crate::error::Result;
use candle_core::Tensor;

/// KL(N(μ₁, e^{lv₁}) ‖ N(μ₂, e^{lv₂})) per element, in nats (the L_{t−1} terms of Eq. 5).
pub fn normal_kl(mean1: &Tensor, logvar1: &Tensor, mean2: &Tensor, logvar2: &Tensor) -> Result<Tensor> {
    // 0.5 (−1 + lv2 − lv1 + e^{lv1 − lv2} + (μ1 − μ2)² e^{−lv2})
    let d = mean1.broadcast_sub(mean2)?;
    let t1 = logvar2.broadcast_sub(logvar1)?;
    let t2 = logvar1.broadcast_sub(logvar2)?.exp()?;
    let t3 = d.sqr()?.broadcast_mul(&logvar2.neg()?.exp()?)?;
    Ok(t1.broadcast_add(&t2)?.broadcast_add(&t3)?.affine(0.5, -0.5)?)
}

/// f64 scalar version of [`normal_kl`].
pub fn normal_kl_f64(mean1: f64, logvar1: f64, mean2: f64, logvar2: f64) -> f64 {
    0.5 * (-1.0 + logvar2 - logvar1 + (logvar1 - logvar2).exp() + (mean1 - mean2).powi(2) * (-logvar2).exp())
}

/// Φ(x) via the tanh approximation used by the DDPM/iDDPM code.
pub fn approx_standard_normal_cdf(x: &Tensor) -> Result<Tensor> {
    let c = (2.0f64 / std::f64::consts::PI).sqrt();
    let inner = x.affine(c, 0.0)?.add(&x.powf(3.0)?.affine(c * 0.044715, 0.0)?)?;
    Ok(inner.tanh()?.affine(0.5, 0.5)?)
}

/// f64 scalar Φ(x) via the same tanh approximation.
pub fn approx_standard_normal_cdf_f64(x: f64) -> f64 {
    let c = (2.0f64 / std::f64::consts::PI).sqrt();
    0.5 * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh())
}

/// log p(x | μ, σ) of the discretized Gaussian decoder (DDPM Eq. 13) for data
/// scaled from {0, …, 255} to [−1, 1]: bins of width 2/255, the outermost
/// bins extended to ±∞. `x`, `means`, `log_scales` (log σ) broadcast together.
pub fn discretized_gaussian_log_likelihood(
    x: &Tensor,
    means: &Tensor,
    log_scales: &Tensor,
) -> Result<Tensor> {
    let centered = x.broadcast_sub(means)?;
    let inv_stdv = log_scales.neg()?.exp()?;
    let plus_in = centered.affine(1.0, 1.0 / 255.0)?.broadcast_mul(&inv_stdv)?;
    let min_in = centered.affine(1.0, -1.0 / 255.0)?.broadcast_mul(&inv_stdv)?;
    let cdf_plus = approx_standard_normal_cdf(&plus_in)?;
    let cdf_min = approx_standard_normal_cdf(&min_in)?;
    let log_cdf_plus = cdf_plus.maximum(1e-12)?.log()?;
    let log_one_minus_cdf_min = cdf_min.affine(-1.0, 1.0)?.maximum(1e-12)?.log()?;
    let log_delta = cdf_plus.sub(&cdf_min)?.maximum(1e-12)?.log()?;
    let lo = x.lt(-0.999)?;
    let hi = x.gt(0.999)?;
    let inner = hi.where_cond(&log_one_minus_cdf_min, &log_delta)?;
    Ok(lo.where_cond(&log_cdf_plus, &inner)?)
}

/// f64 scalar version of [`discretized_gaussian_log_likelihood`].
pub fn discretized_gaussian_log_likelihood_f64(x: f64, mean: f64, log_scale: f64) -> f64 {
    let inv = (-log_scale).exp();
    let cdf_plus = approx_standard_normal_cdf_f64((x - mean + 1.0 / 255.0) * inv);
    let cdf_min = approx_standard_normal_cdf_f64((x - mean - 1.0 / 255.0) * inv);
    if x < -0.999 {
        cdf_plus.max(1e-12).ln()
    } else if x > 0.999 {
        (1.0 - cdf_min).max(1e-12).ln()
    } else {
        (cdf_plus - cdf_min).max(1e-12).ln()
    }
}

/// log N(x; μ, e^{logvar}) per element.
pub fn gaussian_log_density(x: &Tensor, mean: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let d = x.broadcast_sub(mean)?;
    let q = d.sqr()?.broadcast_mul(&logvar.neg()?.exp()?)?;
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    Ok(q.broadcast_add(logvar)?.affine(-0.5, -0.5 * ln2pi)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn kl_matches_closed_form_and_zero_on_equal() {
        let d = Device::Cpu;
        let m1 = Tensor::new(&[0.3f32, 1.0], &d).unwrap();
        let l1 = Tensor::new(&[-0.5f32, 0.2], &d).unwrap();
        let m2 = Tensor::new(&[-0.1f32, 1.0], &d).unwrap();
        let l2 = Tensor::new(&[0.4f32, 0.2], &d).unwrap();
        let kl: Vec<f32> = normal_kl(&m1, &l1, &m2, &l2).unwrap().to_vec1().unwrap();
        assert!((kl[0] as f64 - normal_kl_f64(0.3, -0.5, -0.1, 0.4)).abs() < 1e-5);
        assert!(kl[1].abs() < 1e-6);
    }

    #[test]
    fn decoder_bins_sum_to_one() {
        for (mean, ls) in [(0.0, -3.0), (0.37, -1.0), (-0.9, -5.0), (0.99, 0.5)] {
            let total: f64 = (0..256)
                .map(|k| {
                    let x = k as f64 / 127.5 - 1.0;
                    discretized_gaussian_log_likelihood_f64(x, mean, ls).exp()
                })
                .sum();
            assert!((total - 1.0).abs() < 1e-6, "mean={mean} ls={ls} total={total}");
        }
    }
}
