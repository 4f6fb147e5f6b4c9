//! Noise schedules, computed once in f64 as pure functions.
//!
//! Index convention (as diffusers): arrays have length `T` and entry `i`
//! belongs to the paper's timestep `t = i + 1`. So `alpha_bar[0] = 1 - beta_1`
//! and `alpha_bar[T-1]` is ᾱ_T. Model time fed to networks is the index `i`.

use crate::error::{check_non_negative, check_positive, CoreError, Result};
use serde::{Deserialize, Serialize};

/// How β_t is laid out over the `T` steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BetaSchedule {
    /// DDPM (Ho et al. 2020, §4): β linear from `beta_start` to `beta_end`.
    Linear { beta_start: f64, beta_end: f64 },
    /// iDDPM cosine schedule: ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2),
    /// β_t = min(1 − ᾱ_t/ᾱ_{t−1}, `max_beta`).
    Cosine { s: f64, max_beta: f64 },
    /// "scaled linear"/quadratic: β = (linspace(√β_start, √β_end, T))².
    Quadratic { beta_start: f64, beta_end: f64 },
    /// Sigmoid: β = σ(linspace(−6, 6, T))·(β_end − β_start) + β_start.
    Sigmoid { beta_start: f64, beta_end: f64 },
}

impl BetaSchedule {
    /// DDPM's linear schedule β₁ = 1e-4 … β_T = 0.02.
    pub fn linear() -> Self {
        BetaSchedule::Linear { beta_start: 1e-4, beta_end: 0.02 }
    }
    /// iDDPM's cosine schedule, s = 0.008, β clipped at 0.999.
    pub fn cosine() -> Self {
        BetaSchedule::Cosine { s: 0.008, max_beta: 0.999 }
    }
    pub fn quadratic() -> Self {
        BetaSchedule::Quadratic { beta_start: 1e-4, beta_end: 0.02 }
    }
    pub fn sigmoid() -> Self {
        BetaSchedule::Sigmoid { beta_start: 1e-4, beta_end: 0.02 }
    }

    /// Parse a schedule name (`linear`, `cosine`, `quadratic`, `sigmoid`) with default parameters.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "linear" => Ok(Self::linear()),
            "cosine" => Ok(Self::cosine()),
            "quadratic" | "scaled-linear" => Ok(Self::quadratic()),
            "sigmoid" => Ok(Self::sigmoid()),
            other => Err(CoreError::invalid(
                "schedule",
                format!("unknown schedule `{other}` (expected linear, cosine, quadratic, sigmoid)"),
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            BetaSchedule::Linear { .. } => "linear",
            BetaSchedule::Cosine { .. } => "cosine",
            BetaSchedule::Quadratic { .. } => "quadratic",
            BetaSchedule::Sigmoid { .. } => "sigmoid",
        }
    }

