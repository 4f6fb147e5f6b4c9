//! σ-space view of a discrete DDPM schedule (k-diffusion's `DiscreteSchedule`):
//! σ_i = √((1 − ᾱ_i)/ᾱ_i), with index ↔ σ conversion by linear interpolation in ln σ.

use crate::error::{check_non_negative, CoreError, Result};
use crate::schedule::DiffusionSchedule;

/// The noise levels of a discrete schedule, ascending with the index (entry i is DDPM index i).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteSigmas {
    pub sigmas: Vec<f64>,
    pub log_sigmas: Vec<f64>,
}

impl DiscreteSigmas {
    pub fn new(schedule: &DiffusionSchedule) -> Result<Self> {
        Self::from_alpha_bar(&schedule.alpha_bar)
    }

    /// From ᾱ values (strictly decreasing in (0, 1)).
    pub fn from_alpha_bar(alpha_bar: &[f64]) -> Result<Self> {
        if alpha_bar.is_empty() {
            return Err(CoreError::invalid("alpha_bar", "empty schedule"));
        }
        let mut prev = f64::INFINITY;
        let mut sigmas = Vec::with_capacity(alpha_bar.len());
        for (i, &a) in alpha_bar.iter().enumerate() {
            if !(a > 0.0 && a < 1.0) || a >= prev {
                return Err(CoreError::invalid(
                    "alpha_bar",
                    format!(
                        "entry {i} = {a} must be strictly decreasing in (0, 1) (zero terminal SNR has σ = ∞)"
                    ),
                ));
            }
            prev = a;
            sigmas.push(((1.0 - a) / a).sqrt());
        }
        let log_sigmas = sigmas.iter().map(|s| s.ln()).collect();
        Ok(Self { sigmas, log_sigmas })
    }

    pub fn len(&self) -> usize {
        self.sigmas.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sigmas.is_empty()
    }
    pub fn sigma_min(&self) -> f64 {
        self.sigmas[0]
    }
    pub fn sigma_max(&self) -> f64 {
        *self.sigmas.last().unwrap_or(&0.0)
    }

    /// Fractional index t with ln σ interpolated linearly between neighbouring entries,
    /// clamped to [0, T − 1] outside the table (k-diffusion `sigma_to_t`). σ = 0 maps to 0.
    pub fn sigma_to_t(&self, sigma: f64) -> Result<f64> {
        check_non_negative("sigma", sigma)?;
        let n = self.log_sigmas.len();
        if n == 1 || sigma <= self.sigmas[0] {
            return Ok(0.0);
        }
        if sigma >= self.sigmas[n - 1] {
            return Ok((n - 1) as f64);
        }
        let ls = sigma.ln();
        // largest low with log_sigmas[low] <= ls, at most n − 2 (σ just below σ_max can have
        // ln σ equal to ln σ_max after rounding)
        let low = (self.log_sigmas.partition_point(|&v| v <= ls) - 1).min(n - 2);
        let (a, b) = (self.log_sigmas[low], self.log_sigmas[low + 1]);
        let w = ((ls - a) / (b - a)).clamp(0.0, 1.0);
        Ok(low as f64 + w)
    }

    /// σ at a fractional index t ∈ [0, T − 1] by interpolating ln σ (k-diffusion `t_to_sigma`).
    pub fn t_to_sigma(&self, t: f64) -> Result<f64> {
        let n = self.log_sigmas.len();
        if !t.is_finite() || t < 0.0 || t > (n - 1) as f64 {
            return Err(CoreError::invalid("t", format!("{t} is outside [0, {}]", n - 1)));
        }
        let low = (t.floor() as usize).min(n - 1);
        let high = (t.ceil() as usize).min(n - 1);
        let w = t - low as f64;
        Ok(((1.0 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp())
    }
}

/// ᾱ = 1/(1 + σ²), the VP signal fraction at VE noise level σ.
pub fn alpha_bar_from_sigma(sigma: f64) -> f64 {
    1.0 / (1.0 + sigma * sigma)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::BetaSchedule;

    #[test]
    fn interpolation_round_trip() {
        let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
        let ds = DiscreteSigmas::new(&sch).unwrap();
        for i in [0usize, 1, 17, 500, 999] {
            assert!((ds.sigmas[i] - sch.sigma(i)).abs() < 1e-12);
            assert_eq!(ds.sigma_to_t(ds.sigmas[i]).unwrap(), i as f64);
        }
        for &t in &[0.25, 10.5, 998.9] {
            let back = ds.sigma_to_t(ds.t_to_sigma(t).unwrap()).unwrap();
            assert!((back - t).abs() < 1e-9, "{t} -> {back}");
        }
        assert_eq!(ds.sigma_to_t(1e-9).unwrap(), 0.0);
        assert_eq!(ds.sigma_to_t(1e9).unwrap(), 999.0);
        assert!(ds.t_to_sigma(1000.0).is_err() && ds.sigma_to_t(-1.0).is_err());
        assert!(DiscreteSigmas::from_alpha_bar(&[0.9, 0.0]).is_err());
        assert!((alpha_bar_from_sigma(ds.sigmas[3]) - sch.alpha_bar[3]).abs() < 1e-12);
    }
}
