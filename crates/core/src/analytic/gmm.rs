//! Exact denoiser for an isotropic Gaussian mixture p(x₀) = Σ_k π_k N(m_k, σ_k² I).
//!
//! Given x_t = a·x₀ + s·ε (DDPM Eq. 4), component k marginalises to
//! N(a m_k, v_k I) with v_k = a²σ_k² + s², so the component posterior is
//! r_k(x) ∝ π_k N(x; a m_k, v_k I) (computed with log-sum-exp in f64) and
//! E[x₀ | x_t] = Σ_k r_k (m_k + a σ_k²/v_k · (x_t − a m_k)).

use super::error::{AnalyticError, AnalyticResult};
use super::{analytic_forward, AnalyticDenoiser};
use crate::denoiser::Denoiser;
use crate::error::Result;
use crate::noise::NoiseSource;
use crate::prediction::Prediction;
use crate::schedule::DiffusionSchedule;
use candle_core::{Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// JSON description of an isotropic mixture: `{"weights": [..K], "means": [[..D]; K], "stds": [..K]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GmmSpec {
    /// Mixture weights π_k ≥ 0 with a positive sum (normalised on validation).
    pub weights: Vec<f64>,
    /// Component means m_k, all of the same length D ≥ 1.
    pub means: Vec<Vec<f64>>,
    /// Component standard deviations σ_k > 0.
    pub stds: Vec<f64>,
}

impl GmmSpec {
    pub fn from_json_str(text: &str) -> AnalyticResult<Self> {
        let spec: GmmSpec = serde_json::from_str(text)?;
        spec.validated()
    }

    pub fn from_path(path: impl AsRef<Path>) -> AnalyticResult<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| AnalyticError::Io { path: path.to_path_buf(), source })?;
        Self::from_json_str(&text)
    }

    /// Check the specification and return it with weights normalised to sum 1.
    pub fn validated(&self) -> AnalyticResult<Self> {
        let k = self.weights.len();
        if k == 0 {
            return Err(AnalyticError::invalid("weights", "need at least one component"));
        }
        if self.means.len() != k || self.stds.len() != k {
            return Err(AnalyticError::Dimension(format!(
                "{k} weights but {} means and {} stds",
                self.means.len(),
                self.stds.len()
            )));
        }
        let d = self.means[0].len();
        if d == 0 {
            return Err(AnalyticError::invalid("means", "dimension must be >= 1"));
        }
        if let Some(bad) = self.means.iter().position(|m| m.len() != d) {
            return Err(AnalyticError::Dimension(format!(
                "mean {bad} has dimension {} but mean 0 has {d}",
                self.means[bad].len()
            )));
        }
        if self.means.iter().flatten().any(|v| !v.is_finite()) {
            return Err(AnalyticError::invalid("means", "contain a non-finite value"));
        }
        if let Some(w) = self.weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
            return Err(AnalyticError::invalid("weights", format!("must be finite and >= 0, got {w}")));
        }
        let total: f64 = self.weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(AnalyticError::invalid("weights", "must have a positive finite sum"));
        }
        if let Some(s) = self.stds.iter().find(|s| !s.is_finite() || **s <= 0.0) {
            return Err(AnalyticError::invalid("stds", format!("must be finite and > 0, got {s}")));
        }
        Ok(GmmSpec {
            weights: self.weights.iter().map(|w| w / total).collect(),
            means: self.means.clone(),
            stds: self.stds.clone(),
        })
    }

    pub fn dim(&self) -> usize {
        self.means.first().map_or(0, |m| m.len())
    }

    pub fn num_components(&self) -> usize {
        self.weights.len()
    }

    /// Draw one x₀ per stream of `noise` (`[noise.len(), D]`, f32): component k with
    /// probability π_k from a uniform, then m_k + σ_k·z.
    pub fn sample(&self, noise: &mut NoiseSource, device: &Device) -> AnalyticResult<Tensor> {
        let spec = self.validated()?;
        let d = spec.dim();
        let n = noise.len();
        let mut out = Vec::with_capacity(n * d);
        for i in 0..n {
            let rng = noise.rng(i);
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut k = spec.num_components() - 1;
            for (j, w) in spec.weights.iter().enumerate() {
                acc += w;
                if u < acc {
                    k = j;
                    break;
                }
            }
            for j in 0..d {
                let z: f64 = rng.sample(StandardNormal);
                out.push((spec.means[k][j] + spec.stds[k] * z) as f32);
            }
        }
        Ok(Tensor::from_vec(out, (n, d), device)?)
    }
}

/// E[x₀ | x_t] for an isotropic Gaussian mixture.
#[derive(Debug, Clone)]
pub struct GmmDenoiser {
    spec: GmmSpec,
    log_weights: Vec<f64>,
    alpha_bar: Vec<f64>,
    device: Device,
}