    /// β_1..β_T (DDPM Eq. 2), length `timesteps`.
    pub fn betas(&self, timesteps: usize) -> Result<Vec<f64>> {
        if timesteps == 0 {
            return Err(CoreError::invalid("timesteps", "must be >= 1"));
        }
        let n = timesteps;
        let lin = |a: f64, b: f64| -> Vec<f64> {
            if n == 1 {
                return vec![a];
            }
            (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
        };
        let check_range = |a: f64, b: f64| -> Result<()> {
            check_positive("beta_start", a)?;
            check_positive("beta_end", b)?;
            if a >= 1.0 || b >= 1.0 {
                return Err(CoreError::invalid("beta", "β must be < 1"));
            }
            Ok(())
        };
        let betas = match *self {
            BetaSchedule::Linear { beta_start, beta_end } => {
                check_range(beta_start, beta_end)?;
                lin(beta_start, beta_end)
            }
            BetaSchedule::Quadratic { beta_start, beta_end } => {
                check_range(beta_start, beta_end)?;
                lin(beta_start.sqrt(), beta_end.sqrt()).into_iter().map(|b| b * b).collect()
            }
            BetaSchedule::Sigmoid { beta_start, beta_end } => {
                check_range(beta_start, beta_end)?;
                lin(-6.0, 6.0)
                    .into_iter()
                    .map(|x| 1.0 / (1.0 + (-x).exp()) * (beta_end - beta_start) + beta_start)
                    .collect()
            }
            BetaSchedule::Cosine { s, max_beta } => {
                check_non_negative("s", s)?;
                check_positive("max_beta", max_beta)?;
                if max_beta >= 1.0 {
                    return Err(CoreError::invalid("max_beta", "must be < 1"));
                }
                (0..n)
                    .map(|i| {
                        let t1 = i as f64 / n as f64;
                        let t2 = (i + 1) as f64 / n as f64;
                        (1.0 - cosine_alpha_bar(t2, s) / cosine_alpha_bar(t1, s)).min(max_beta)
                    })
                    .collect()
            }
        };
        Ok(betas)
    }
}

/// iDDPM Eq. 17: f(t) = cos²((t + s)/(1 + s) · π/2) for t ∈ [0, 1] (un-normalised ᾱ).
pub fn cosine_alpha_bar(t: f64, s: f64) -> f64 {
    ((t + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2)
}

/// Rescale betas so that ᾱ_T = 0 (zero terminal SNR, Lin et al. 2024, Alg. 1):
/// shift and scale √ᾱ so its last value is 0 and its first is unchanged.
/// The last β becomes 1 exactly, so samplers must not divide by √ᾱ_T.
pub fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    let mut abar = 1.0;
    let mut sqrt_ab: Vec<f64> = betas
        .iter()
        .map(|b| {
            abar *= 1.0 - b;
            abar.sqrt()
        })
        .collect();
    let first = sqrt_ab[0];
    let last = *sqrt_ab.last().unwrap();
    for v in sqrt_ab.iter_mut() {
        *v = (*v - last) * first / (first - last);
    }
    let ab: Vec<f64> = sqrt_ab.iter().map(|v| v * v).collect();
    let mut out = Vec::with_capacity(ab.len());
    out.push(1.0 - ab[0]);
    for i in 1..ab.len() {
        out.push(1.0 - ab[i] / ab[i - 1]);
    }
    out
}

/// All per-timestep quantities of a discrete (DDPM) diffusion, in f64.
///
/// Entry `i` is the paper's timestep `t = i + 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionSchedule {
    /// β_t (Eq. 2).
    pub betas: Vec<f64>,
    /// α_t = 1 − β_t.
    pub alphas: Vec<f64>,
    /// ᾱ_t = ∏_{s≤t} α_s (Eq. 4).
    pub alpha_bar: Vec<f64>,
    /// ᾱ_{t−1}, with ᾱ_0 = 1.
    pub alpha_bar_prev: Vec<f64>,
    pub sqrt_alpha_bar: Vec<f64>,
    pub sqrt_one_minus_alpha_bar: Vec<f64>,
    /// β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t (Eq. 7).
    pub posterior_variance: Vec<f64>,
    /// log β̃_t with the t = 1 entry replaced by β̃_2 (β̃_1 = 0), as in DDPM's code.
    pub posterior_log_variance_clipped: Vec<f64>,
    /// Coefficient of x₀ in μ̃_t (Eq. 7): √ᾱ_{t−1}·β_t/(1 − ᾱ_t).
    pub posterior_mean_coef1: Vec<f64>,
    /// Coefficient of x_t in μ̃_t (Eq. 7): √α_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t).
    pub posterior_mean_coef2: Vec<f64>,
}

impl DiffusionSchedule {
    /// Build from a named schedule with `timesteps` steps.
    pub fn new(schedule: BetaSchedule, timesteps: usize) -> Result<Self> {
        Self::from_betas(schedule.betas(timesteps)?)
    }

