//! Exact denoisers for Gaussian data N(μ, Σ): the reference the continuous samplers are tested against.
//!
//! With x = x₀ + σ·n, x₀ ~ N(μ, Σ): p(x; σ) = N(μ, Σ + σ²I) and
//! D(x; σ) = E[x₀ | x] = μ + Σ(Σ + σ²I)⁻¹(x − μ). In the eigenbasis Σ = Q·diag(λ)·Qᵀ every
//! quantity (denoiser, log-density, probability-flow trajectory) is diagonal.

use super::error::{ContinuousError, Result};
use super::view::{per_sample, SigmaDenoiser};
use candle_core::{DType, Tensor};
use rediffuse_core::sde::{DiscreteSigmas, Sde};
use rediffuse_core::{CoreError, Denoiser, Prediction};

/// Gaussian data distribution N(μ, Σ) over flattened samples of dimension d.
#[derive(Debug, Clone)]
pub struct GaussianData {
    mean: Vec<f64>,
    cov: Vec<f64>,
    eigvals: Vec<f64>,
    /// Row-major d×d, column k is eigenvector k.
    eigvecs: Vec<f64>,
}

impl GaussianData {
    /// `cov` is row-major d×d, symmetric positive definite.
    pub fn new(mean: Vec<f64>, cov: Vec<f64>) -> Result<Self> {
        let d = mean.len();
        if mean.iter().any(|v| !v.is_finite()) {
            return Err(ContinuousError::invalid("mean", "must be finite"));
        }
        if cov.iter().any(|v| !v.is_finite()) {
            return Err(ContinuousError::invalid("cov", "contains non-finite entries"));
        }
        for i in 0..d {
            for j in 0..i {
                let (x, y) = (cov[i * d + j], cov[j * d + i]);
                if (x - y).abs() > 1e-9 * (1.0 + x.abs().max(y.abs())) {
                    return Err(ContinuousError::invalid("cov", "is not symmetric"));
                }
            }
        }
        let eig = rediffuse_core::analytic::linalg::symmetric_eigen(&cov, d).map_err(CoreError::from)?;
        let (eigvals, eigvecs) = (eig.values, eig.vectors);
        if eigvals.iter().any(|&l| l <= 0.0) {
            return Err(ContinuousError::invalid("cov", "must be positive definite"));
        }
        Ok(Self { mean, cov, eigvals, eigvecs })
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
    pub fn cov(&self) -> &[f64] {
        &self.cov
    }

    /// Apply x ↦ c + Q·diag(w_b)·Qᵀ(x − c) per sample with tensor ops (differentiable in x);
    /// `w` is `B × d` row-major, `shift_in`/`shift_out` are the centres before/after.
    fn eig_map(&self, x: &Tensor, w: &[f64], shift_in: &[f64], shift_out: &[f64]) -> Result<Tensor> {
        let d = self.dim();
        let b = x.dim(0)?;
        if x.elem_count() != b * d {
            return Err(ContinuousError::Shape(format!(
                "samples of {} elements, expected {d}",
                x.elem_count() / b.max(1)
            )));
        }
        let dt = x.dtype();
        let dev = x.device();
        let cast = |t: Tensor| -> Result<Tensor> { Ok(if dt == DType::F64 { t } else { t.to_dtype(dt)? }) };
        let q = cast(Tensor::from_slice(&self.eigvecs, (d, d), dev)?)?;
        let c_in = cast(Tensor::from_slice(shift_in, (1, d), dev)?)?;
        let c_out = cast(Tensor::from_slice(shift_out, (1, d), dev)?)?;
        let wt = cast(Tensor::from_slice(w, (b, d), dev)?)?;
        let y = x.reshape((b, d))?.broadcast_sub(&c_in)?.matmul(&q)?;
        let out = y.mul(&wt)?.matmul(&q.t()?)?.broadcast_add(&c_out)?;
        Ok(out.reshape(x.shape())?)
    }

    /// Exact D(x; σ) = μ + Σ(Σ + σ²I)⁻¹(x − μ), per-sample σ.
    pub fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        let w: Vec<f64> =
            sigma.iter().flat_map(|&s| self.eigvals.iter().map(move |&l| l / (l + s * s))).collect();
        if sigma.len() != x.dim(0)? {
            return Err(ContinuousError::Shape("one σ per sample required".into()));
        }
        self.eig_map(x, &w, &self.mean, &self.mean)
    }