impl GmmDenoiser {
    pub fn new(spec: &GmmSpec, schedule: &DiffusionSchedule) -> AnalyticResult<Self> {
        let spec = spec.validated()?;
        let log_weights = spec.weights.iter().map(|w| w.ln()).collect();
        Ok(Self { spec, log_weights, alpha_bar: schedule.alpha_bar.clone(), device: Device::Cpu })
    }

    /// The validated (normalised) specification.
    pub fn spec(&self) -> &GmmSpec {
        &self.spec
    }

    /// Posterior component probabilities r_k(x_t) for one point `x` (length D) at timestep `idx`.
    pub fn responsibilities(&self, x: &[f64], idx: usize) -> Vec<f64> {
        self.responsibilities_at(x, self.alpha_bar[idx])
    }

    /// p(k | x_t) at the noise level ᾱ = `ab`.
    pub fn responsibilities_at(&self, x: &[f64], ab: f64) -> Vec<f64> {
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let d = self.spec.dim() as f64;
        let logits: Vec<f64> = (0..self.spec.num_components())
            .map(|k| {
                let v = a * a * self.spec.stds[k].powi(2) + s2;
                let dist2: f64 =
                    x.iter().zip(&self.spec.means[k]).map(|(xi, mi)| (xi - a * mi).powi(2)).sum();
                self.log_weights[k] - 0.5 * d * v.ln() - dist2 / (2.0 * v)
            })
            .collect();
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = w.iter().sum();
        w.into_iter().map(|v| v / total).collect()
    }
}

impl AnalyticDenoiser for GmmDenoiser {
    fn dim(&self) -> usize {
        self.spec.dim()
    }
    fn alpha_bar(&self) -> &[f64] {
        &self.alpha_bar
    }
    fn compute_device(&self) -> &Device {
        &self.device
    }
    /// Tensor ops only, so that the output is differentiable in `x` (exact likelihoods take the
    /// divergence of the probability-flow drift by autograd): with v_k = ᾱσ_k² + 1 − ᾱ and
    /// g_k = √ᾱσ_k²/v_k, r = softmax_k(ln π_k − ½D ln v_k − ‖x − √ᾱ m_k‖²/(2v_k)) and
    /// E[x₀ | x] = Σ_k r_k (m_k + g_k (x − √ᾱ m_k)).
    fn posterior_mean_at(&self, x: &Tensor, ab: f64) -> Result<Tensor> {
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let (k, d) = (self.spec.num_components(), self.dim());
        let dev = &self.device;
        let row = |v: Vec<f64>| Tensor::from_vec(v, (1, k), dev);
        let var: Vec<f64> = self.spec.stds.iter().map(|s| a * a * s * s + s2).collect();
        let gain: Vec<f64> = self.spec.stds.iter().zip(&var).map(|(s, v)| a * s * s / v).collect();
        let means = Tensor::from_vec(self.spec.means.concat(), (k, d), dev)?;
        let sq_means: Vec<f64> =
            self.spec.means.iter().map(|m| a * a * m.iter().map(|v| v * v).sum::<f64>()).collect();
        let bias: Vec<f64> =
            self.log_weights.iter().zip(&var).map(|(lw, v)| lw - 0.5 * d as f64 * v.ln()).collect();
        let neg_inv_2v = row(var.iter().map(|v| -0.5 / v).collect())?;
        // ‖x − √ᾱ m_k‖² = ‖x‖² − 2√ᾱ x·m_k + ᾱ‖m_k‖²   [B, K]
        let dist2 = x
            .sqr()?
            .sum_keepdim(1)?
            .broadcast_sub(&x.matmul(&means.t()?)?.affine(2.0 * a, 0.0)?)?
            .broadcast_add(&row(sq_means)?)?;
        let logits = dist2.broadcast_mul(&neg_inv_2v)?.broadcast_add(&row(bias)?)?;
        let shifted = logits.broadcast_sub(&logits.max_keepdim(1)?.detach())?.exp()?;
        let r = shifted.broadcast_div(&shifted.sum_keepdim(1)?)?;
        let shrunk: Vec<f64> = gain.iter().map(|g| 1.0 - a * g).collect();
        let centres = means.broadcast_mul(&Tensor::from_vec(shrunk, (k, 1), dev)?)?;
        let slope = r.matmul(&Tensor::from_vec(gain, (k, 1), dev)?)?;
        Ok(r.matmul(&centres)?.add(&x.broadcast_mul(&slope)?)?)
    }
}

