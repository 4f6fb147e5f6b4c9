//! Continuous-time forward SDEs dx = f(x, t)dt + g(t)dw on t ∈ [0, 1] (Song et al. 2021, §3.4 and
//! Appendix B; seed 002 "SDE Models"; seed 000 "Score-Based Models / SDE").
//!
//! All three processes have a linear drift f(x, t) = f(t)·x and a Gaussian perturbation kernel
//! p_{0t}(x_t | x₀) = N(m(t)·x₀, s(t)²·I). Every quantity here is an f64 scalar function of t.

use crate::error::{check_positive, CoreError, Result};
use crate::noise::NoiseSource;
use crate::schedule::DiffusionSchedule;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The three SDEs of Song et al. (2021).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Sde {
    /// Variance exploding (Eq. 30): dx = σ(t)·√(2 ln(σ_max/σ_min)) dw, σ(t) = σ_min·(σ_max/σ_min)^t.
    /// As in the reference code, the marginal std is σ(t) itself (x₀ is the clean data).
    Ve { sigma_min: f64, sigma_max: f64 },
    /// Variance preserving (Eq. 32): dx = −½β(t)x dt + √β(t) dw, β(t) = β_min + t(β_max − β_min).
    Vp { beta_min: f64, beta_max: f64 },
    /// Sub-VP (Eq. 34): dx = −½β(t)x dt + √(β(t)(1 − e^{−2∫₀ᵗβ})) dw.
    SubVp { beta_min: f64, beta_max: f64 },
}

impl Sde {
    /// VE with σ ∈ [0.01, 50] (Song et al. 2021, CIFAR-10 settings).
    pub fn ve() -> Self {
        Sde::Ve { sigma_min: 0.01, sigma_max: 50.0 }
    }
    /// VP with β ∈ [0.1, 20].
    pub fn vp() -> Self {
        Sde::Vp { beta_min: 0.1, beta_max: 20.0 }
    }
    /// Sub-VP with β ∈ [0.1, 20].
    pub fn sub_vp() -> Self {
        Sde::SubVp { beta_min: 0.1, beta_max: 20.0 }
    }

    /// Check the hyper-parameters (finite, positive, min < max).
    pub fn validate(&self) -> Result<()> {
        let (lo, hi, n_lo, n_hi) = match *self {
            Sde::Ve { sigma_min, sigma_max } => (sigma_min, sigma_max, "sigma_min", "sigma_max"),
            Sde::Vp { beta_min, beta_max } | Sde::SubVp { beta_min, beta_max } => {
                (beta_min, beta_max, "beta_min", "beta_max")
            }
        };
        check_positive(n_lo, lo)?;
        check_positive(n_hi, hi)?;
        if lo >= hi {
            return Err(CoreError::invalid(n_hi, format!("must exceed {n_lo} ({hi} <= {lo})")));
        }
        Ok(())
    }

    /// End time T of the forward process (always 1).
    pub fn t_max(&self) -> f64 {
        1.0
    }

    /// Smallest time used by samplers and likelihoods in the reference code
    /// (1e-5 for VE, 1e-3 for VP and sub-VP).
    pub fn default_eps(&self) -> f64 {
        match self {
            Sde::Ve { .. } => 1e-5,
            _ => 1e-3,
        }
    }

    /// β(t) = β_min + t(β_max − β_min) for VP/sub-VP; `None` for VE.
    pub fn beta(&self, t: f64) -> Option<f64> {
        match *self {
            Sde::Ve { .. } => None,
            Sde::Vp { beta_min, beta_max } | Sde::SubVp { beta_min, beta_max } => {
                Some(beta_min + t * (beta_max - beta_min))
            }
        }
    }

    /// ∫₀ᵗ β(s) ds = β_min·t + ½t²(β_max − β_min) (VP/sub-VP); 0 for VE.
    pub fn integrated_beta(&self, t: f64) -> f64 {
        match *self {
            Sde::Ve { .. } => 0.0,
            Sde::Vp { beta_min, beta_max } | Sde::SubVp { beta_min, beta_max } => {
                beta_min * t + 0.5 * t * t * (beta_max - beta_min)
            }
        }
    }

