//! Consistency distillation (CD) and consistency training (CT) (Song et al. 2023; seed 002
//! "Consistency Models"; improved CT options of Song & Dhariwal 2023).
//!
//! Discretisation: Karras' grid σ₁ = σ_min < … < σ_N = σ_max (ρ). For an example x, an index n and
//! noise z: x_{n+1} = x + σ_{n+1}·z, and the target point is the teacher's Heun step of the
//! probability-flow ODE from σ_{n+1} to σ_n (CD) or x + σ_n·z with the same z (CT). The loss is
//! d(ψ_θ(x_{n+1}, σ_{n+1}), ψ_θ⁻(x̂_n, σ_n)) with ψ_θ⁻ the EMA target network (decay μ for CD,
//! μ(k) = exp(s₀ ln μ₀ / N(k)) for CT) and N(k) = ⌈√(k/K·((s₁ + 1)² − s₀²) + s₀²) − 1⌉ + 1 for CT.

use crate::config::TrainConfig;
use crate::distill::TrainingNet;
use crate::error::{Result, TrainError};
use crate::run::{load_run, LoadedRun, NetDenoiser};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::Rng;
use rand_distr::StandardNormal;
use rediffuse_core::sde::karras_sigmas;
use rediffuse_core::Prediction;
use rediffuse_nn::DiffusionNet;
use rediffuse_sample::continuous::view::per_sample;
use rediffuse_sample::continuous::{ConsistencyParams, ConsistencyPrecond, SigmaDenoiser};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The distance d of the consistency loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencyLoss {
    /// Mean squared difference.
    #[default]
    L2,
    /// √(‖a − b‖² + c²) − c with c = 0.00054·√dim (improved CT).
    PseudoHuber,
}

/// How the discretisation index n is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum IndexSampling {
    /// n ~ U{1, …, N − 1}.
    #[default]
    Uniform,
    /// p(n) ∝ erf((ln σ_{n+1} − P_mean)/(√2 P_std)) − erf((ln σ_n − P_mean)/(√2 P_std)) (improved CT).
    Lognormal { p_mean: f64, p_std: f64 },
}

/// `[method]` of `kind = "consistency"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyConfig {
    #[serde(default = "d_sigma_min")]
    pub sigma_min: f64,
    #[serde(default = "d_sigma_max")]
    pub sigma_max: f64,
    #[serde(default = "d_sigma_data")]
    pub sigma_data: f64,
    #[serde(default = "d_rho")]
    pub rho: f64,
    /// Consistency distillation from this teacher run (its EMA weights); none: consistency training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
    /// CD: the number N of discretisation points (default 18).
    #[serde(default = "d_steps")]
    pub steps: usize,
    /// CD: decay μ of the target network (default 0.95).
    #[serde(default = "d_mu")]
    pub mu: f64,
    /// CT: N(k) grows from s₀ to s₁ + 1 (defaults 2 and 150) with μ(k) from μ₀ (default 0.9).
    #[serde(default = "d_s0")]
    pub s0: usize,
    #[serde(default = "d_s1")]
    pub s1: usize,
    #[serde(default = "d_mu0")]
    pub mu0: f64,
    #[serde(default)]
    pub loss: ConsistencyLoss,
    #[serde(default)]
    pub index_sampling: IndexSampling,
}

fn d_sigma_min() -> f64 {
    0.002
}
fn d_sigma_max() -> f64 {
    80.0
}
fn d_sigma_data() -> f64 {
    0.5
}
fn d_rho() -> f64 {
    7.0
}
fn d_steps() -> usize {
    18
}
fn d_mu() -> f64 {
    0.95
}
fn d_s0() -> usize {
    2
}
fn d_s1() -> usize {
    150
}
fn d_mu0() -> f64 {
    0.9
}

impl Default for ConsistencyConfig {
    fn default() -> Self {
        Self {
            sigma_min: d_sigma_min(),
            sigma_max: d_sigma_max(),
            sigma_data: d_sigma_data(),
            rho: d_rho(),
            teacher: None,
            steps: d_steps(),
            mu: d_mu(),
            s0: d_s0(),
            s1: d_s1(),
            mu0: d_mu0(),
            loss: ConsistencyLoss::L2,
            index_sampling: IndexSampling::Uniform,
        }
    }
}

fn bad(field: &str, reason: impl Into<String>) -> TrainError {
    TrainError::invalid(format!("method.{field}"), reason)
}