impl Denoiser for GmmDenoiser {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        analytic_forward(self, x_t, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytic::GaussianDenoiser;
    use crate::schedule::BetaSchedule;

    fn sched() -> DiffusionSchedule {
        DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap()
    }

    const TWO: &str = r#"{"weights": [3, 7], "means": [[-1.0, 0.5], [1.5, -0.5]], "stds": [0.4, 0.7]}"#;

    /// E[x₀|x_t] by midpoint quadrature of x₀ over a fine 2-D grid.
    fn quadrature(spec: &GmmSpec, ab: f64, x: [f64; 2]) -> [f64; 2] {
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let (lo, hi, n) = (-5.0, 5.0, 1000);
        let h = (hi - lo) / n as f64;
        let (mut z, mut m0, mut m1) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let u = lo + (i as f64 + 0.5) * h;
            for j in 0..n {
                let v = lo + (j as f64 + 0.5) * h;
                let prior: f64 = (0..2)
                    .map(|k| {
                        let s = spec.stds[k];
                        let d2 = (u - spec.means[k][0]).powi(2) + (v - spec.means[k][1]).powi(2);
                        spec.weights[k] / (s * s) * (-d2 / (2.0 * s * s)).exp()
                    })
                    .sum();
                let lik = (-((x[0] - a * u).powi(2) + (x[1] - a * v).powi(2)) / (2.0 * s2)).exp();
                let w = prior * lik;
                z += w;
                m0 += w * u;
                m1 += w * v;
            }
        }
        [m0 / z, m1 / z]
    }

    #[test]
    fn posterior_mean_matches_quadrature() {
        let s = sched();
        let spec = GmmSpec::from_json_str(TWO).unwrap();
        assert!((spec.weights[0] - 0.3).abs() < 1e-15);
        let g = GmmDenoiser::new(&spec, &s).unwrap();
        for (idx, x) in [(100usize, [0.2, 0.1]), (300, [-0.9, 0.4]), (500, [0.5, -0.2]), (50, [1.0, 1.0])] {
            let want = quadrature(&spec, s.alpha_bar[idx], x);
            let xt = Tensor::new(&[[x[0] as f32, x[1] as f32]], &Device::Cpu).unwrap();
            let got: Vec<f32> = g.posterior_mean(&xt, idx).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            for k in 0..2 {
                assert!((got[k] as f64 - want[k]).abs() < 1e-4, "idx {idx}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn single_component_equals_gaussian() {
        let s = sched();
        let spec = GmmSpec { weights: vec![2.0], means: vec![vec![0.3, -1.0, 2.0]], stds: vec![0.8] };
        let gmm = GmmDenoiser::new(&spec, &s).unwrap();
        let cov: Vec<Vec<f64>> =
            (0..3).map(|i| (0..3).map(|j| if i == j { 0.64 } else { 0.0 }).collect()).collect();
        let gauss = GaussianDenoiser::new(vec![0.3, -1.0, 2.0], cov, &s).unwrap();
        let x = Tensor::new(&[[0.1f32, 0.2, -0.3], [3.0, -2.0, 1.0]], &Device::Cpu).unwrap();
        for idx in [0usize, 123, 999] {
            let t = Tensor::new(&[idx as f32; 2], &Device::Cpu).unwrap();
            let a = gmm.forward(&x, &t).unwrap();
            let b = gauss.forward(&x, &t).unwrap();
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-6, "idx {idx}: {diff}");
        }
    }

    #[test]
    fn sample_follows_weights() {
        let spec = GmmSpec::from_json_str(TWO).unwrap();
        let mut noise = NoiseSource::new(11, 0, 20000);
        let x: Vec<Vec<f32>> = spec.sample(&mut noise, &Device::Cpu).unwrap().to_vec2().unwrap();
        let frac = x.iter().filter(|r| r[0] < 0.25).count() as f64 / x.len() as f64;
        // P(first coordinate < 0.25) = 0.3 Φ(1.25/0.4) + 0.7 Φ(−1.25/0.7) ≈ 0.2997 + 0.0259.
        assert!((frac - 0.3256).abs() < 0.015, "{frac}");
    }

    #[test]
    fn malformed_specs_are_errors() {
        let bad = [
            "{not json",
            r#"{"weights": [1], "means": [[0, 0]]}"#,
            r#"{"weights": [1], "means": [[0, 0]], "stds": [-1]}"#,
            r#"{"weights": [1], "means": [[0, 0]], "stds": [0]}"#,
            r#"{"weights": [1, 1], "means": [[0, 0], [1]], "stds": [1, 1]}"#,
            r#"{"weights": [1, 1], "means": [[0, 0]], "stds": [1, 1]}"#,
            r#"{"weights": [-1, 2], "means": [[0], [1]], "stds": [1, 1]}"#,
            r#"{"weights": [0, 0], "means": [[0], [1]], "stds": [1, 1]}"#,
            r#"{"weights": [], "means": [], "stds": []}"#,
            r#"{"weights": [1], "means": [[]], "stds": [1]}"#,
            r#"{"weights": [1], "means": [[0]], "stds": [1], "extra": 2}"#,
        ];
        for text in bad {
            assert!(GmmSpec::from_json_str(text).is_err(), "accepted {text}");
        }
        assert!(matches!(GmmSpec::from_json_str(bad[0]), Err(AnalyticError::Json(_))));
        assert!(matches!(GmmSpec::from_json_str(bad[4]), Err(AnalyticError::Dimension(_))));
        assert!(matches!(GmmSpec::from_path("/nonexistent/gmm.json"), Err(AnalyticError::Io { .. })));
    }
}