    /// Mean coefficient m(t) of p_{0t}: E[x_t | x₀] = m(t)·x₀ (1 for VE, e^{−½∫β} otherwise).
    pub fn mean_coef(&self, t: f64) -> f64 {
        (-0.5 * self.integrated_beta(t)).exp()
    }

    /// Standard deviation s(t) of p_{0t}: VE σ_min(σ_max/σ_min)^t, VP √(1 − e^{−∫β}),
    /// sub-VP 1 − e^{−∫β} (Song et al. 2021, Eq. 29, 33 and Appendix B).
    pub fn marginal_std(&self, t: f64) -> f64 {
        match *self {
            Sde::Ve { sigma_min, sigma_max } => sigma_min * (sigma_max / sigma_min).powf(t),
            Sde::Vp { .. } => (-(-self.integrated_beta(t)).exp_m1()).sqrt(),
            Sde::SubVp { .. } => -(-self.integrated_beta(t)).exp_m1(),
        }
    }

    /// Noise level of the equivalent VE parametrisation x_t/m(t) = x₀ + σ·n: σ(t) = s(t)/m(t).
    /// λ(t) = −ln σ(t) is DPM-Solver's half log-SNR.
    pub fn sigma(&self, t: f64) -> f64 {
        self.marginal_std(t) / self.mean_coef(t)
    }

    /// Inverse of [`Sde::sigma`]: the time t with σ(t) = `sigma` (not clamped to [0, 1]).
    pub fn t_from_sigma(&self, sigma: f64) -> Result<f64> {
        check_positive("sigma", sigma)?;
        // Solve β_min·t + ½(β_max − β_min)t² = L for t ≥ 0.
        let solve = |beta_min: f64, beta_max: f64, l: f64| {
            let d = beta_max - beta_min;
            2.0 * l / (beta_min + (beta_min * beta_min + 2.0 * d * l).sqrt())
        };
        Ok(match *self {
            Sde::Ve { sigma_min, sigma_max } => (sigma / sigma_min).ln() / (sigma_max / sigma_min).ln(),
            // σ² = e^{∫β} − 1.
            Sde::Vp { beta_min, beta_max } => solve(beta_min, beta_max, sigma.powi(2).ln_1p()),
            // σ = (1 − u)/√u with u = e^{−∫β}: u² − (2 + σ²)u + 1 = 0, smaller root.
            Sde::SubVp { beta_min, beta_max } => {
                let b = 2.0 + sigma * sigma;
                let u = 2.0 / (b + (b * b - 4.0).sqrt());
                solve(beta_min, beta_max, -u.ln())
            }
        })
    }

    /// Drift coefficient f(t) with f(x, t) = f(t)·x (0 for VE, −½β(t) otherwise).
    pub fn drift_coef(&self, t: f64) -> f64 {
        match self.beta(t) {
            None => 0.0,
            Some(b) => -0.5 * b,
        }
    }

    /// Diffusion coefficient g(t).
    pub fn diffusion(&self, t: f64) -> f64 {
        match *self {
            Sde::Ve { sigma_min, sigma_max } => {
                self.marginal_std(t) * (2.0 * (sigma_max / sigma_min).ln()).sqrt()
            }
            Sde::Vp { .. } => self.beta(t).unwrap_or(0.0).sqrt(),
            Sde::SubVp { .. } => {
                let disc = -(-2.0 * self.integrated_beta(t)).exp_m1();
                (self.beta(t).unwrap_or(0.0) * disc).sqrt()
            }
        }
    }

    /// Standard deviation of the prior p_T ≈ N(0, σ²I): σ_max for VE, 1 otherwise.
    pub fn prior_std(&self) -> f64 {
        match *self {
            Sde::Ve { sigma_max, .. } => sigma_max,
            _ => 1.0,
        }
    }

    /// Draw x_T from the prior: a `[B, sample_shape…]` f32 tensor, one noise stream per sample.
    pub fn prior_sample(
        &self,
        noise: &mut NoiseSource,
        sample_shape: &[usize],
        device: &Device,
    ) -> Result<Tensor> {
        Ok(noise.randn(sample_shape, device)?.affine(self.prior_std(), 0.0)?)
    }