    /// Exact solution of the probability-flow ODE dx/dσ = (x − D(x; σ))/σ (Karras et al. Eq. 4)
    /// from σ₀ to σ₁: x(σ₁) = μ + Q·diag(√((λ + σ₁²)/(λ + σ₀²)))·Qᵀ(x(σ₀) − μ).
    pub fn ode_solution(&self, x: &Tensor, sigma_from: f64, sigma_to: f64) -> Result<Tensor> {
        let b = x.dim(0)?;
        let w: Vec<f64> = (0..b)
            .flat_map(|_| {
                self.eigvals.iter().map(|&l| ((l + sigma_to.powi(2)) / (l + sigma_from.powi(2))).sqrt())
            })
            .collect();
        self.eig_map(x, &w, &self.mean, &self.mean)
    }

    /// log N(x; m·μ, m²Σ + s²I) of each flattened sample (rows of `x`, length `B·d`), in nats.
    pub fn log_prob_scaled(&self, x: &[f64], m: f64, s: f64) -> Result<Vec<f64>> {
        let d = self.dim();
        if !x.len().is_multiple_of(d) {
            return Err(ContinuousError::Shape(format!("{} values are not rows of {d}", x.len())));
        }
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        Ok(x.chunks(d)
            .map(|row| {
                let mut acc = 0.0;
                for k in 0..d {
                    let y: f64 = (0..d).map(|i| (row[i] - m * self.mean[i]) * self.eigvecs[i * d + k]).sum();
                    let v = m * m * self.eigvals[k] + s * s;
                    acc += y * y / v + v.ln() + ln2pi;
                }
                -0.5 * acc
            })
            .collect())
    }

    /// log p(x; σ) = log N(x; μ, Σ + σ²I) per sample.
    pub fn log_prob_sigma(&self, x: &[f64], sigma: f64) -> Result<Vec<f64>> {
        self.log_prob_scaled(x, 1.0, sigma)
    }

    /// log p_t(x) of the SDE marginal N(m(t)μ, m(t)²Σ + s(t)²I) per sample.
    pub fn log_prob_sde(&self, x: &[f64], sde: &Sde, t: f64) -> Result<Vec<f64>> {
        self.log_prob_scaled(x, sde.mean_coef(t), sde.marginal_std(t))
    }
}

impl SigmaDenoiser for GaussianData {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        GaussianData::denoise(self, x, sigma)
    }
}

/// Map a continuous-module error into the core error type (for `Denoiser` implementations).
pub fn to_core_error(e: ContinuousError) -> CoreError {
    match e {
        ContinuousError::Core(e) => e,
        ContinuousError::Candle(e) => CoreError::Candle(e),
        ContinuousError::InvalidParameter { name, reason } => CoreError::InvalidParameter { name, reason },
        ContinuousError::Shape(s) => CoreError::Shape(s),
        ContinuousError::Solver(s) => CoreError::Shape(format!("solver: {s}")),
    }
}

/// The exact ε-model of Gaussian data under a discrete DDPM schedule (model time = fractional
/// index, σ interpolated in ln σ): ε(x_t, t) = (x_σ − D(x_σ; σ))/σ with x_σ = x_t·√(1 + σ²).
/// It is the "trained DDPM network" the discrete adapters are tested with.
#[derive(Debug, Clone)]
pub struct DiscreteGaussianEps {
    pub data: GaussianData,
    pub sigmas: DiscreteSigmas,
}

impl Denoiser for DiscreteGaussianEps {
    fn prediction(&self) -> Prediction {
        Prediction::Epsilon
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let ts: Vec<f64> = t.to_dtype(DType::F64)?.to_vec1()?;
        let sig =
            ts.iter().map(|&t| self.sigmas.t_to_sigma(t)).collect::<rediffuse_core::Result<Vec<f64>>>()?;
        let f = || -> Result<Tensor> {
            let scale: Vec<f64> = sig.iter().map(|s| (1.0 + s * s).sqrt()).collect();
            let x_sigma = x_t.broadcast_mul(&per_sample(&scale, x_t)?)?;
            let d = self.data.denoise(&x_sigma, &sig)?;
            let inv: Vec<f64> = sig.iter().map(|s| 1.0 / s).collect();
            Ok(x_sigma.sub(&d)?.broadcast_mul(&per_sample(&inv, x_t)?)?)
        };
        f().map_err(to_core_error)
    }
}