    /// Build from explicit betas; each must lie in (0, 1]. β = 1 is allowed only
    /// at the last step (zero terminal SNR).
    pub fn from_betas(betas: Vec<f64>) -> Result<Self> {
        if betas.is_empty() {
            return Err(CoreError::invalid("betas", "empty schedule"));
        }
        let n = betas.len();
        for (i, &b) in betas.iter().enumerate() {
            let ok = b.is_finite() && b > 0.0 && (b < 1.0 || (i == n - 1 && b <= 1.0));
            if !ok {
                return Err(CoreError::invalid("betas", format!("β[{i}] = {b} is not in (0, 1)")));
            }
        }
        let alphas: Vec<f64> = betas.iter().map(|b| 1.0 - b).collect();
        let mut alpha_bar = Vec::with_capacity(n);
        let mut acc = 1.0;
        for a in &alphas {
            acc *= a;
            alpha_bar.push(acc);
        }
        let mut alpha_bar_prev = vec![1.0];
        alpha_bar_prev.extend_from_slice(&alpha_bar[..n - 1]);
        let sqrt_alpha_bar = alpha_bar.iter().map(|a| a.sqrt()).collect();
        let sqrt_one_minus_alpha_bar = alpha_bar.iter().map(|a| (1.0 - a).sqrt()).collect();
        let posterior_variance: Vec<f64> =
            (0..n).map(|i| betas[i] * (1.0 - alpha_bar_prev[i]) / (1.0 - alpha_bar[i])).collect();
        let posterior_log_variance_clipped = (0..n)
            .map(|i| {
                let v = if i == 0 && n > 1 { posterior_variance[1] } else { posterior_variance[i] };
                v.max(1e-20).ln()
            })
            .collect();
        let posterior_mean_coef1 =
            (0..n).map(|i| betas[i] * alpha_bar_prev[i].sqrt() / (1.0 - alpha_bar[i])).collect();
        let posterior_mean_coef2 =
            (0..n).map(|i| (1.0 - alpha_bar_prev[i]) * alphas[i].sqrt() / (1.0 - alpha_bar[i])).collect();
        Ok(Self {
            betas,
            alphas,
            alpha_bar,
            alpha_bar_prev,
            sqrt_alpha_bar,
            sqrt_one_minus_alpha_bar,
            posterior_variance,
            posterior_log_variance_clipped,
            posterior_mean_coef1,
            posterior_mean_coef2,
        })
    }

    /// Number of steps T.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// σ of the equivalent VE process at index `i`: √((1 − ᾱ)/ᾱ) (k-diffusion's `sigmas`).
    pub fn sigma(&self, i: usize) -> f64 {
        ((1.0 - self.alpha_bar[i]) / self.alpha_bar[i]).sqrt()
    }

    /// Signal-to-noise ratio ᾱ/(1 − ᾱ) at index `i`.
    pub fn snr(&self, i: usize) -> f64 {
        self.alpha_bar[i] / (1.0 - self.alpha_bar[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_endpoints() {
        let b = BetaSchedule::linear().betas(1000).unwrap();
        assert!((b[0] - 1e-4).abs() < 1e-15 && (b[999] - 0.02).abs() < 1e-15);
    }

    #[test]
    fn invariants_all_schedules() {
        for s in [
            BetaSchedule::linear(),
            BetaSchedule::cosine(),
            BetaSchedule::quadratic(),
            BetaSchedule::sigmoid(),
        ] {
            for t in [1usize, 10, 1000] {
                let sch = DiffusionSchedule::new(s, t).unwrap();
                assert!(sch.betas.iter().all(|&b| b > 0.0 && b < 1.0), "{s:?}");
                for w in sch.alpha_bar.windows(2) {
                    assert!(w[1] < w[0], "ᾱ not strictly decreasing for {s:?}");
                }
                for i in 0..t {
                    // β̃_t ≤ β_t and posterior coefs reproduce Eq. 7
                    assert!(sch.posterior_variance[i] <= sch.betas[i] + 1e-15);
                }
            }
        }
    }

    #[test]
    fn cosine_matches_closed_form() {
        let t = 1000;
        let sch = DiffusionSchedule::new(BetaSchedule::cosine(), t).unwrap();
        for i in [0usize, 10, 100, 500, 900] {
            let closed = cosine_alpha_bar((i + 1) as f64 / t as f64, 0.008) / cosine_alpha_bar(0.0, 0.008);
            assert!((sch.alpha_bar[i] - closed).abs() < 1e-12, "i={i}");
        }
        assert!(sch.betas[t - 1] <= 0.999 + 1e-15);
    }

    #[test]
    fn zero_terminal_snr() {
        let b = rescale_zero_terminal_snr(&BetaSchedule::linear().betas(1000).unwrap());
        let sch = DiffusionSchedule::from_betas(b).unwrap();
        assert!(sch.alpha_bar[999].abs() < 1e-12);
        let orig = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
        assert!((sch.alpha_bar[0] - orig.alpha_bar[0]).abs() < 1e-12);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(BetaSchedule::Linear { beta_start: -1.0, beta_end: 0.02 }.betas(10).is_err());
        assert!(BetaSchedule::Linear { beta_start: f64::NAN, beta_end: 0.02 }.betas(10).is_err());
        assert!(BetaSchedule::linear().betas(0).is_err());
        assert!(BetaSchedule::from_name("nope").is_err());
    }
}