    /// log N(x; 0, σ_T²I) of one flattened sample, in nats.
    pub fn prior_log_prob(&self, x: &[f64]) -> f64 {
        let s2 = self.prior_std().powi(2);
        let d = x.len() as f64;
        let q: f64 = x.iter().map(|v| v * v).sum();
        -0.5 * (q / s2 + d * (2.0 * std::f64::consts::PI * s2).ln())
    }

    /// Coefficients (a, b) of the reverse-time drift a·x + b·∇log p_t(x):
    /// reverse SDE f − g²∇log p (Song et al. Eq. 6); probability-flow ODE f − ½g²∇log p (Eq. 13).
    pub fn reverse_drift_coefs(&self, t: f64, probability_flow: bool) -> (f64, f64) {
        let g2 = self.diffusion(t).powi(2);
        let w = if probability_flow { 0.5 } else { 1.0 };
        (self.drift_coef(t), -w * g2)
    }

    /// One-step forward discretisation from `t_prev` to `t` (t_prev < t): x_t = a·x_{t_prev} + G·z.
    /// VE: a = 1, G² = σ(t)² − σ(t_prev)² (NCSN's Markov chain, Song et al. Eq. 45);
    /// VP: a = m(t)/m(t_prev) = √(1 − β_i), G² = 1 − a² (DDPM's chain, Eq. 46) with β_i taken from
    /// the exact marginals; sub-VP: Euler–Maruyama, a = 1 + f(t)Δ, G = g(t)√Δ.
    /// Returns `(a, G)`; used by the reverse-diffusion predictor.
    pub fn discretize(&self, t_prev: f64, t: f64) -> Result<(f64, f64)> {
        if !(t.is_finite() && t_prev.is_finite()) || t <= t_prev {
            return Err(CoreError::invalid("t", format!("need t_prev < t, got {t_prev} and {t}")));
        }
        Ok(match self {
            Sde::Ve { .. } => {
                let g2 = self.marginal_std(t).powi(2) - self.marginal_std(t_prev).powi(2);
                (1.0, g2.max(0.0).sqrt())
            }
            Sde::Vp { .. } => {
                let a = self.mean_coef(t) / self.mean_coef(t_prev);
                (a, (1.0 - a * a).max(0.0).sqrt())
            }
            Sde::SubVp { .. } => {
                let dt = t - t_prev;
                (1.0 + self.drift_coef(t) * dt, self.diffusion(t) * dt.sqrt())
            }
        })
    }

    /// ᾱ_i = 1/(1 + σ(t_i)²) on the grid t_i = (i + 1)/N, i = 0..N−1: a discrete (DDPM-index)
    /// schedule whose σ-space matches this SDE, so a continuous model can be driven by discrete samplers.
    pub fn discrete_alpha_bar(&self, n: usize) -> Result<Vec<f64>> {
        self.validate()?;
        if n == 0 {
            return Err(CoreError::invalid("timesteps", "must be >= 1"));
        }
        Ok((0..n).map(|i| 1.0 / (1.0 + self.sigma((i + 1) as f64 / n as f64).powi(2))).collect())
    }

    /// A `DiffusionSchedule` with N steps whose ᾱ is [`Sde::discrete_alpha_bar`]: DDPM/DDIM samplers
    /// over this schedule see the SDE's σ-space at t_i = (i + 1)/N.
    pub fn discrete_schedule(&self, n: usize) -> Result<DiffusionSchedule> {
        DiffusionSchedule::from_betas(betas_from_alpha_bar(&self.discrete_alpha_bar(n)?)?)
    }

    /// Short name (`ve`, `vp`, `sub-vp`).
    pub fn name(&self) -> &'static str {
        match self {
            Sde::Ve { .. } => "ve",
            Sde::Vp { .. } => "vp",
            Sde::SubVp { .. } => "sub-vp",
        }
    }
}

