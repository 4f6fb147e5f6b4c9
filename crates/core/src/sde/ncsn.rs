//! NCSN noise levels (Song & Ermon 2019; seed 002 "NCSN": σ₁/σ₂ = … = σ_{L−1}/σ_L).

use crate::error::{check_positive, CoreError, Result};

/// Geometric sequence σ₁ = `sigma_max` > … > σ_L = `sigma_min` with constant ratio, length `levels`.
pub fn geometric_sigmas(sigma_max: f64, sigma_min: f64, levels: usize) -> Result<Vec<f64>> {
    check_positive("sigma_max", sigma_max)?;
    check_positive("sigma_min", sigma_min)?;
    if sigma_min >= sigma_max {
        return Err(CoreError::invalid("sigma_min", "must be smaller than sigma_max"));
    }
    if levels < 2 {
        return Err(CoreError::invalid("levels", "need at least 2 noise levels"));
    }
    let (a, b) = (sigma_max.ln(), sigma_min.ln());
    Ok((0..levels).map(|i| (a + (b - a) * i as f64 / (levels - 1) as f64).exp()).collect())
}

/// Annealed Langevin step size α_i = ε·σ_i²/σ_L² (Song & Ermon 2019, Algorithm 1).
pub fn langevin_step_size(eps: f64, sigma_i: f64, sigma_last: f64) -> f64 {
    eps * (sigma_i / sigma_last).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_ratio() {
        let s = geometric_sigmas(50.0, 0.01, 10).unwrap();
        assert!((s[0] - 50.0).abs() < 1e-12 && (s[9] - 0.01).abs() < 1e-15);
        let r = s[0] / s[1];
        for w in s.windows(2) {
            assert!((w[0] / w[1] - r).abs() < 1e-9);
        }
        assert!(geometric_sigmas(0.01, 50.0, 10).is_err());
        assert!(geometric_sigmas(1.0, 0.1, 1).is_err());
        assert!((langevin_step_size(2e-5, 1.0, 0.01) - 0.2).abs() < 1e-12);
    }
}
