//! EDM (Karras et al. 2022, Table 1 and §5; seed 000 "EDM"): preconditioning, training
//! noise distribution, loss weight and the ρ-schedule of sampling noise levels.

use crate::error::{check_positive, CoreError, Result};
use serde::{Deserialize, Serialize};

/// The EDM hyper-parameters (defaults: Karras et al. 2022, Table 1, "Ours").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EdmConfig {
    /// σ_data, the data standard deviation (0.5).
    pub sigma_data: f64,
    /// Mean of ln σ during training (−1.2).
    pub p_mean: f64,
    /// Std of ln σ during training (1.2).
    pub p_std: f64,
    /// Smallest sampling noise level (0.002).
    pub sigma_min: f64,
    /// Largest sampling noise level (80).
    pub sigma_max: f64,
    /// Schedule exponent ρ (7).
    pub rho: f64,
}

impl Default for EdmConfig {
    fn default() -> Self {
        Self { sigma_data: 0.5, p_mean: -1.2, p_std: 1.2, sigma_min: 0.002, sigma_max: 80.0, rho: 7.0 }
    }
}

impl EdmConfig {
    pub fn validate(&self) -> Result<()> {
        check_positive("sigma_data", self.sigma_data)?;
        check_positive("p_std", self.p_std)?;
        check_positive("sigma_min", self.sigma_min)?;
        check_positive("sigma_max", self.sigma_max)?;
        check_positive("rho", self.rho)?;
        if !self.p_mean.is_finite() {
            return Err(CoreError::invalid("p_mean", "must be finite"));
        }
        if self.sigma_min >= self.sigma_max {
            return Err(CoreError::invalid("sigma_min", "must be smaller than sigma_max"));
        }
        Ok(())
    }

    /// c_skip(σ) = σ_d²/(σ² + σ_d²).
    pub fn c_skip(&self, sigma: f64) -> f64 {
        let sd2 = self.sigma_data.powi(2);
        sd2 / (sigma * sigma + sd2)
    }
    /// c_out(σ) = σ·σ_d/√(σ² + σ_d²).
    pub fn c_out(&self, sigma: f64) -> f64 {
        sigma * self.sigma_data / (sigma * sigma + self.sigma_data.powi(2)).sqrt()
    }
    /// c_in(σ) = 1/√(σ² + σ_d²).
    pub fn c_in(&self, sigma: f64) -> f64 {
        1.0 / (sigma * sigma + self.sigma_data.powi(2)).sqrt()
    }
    /// c_noise(σ) = ¼·ln σ.
    pub fn c_noise(&self, sigma: f64) -> f64 {
        0.25 * sigma.ln()
    }
    /// Loss weight λ(σ) = (σ² + σ_d²)/(σ·σ_d)², which makes λ·c_out² = 1.
    pub fn loss_weight(&self, sigma: f64) -> f64 {
        (sigma * sigma + self.sigma_data.powi(2)) / (sigma * self.sigma_data).powi(2)
    }
    /// Training noise level from a standard normal draw n: ln σ = P_mean + P_std·n.
    pub fn training_sigma(&self, n: f64) -> f64 {
        (self.p_mean + self.p_std * n).exp()
    }
    /// Karras schedule with this config's σ_min, σ_max, ρ (see [`karras_sigmas`]).
    pub fn sigmas(&self, steps: usize) -> Result<Vec<f64>> {
        karras_sigmas(steps, self.sigma_min, self.sigma_max, self.rho)
    }
}

/// σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for i = 0..N−1, followed by σ_N = 0
/// (Karras et al. 2022, Eq. 5). Returns N + 1 values.
pub fn karras_sigmas(steps: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Result<Vec<f64>> {
    check_positive("sigma_min", sigma_min)?;
    check_positive("sigma_max", sigma_max)?;
    check_positive("rho", rho)?;
    if sigma_min >= sigma_max {
        return Err(CoreError::invalid("sigma_min", "must be smaller than sigma_max"));
    }
    if steps < 2 {
        return Err(CoreError::invalid("steps", "need at least 2 steps"));
    }
    let (a, b) = (sigma_max.powf(1.0 / rho), sigma_min.powf(1.0 / rho));
    let mut out: Vec<f64> =
        (0..steps).map(|i| (a + i as f64 / (steps - 1) as f64 * (b - a)).powf(rho)).collect();
    out.push(0.0);
    Ok(out)
}

/// Karras' ρ-schedule without its end point, for progressive distillation's nested grids:
/// σ_i = (σ_max^{1/ρ} + (i/steps)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for i = 0, …, steps − 1, then 0
/// (`steps + 1` values). Every point of the `steps` grid is the even point of the `2·steps` one,
/// so a student of N steps is trained on the teacher's 2N-step grid.
pub fn nested_karras_sigmas(steps: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Result<Vec<f64>> {
    check_positive("sigma_min", sigma_min)?;
    check_positive("sigma_max", sigma_max)?;
    check_positive("rho", rho)?;
    if sigma_min >= sigma_max {
        return Err(CoreError::invalid("sigma_min", "must be smaller than sigma_max"));
    }
    if steps == 0 {
        return Err(CoreError::invalid("steps", "need at least 1 step"));
    }
    let (a, b) = (sigma_max.powf(1.0 / rho), sigma_min.powf(1.0 / rho));
    let mut out: Vec<f64> = (0..steps).map(|i| (a + i as f64 / steps as f64 * (b - a)).powf(rho)).collect();
    out.push(0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_grids_nest() {
        let g4 = nested_karras_sigmas(4, 0.002, 80.0, 7.0).unwrap();
        let g8 = nested_karras_sigmas(8, 0.002, 80.0, 7.0).unwrap();
        assert_eq!(g4.len(), 5);
        assert_eq!(g4[0], 80.0);
        for k in 0..=4 {
            assert!((g4[k] - g8[2 * k]).abs() <= 1e-12 * g4[k].max(1.0), "{k}");
        }
        assert_eq!(nested_karras_sigmas(1, 0.002, 80.0, 7.0).unwrap(), vec![80.0, 0.0]);
        assert!(nested_karras_sigmas(0, 0.002, 80.0, 7.0).is_err());
    }

    #[test]
    fn preconditioning_identities() {
        let c = EdmConfig::default();
        for &s in &[0.002, 0.1, 0.5, 3.0, 80.0] {
            // Unit-variance effective target: c_skip² σ_d² + c_out² ... (Karras et al. Eq. 131–134)
            let sd2 = c.sigma_data.powi(2);
            let var_in = c.c_in(s).powi(2) * (sd2 + s * s);
            assert!((var_in - 1.0).abs() < 1e-12);
            let var_target =
                ((1.0 - c.c_skip(s)).powi(2) * sd2 + c.c_skip(s).powi(2) * s * s) / c.c_out(s).powi(2);
            assert!((var_target - 1.0).abs() < 1e-12);
            assert!((c.loss_weight(s) * c.c_out(s).powi(2) - 1.0).abs() < 1e-12);
        }
        assert!((c.c_noise(1.0)).abs() < 1e-15);
        assert!((c.training_sigma(0.0) - (-1.2f64).exp()).abs() < 1e-15);
    }

    #[test]
    fn karras_schedule_endpoints() {
        let s = karras_sigmas(18, 0.002, 80.0, 7.0).unwrap();
        assert_eq!(s.len(), 19);
        assert!((s[0] - 80.0).abs() < 1e-9 && (s[17] - 0.002).abs() < 1e-12 && s[18] == 0.0);
        for w in s.windows(2) {
            assert!(w[1] < w[0]);
        }
        assert!(karras_sigmas(1, 0.002, 80.0, 7.0).is_err());
        assert!(EdmConfig { rho: -1.0, ..Default::default() }.validate().is_err());
    }
}