/// Betas 1 − ᾱ_i/ᾱ_{i−1} of a decreasing ᾱ sequence (for `DiffusionSchedule::from_betas`).
pub fn betas_from_alpha_bar(alpha_bar: &[f64]) -> Result<Vec<f64>> {
    let mut prev = 1.0;
    let mut out = Vec::with_capacity(alpha_bar.len());
    for (i, &a) in alpha_bar.iter().enumerate() {
        if !(a.is_finite() && a > 0.0 && a < prev) {
            return Err(CoreError::invalid(
                "alpha_bar",
                format!("entry {i} = {a} is not decreasing in (0, 1)"),
            ));
        }
        out.push(1.0 - a / prev);
        prev = a;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [Sde; 3] {
        [Sde::ve(), Sde::vp(), Sde::sub_vp()]
    }

    /// d/dt Var = 2f(t)·Var + g(t)² for the marginal variance of a point mass (Song et al. Eq. 5 moments),
    /// and for the mean d/dt m = f(t)·m.
    #[test]
    fn marginals_solve_moment_odes() {
        for sde in all() {
            for &t in &[0.05, 0.3, 0.7, 0.95] {
                let h = 1e-6;
                let dm = (sde.mean_coef(t + h) - sde.mean_coef(t - h)) / (2.0 * h);
                assert!((dm - sde.drift_coef(t) * sde.mean_coef(t)).abs() < 1e-6, "{sde:?} mean t={t}");
                let v = |t: f64| sde.marginal_std(t).powi(2);
                let dv = (v(t + h) - v(t - h)) / (2.0 * h);
                let rhs = 2.0 * sde.drift_coef(t) * v(t) + sde.diffusion(t).powi(2);
                assert!((dv - rhs).abs() < 1e-5 * (1.0 + rhs.abs()), "{sde:?} var t={t}: {dv} vs {rhs}");
            }
        }
    }

    #[test]
    fn sigma_inverse_round_trips() {
        for sde in all() {
            for &t in &[1e-3, 0.1, 0.5, 0.99, 1.0] {
                let back = sde.t_from_sigma(sde.sigma(t)).unwrap();
                assert!((back - t).abs() < 1e-9, "{sde:?}: {t} -> {back}");
            }
        }
        assert!(Sde::vp().t_from_sigma(-1.0).is_err());
    }

    #[test]
    fn known_values() {
        let vp = Sde::vp();
        // ∫β(1) = 0.1 + 9.95 = 10.05
        assert!((vp.mean_coef(1.0) - (-5.025f64).exp()).abs() < 1e-15);
        assert!((vp.marginal_std(0.0)).abs() < 1e-15);
        let ve = Sde::ve();
        assert!((ve.marginal_std(1.0) - 50.0).abs() < 1e-12 && (ve.marginal_std(0.0) - 0.01).abs() < 1e-15);
        // sub-VP variance is the square of VP variance
        let sv = Sde::sub_vp();
        assert!((sv.marginal_std(0.4) - vp.marginal_std(0.4).powi(2)).abs() < 1e-15);
    }

    #[test]
    fn discretisation_matches_marginals() {
        // Composing the VP/VE chain reproduces the marginal variance of a point mass.
        for sde in [Sde::ve(), Sde::vp()] {
            let n = 50;
            let (mut m, mut v) = (1.0, sde.marginal_std(1e-3).powi(2));
            let ts: Vec<f64> = (0..=n).map(|i| 1e-3 + (1.0 - 1e-3) * i as f64 / n as f64).collect();
            for w in ts.windows(2) {
                let (a, g) = sde.discretize(w[0], w[1]).unwrap();
                m *= a;
                v = a * a * v + g * g;
            }
            let m1 = sde.mean_coef(1.0) / sde.mean_coef(1e-3);
            assert!((m - m1).abs() < 1e-12 && (v - sde.marginal_std(1.0).powi(2)).abs() < 1e-9, "{sde:?}");
        }
        assert!(Sde::vp().discretize(0.5, 0.4).is_err());
    }

    #[test]
    fn validation_and_serde() {
        assert!(Sde::Ve { sigma_min: 1.0, sigma_max: 0.5 }.validate().is_err());
        assert!(Sde::Vp { beta_min: f64::NAN, beta_max: 20.0 }.validate().is_err());
        for sde in all() {
            sde.validate().unwrap();
            let s = serde_json::to_string(&sde).unwrap();
            assert_eq!(serde_json::from_str::<Sde>(&s).unwrap(), sde);
        }
        let ab = Sde::vp().discrete_alpha_bar(100).unwrap();
        let b = betas_from_alpha_bar(&ab).unwrap();
        assert!(b.iter().all(|&x| x > 0.0 && x < 1.0));
        assert!(betas_from_alpha_bar(&[0.5, 0.6]).is_err());
    }
}