impl ConsistencyConfig {
    pub fn validate(&self) -> Result<()> {
        for (f, v) in [
            ("sigma_min", self.sigma_min),
            ("sigma_max", self.sigma_max),
            ("sigma_data", self.sigma_data),
            ("rho", self.rho),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(f, format!("must be a finite number > 0, got {v}")));
            }
        }
        if self.sigma_min >= self.sigma_max {
            return Err(bad("sigma_min", "must be smaller than sigma_max"));
        }
        if self.steps < 2 {
            return Err(bad("steps", format!("N must be >= 2, got {}", self.steps)));
        }
        if self.s0 < 2 {
            return Err(bad("s0", format!("N(k) must start at >= 2, got {}", self.s0)));
        }
        if self.s1 < self.s0 {
            return Err(bad("s1", format!("must be >= s0 = {}, got {}", self.s0, self.s1)));
        }
        for (f, v) in [("mu", self.mu), ("mu0", self.mu0)] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(bad(f, format!("must lie in [0, 1), got {v}")));
            }
        }
        if let IndexSampling::Lognormal { p_mean, p_std } = self.index_sampling {
            if !(p_mean.is_finite() && p_std.is_finite() && p_std > 0.0) {
                return Err(bad("index_sampling", "p_mean must be finite and p_std > 0"));
            }
        }
        Ok(())
    }

    pub fn params(&self) -> ConsistencyParams {
        ConsistencyParams { sigma_min: self.sigma_min, sigma_data: self.sigma_data }
    }

    /// N(k) at step k of `total` (CT), or the fixed N (CD).
    pub fn discretisation(&self, k: u64, total: u64) -> usize {
        if self.teacher.is_some() {
            return self.steps;
        }
        let (s0, s1) = (self.s0 as f64, self.s1 as f64);
        let frac = k as f64 / total.max(1) as f64;
        let n = ((frac * ((s1 + 1.0).powi(2) - s0 * s0) + s0 * s0).sqrt() - 1.0).ceil() + 1.0;
        (n as usize).max(2)
    }

    /// The target network's decay at step k: μ (CD) or μ(k) = exp(s₀ ln μ₀ / N(k)) (CT).
    pub fn target_decay(&self, k: u64, total: u64) -> f64 {
        if self.teacher.is_some() {
            return self.mu;
        }
        (self.s0 as f64 * self.mu0.ln() / self.discretisation(k, total) as f64).exp()
    }

    /// σ₁ = σ_min < … < σ_N = σ_max.
    pub fn grid(&self, n: usize) -> Result<Vec<f64>> {
        let mut g = karras_sigmas(n, self.sigma_min, self.sigma_max, self.rho)?;
        g.pop();
        g.reverse();
        Ok(g)
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

/// The state of a consistency run besides the student: the CD teacher.
pub struct ConsistencyState {
    pub teacher: Option<LoadedRun>,
}

impl ConsistencyState {
    pub fn load(config: &TrainConfig, device: &Device) -> Result<Option<Self>> {
        let crate::config::Method::Consistency(c) = &config.method else { return Ok(None) };
        if config.super_res.is_some() || config.model.num_classes().is_some() {
            return Err(TrainError::invalid("method", "consistency models support unconditional runs only"));
        }
        let teacher = match &c.teacher {
            Some(t) => {
                let run = load_run(Path::new(t), true, device)?;
                if run.config.model.sample_shape() != config.model.sample_shape() {
                    return Err(TrainError::invalid(
                        "method.teacher",
                        format!("{t} generates another shape"),
                    ));
                }
                Some(run)
            }
            None => None,
        };
        Ok(Some(Self { teacher }))
    }

    /// Per-sample loss `[B]` at step `k` of `total`, with the target network's weights `target`.
    /// Draws from `rng`: one index per example (a uniform f64 for the log-normal sampler), then
    /// the noise element by element.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_per_sample<R: Rng + ?Sized>(
        &self,
        config: &TrainConfig,
        c: &ConsistencyConfig,
        net: &dyn DiffusionNet,
        target: &HashMap<String, Tensor>,
        x0: &Tensor,
        k: u64,
        rng: &mut R,
    ) -> Result<Tensor> {
        let b = x0.dim(0)?;
        let n_points = c.discretisation(k, config.steps as u64);
        let grid = c.grid(n_points)?;
        let ns: Vec<usize> = match c.index_sampling {
            IndexSampling::Uniform => (0..b).map(|_| rng.random_range(0..n_points - 1)).collect(),
            IndexSampling::Lognormal { p_mean, p_std } => {
                let cdf = |s: f64| erf((s.ln() - p_mean) / (std::f64::consts::SQRT_2 * p_std));
                let w: Vec<f64> = grid.windows(2).map(|g| (cdf(g[1]) - cdf(g[0])).max(0.0)).collect();
                let total: f64 = w.iter().sum();
                (0..b)
                    .map(|_| {
                        let mut u = rng.random::<f64>() * total;
                        let mut i = 0;
                        while i + 1 < w.len() && u >= w[i] {
                            u -= w[i];
                            i += 1;
                        }
                        i
                    })
                    .collect()
            }
        };
        let z: Vec<f32> = (0..x0.elem_count()).map(|_| rng.sample(StandardNormal)).collect();
        let z = Tensor::from_vec(z, x0.shape(), x0.device())?;
        let lo: Vec<f64> = ns.iter().map(|&n| grid[n]).collect();
        let hi: Vec<f64> = ns.iter().map(|&n| grid[n + 1]).collect();
        let x_hi = x0.add(&z.broadcast_mul(&per_sample(&hi, x0)?)?)?;
        let x_lo = match &self.teacher {
            None => x0.add(&z.broadcast_mul(&per_sample(&lo, x0)?)?)?,
            Some(t) => {
                // Heun step of the teacher's probability-flow ODE from σ_{n+1} down to σ_n
                let m = t.sigma_model()?;
                let slope = |x: &Tensor, s: &[f64]| -> Result<Tensor> {
                    let d = m.denoise(x, s)?;
                    let inv: Vec<f64> = s.iter().map(|s| 1.0 / s).collect();
                    Ok(x.sub(&d)?.broadcast_mul(&per_sample(&inv, x)?)?)
                };
                let h: Vec<f64> = lo.iter().zip(&hi).map(|(l, h)| l - h).collect();
                let d1 = slope(&x_hi, &hi)?;
                let euler = x_hi.add(&d1.broadcast_mul(&per_sample(&h, x0)?)?)?;
                let d2 = slope(&euler, &lo)?;
                let half: Vec<f64> = h.iter().map(|h| 0.5 * h).collect();
                x_hi.add(&d1.add(&d2)?.broadcast_mul(&per_sample(&half, x0)?)?)?.detach()
            }
        };
        let params = c.params();
        let student = ConsistencyPrecond { net: TrainingNet { net, prediction: Prediction::Sample }, params };
        let pred = student.denoise(&x_hi, &hi)?;
        let frozen = config.model.build(VarBuilder::from_tensors(target.clone(), DType::F32, x0.device()))?;
        let target_net = ConsistencyPrecond { net: NetDenoiser::new(frozen, Prediction::Sample), params };
        let want = target_net.denoise(&x_lo, &lo)?.detach();
        let diff = pred.sub(&want)?;
        Ok(match c.loss {
            ConsistencyLoss::L2 => rediffuse_core::tensor_util::mean_flat(&diff.sqr()?)?,
            ConsistencyLoss::PseudoHuber => {
                let dim = x0.elem_count() / b;
                let cc = 0.00054 * (dim as f64).sqrt();
                rediffuse_core::tensor_util::sum_flat(&diff.sqr()?)?
                    .affine(1.0, cc * cc)?
                    .sqrt()?
                    .affine(1.0, -cc)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_the_paper() {
        let c = ConsistencyConfig::default();
        // CT: N(0) = s0, N(K) = s1 + 1; μ(0) = μ0
        assert_eq!(c.discretisation(0, 1000), 2);
        assert_eq!(c.discretisation(1000, 1000), 151);
        assert!((c.target_decay(0, 1000) - 0.9).abs() < 1e-12);
        assert!(c.target_decay(1000, 1000) > 0.99);
        let n: Vec<usize> = (0..=10).map(|i| c.discretisation(i * 100, 1000)).collect();
        assert!(n.windows(2).all(|w| w[1] >= w[0]));
        let cd = ConsistencyConfig { teacher: Some("t".into()), ..c.clone() };
        assert_eq!((cd.discretisation(500, 1000), cd.target_decay(5, 10)), (18, 0.95));
        let g = c.grid(18).unwrap();
        assert_eq!(g.len(), 18);
        assert!((g[0] - 0.002).abs() < 1e-12 && (g[17] - 80.0).abs() < 1e-9);
        assert!((erf(0.5) - 0.520_499_877_8).abs() < 2e-7 && (erf(-1.2) + 0.910_313_978_2).abs() < 2e-7);
        // validation
        for bad in [
            ConsistencyConfig { steps: 1, ..c.clone() },
            ConsistencyConfig { sigma_min: 0.0, ..c.clone() },
            ConsistencyConfig { sigma_min: 100.0, ..c.clone() },
            ConsistencyConfig { s0: 1, ..c.clone() },
            ConsistencyConfig { mu: 1.0, ..c.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
