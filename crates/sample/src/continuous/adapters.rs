//! Adapters between `rediffuse_core::Denoiser` (model time + prediction kind) and the σ-space
//! [`SigmaDenoiser`] view (k-diffusion's `DiscreteEpsDDPMDenoiser`/`DiscreteVDDPMDenoiser`,
//! Song et al.'s continuous score models, and EDM preconditioning), plus the reverse adapter that
//! lets discrete samplers (DDPM/DDIM) drive any σ-space model.

use super::analytic::to_core_error;
use super::error::{ContinuousError, Result};
use super::view::{per_sample, SigmaDenoiser};
use candle_core::{DType, Tensor};
use rediffuse_core::analytic::{flatten_input, AnalyticDenoiser};
use rediffuse_core::prediction::to_x0_eps;
use rediffuse_core::sde::{DiscreteSigmas, EdmConfig, Sde};
use rediffuse_core::{Denoiser, DiffusionSchedule, Prediction};
use serde::{Deserialize, Serialize};

/// f32 model-time tensor `[B]`.
fn time_tensor(t: &[f64], like: &Tensor) -> Result<Tensor> {
    let v: Vec<f32> = t.iter().map(|&t| t as f32).collect();
    Ok(Tensor::from_vec(v, t.len(), like.device())?)
}

fn cast_like(t: Tensor, like: &Tensor) -> Result<Tensor> {
    Ok(if t.dtype() == like.dtype() { t } else { t.to_dtype(like.dtype())? })
}

/// σ = 0 means "no noise": D(x; 0) = x. Returns `Some(x)` when every σ is 0, an error when only
/// some are, `None` otherwise (all σ > 0 checked).
fn zero_sigma(x: &Tensor, sigma: &[f64]) -> Result<Option<Tensor>> {
    if sigma.len() != x.dim(0)? {
        return Err(ContinuousError::Shape(format!("{} σ values for a batch of {}", sigma.len(), x.dim(0)?)));
    }
    if sigma.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err(ContinuousError::invalid("sigma", "must be finite and >= 0"));
    }
    let zeros = sigma.iter().filter(|&&s| s == 0.0).count();
    if zeros == sigma.len() {
        return Ok(Some(x.clone()));
    }
    if zeros > 0 {
        return Err(ContinuousError::invalid("sigma", "mixing σ = 0 with σ > 0 in one batch"));
    }
    Ok(None)
}

/// An analytic denoiser (exact Gaussian, Gaussian mixture, empirical data) evaluated at any σ:
/// D(x; σ) = E[x₀ | x_t = x/√(1 + σ²)] at ᾱ = 1/(1 + σ²) in closed form, with no rounding to the
/// timesteps of the schedule it was built on (as [`DiscreteModel`] over it has). Rows of one
/// batch at different σ are evaluated one σ at a time. Differentiable in `x` where the closed form
/// is written in tensor ops (all three built-in denoisers), so exact likelihoods work.
pub struct AnalyticSigma<A: ?Sized> {
    pub model: Box<A>,
}

impl<A: AnalyticDenoiser + ?Sized> SigmaDenoiser for AnalyticSigma<A> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        if let Some(x) = zero_sigma(x, sigma)? {
            return Ok(x);
        }
        let dim = self.model.dim();
        let dev = self.model.compute_device().clone();
        let at = |rows: &Tensor, s: f64| -> Result<Tensor> {
            let ab = 1.0 / (1.0 + s * s);
            let flat = flatten_input(&rows.affine(ab.sqrt(), 0.0)?, dim, &dev)?;
            let x0 = self.model.posterior_mean_at(&flat, ab)?;
            Ok(cast_like(x0.to_device(rows.device())?, rows)?.reshape(rows.shape())?)
        };
        if sigma.iter().all(|&s| s == sigma[0]) {
            return at(x, sigma[0]);
        }
        let parts =
            sigma.iter().enumerate().map(|(i, &s)| at(&x.narrow(0, i, 1)?, s)).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }
}

/// (a) A model trained on a discrete DDPM schedule, seen in σ-space: x_σ ↦ x_t = x_σ/√(1 + σ²),
/// model time t = sigma_to_t(σ) (fractional unless `quantize`), output (ε, x₀, v or score at
/// ᾱ = 1/(1 + σ²)) converted to x̂₀. Works for trained networks and the analytic denoisers alike.
#[derive(Debug, Clone)]
pub struct DiscreteModel<D: Denoiser> {
    pub model: D,
    pub sigmas: DiscreteSigmas,
    /// Round t to the nearest training index (for networks that only saw integer timesteps).
    pub quantize: bool,
}

impl<D: Denoiser> DiscreteModel<D> {
    pub fn new(model: D, schedule: &DiffusionSchedule) -> Result<Self> {
        Ok(Self { model, sigmas: DiscreteSigmas::new(schedule)?, quantize: false })
    }
    /// Smallest / largest σ of the training schedule (sampling range).
    pub fn sigma_min(&self) -> f64 {
        self.sigmas.sigma_min()
    }
    pub fn sigma_max(&self) -> f64 {
        self.sigmas.sigma_max()
    }
}

impl<D: Denoiser> SigmaDenoiser for DiscreteModel<D> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        if let Some(x) = zero_sigma(x, sigma)? {
            return Ok(x);
        }
        let mut ts = Vec::with_capacity(sigma.len());
        for &s in sigma {
            let t = self.sigmas.sigma_to_t(s)?;
            ts.push(if self.quantize { t.round() } else { t });
        }
        let a: Vec<f64> = sigma.iter().map(|s| 1.0 / (1.0 + s * s).sqrt()).collect();
        let sv: Vec<f64> = sigma.iter().zip(&a).map(|(s, a)| s * a).collect();
        let (a, sv) = (per_sample(&a, x)?, per_sample(&sv, x)?);
        let x_t = x.broadcast_mul(&a)?;
        let out = cast_like(self.model.forward(&x_t, &time_tensor(&ts, x)?)?, x)?;
        Ok(to_x0_eps(self.model.prediction(), &out, &x_t, &a, &sv)?.0)
    }
}

/// What a continuous-time network receives as its time input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TimeInput {
    /// t·scale (Song et al. feed 999·t to DDPM-style VP networks).
    Scaled { scale: f64 },
    /// The marginal std s(t) (Song et al.'s VE / NCSN networks are conditioned on σ).
    MarginalStd,
}

/// (b) A network over an SDE's own state x_t = m(t)·x_σ and continuous time t ∈ (0, 1]
/// (prediction: ε, score, x₀, or v for VP), seen in σ-space via t = t(σ).
#[derive(Debug, Clone)]
pub struct ContinuousModel<D: Denoiser> {
    pub model: D,
    pub sde: Sde,
    pub time_input: TimeInput,
}

impl<D: Denoiser> ContinuousModel<D> {
    pub fn new(model: D, sde: Sde, time_input: TimeInput) -> Result<Self> {
        sde.validate()?;
        if model.prediction() == Prediction::V && !matches!(sde, Sde::Vp { .. }) {
            return Err(ContinuousError::invalid(
                "prediction",
                "v-prediction needs a variance-preserving SDE",
            ));
        }
        Ok(Self { model, sde, time_input })
    }

    /// The network time input at SDE time t.
    pub fn model_time(&self, t: f64) -> f64 {
        match self.time_input {
            TimeInput::Scaled { scale } => t * scale,
            TimeInput::MarginalStd => self.sde.marginal_std(t),
        }
    }
}

impl<D: Denoiser> SigmaDenoiser for ContinuousModel<D> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        if let Some(x) = zero_sigma(x, sigma)? {
            return Ok(x);
        }
        let ts =
            sigma.iter().map(|&s| self.sde.t_from_sigma(s)).collect::<rediffuse_core::Result<Vec<_>>>()?;
        let m: Vec<f64> = ts.iter().map(|&t| self.sde.mean_coef(t)).collect();
        let sd: Vec<f64> = ts.iter().map(|&t| self.sde.marginal_std(t)).collect();
        let (mt, st) = (per_sample(&m, x)?, per_sample(&sd, x)?);
        let x_t = x.broadcast_mul(&mt)?;
        let model_t: Vec<f64> = ts.iter().map(|&t| self.model_time(t)).collect();
        let out = cast_like(self.model.forward(&x_t, &time_tensor(&model_t, x)?)?, x)?;
        Ok(to_x0_eps(self.model.prediction(), &out, &x_t, &mt, &st)?.0)
    }
}

/// (c) EDM preconditioning around a raw network F (Karras et al. 2022, Eq. 7 and Table 1):
/// D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ)). The network's model time is c_noise;
/// its `prediction()` is not used (F's target is EDM's effective target, see `losses::edm_training_pair`).
#[derive(Debug, Clone)]
pub struct EdmPrecond<D: Denoiser> {
    pub net: D,
    pub config: EdmConfig,
}

impl<D: Denoiser> EdmPrecond<D> {
    pub fn new(net: D, config: EdmConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { net, config })
    }

    /// The raw network output F(c_in·x; c_noise) for per-sample σ (> 0).
    pub fn raw(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        let c = &self.config;
        let c_in: Vec<f64> = sigma.iter().map(|&s| c.c_in(s)).collect();
        let c_noise: Vec<f64> = sigma.iter().map(|&s| c.c_noise(s)).collect();
        let x_in = x.broadcast_mul(&per_sample(&c_in, x)?)?;
        cast_like(self.net.forward(&x_in, &time_tensor(&c_noise, x)?)?, x)
    }
}

impl<D: Denoiser> SigmaDenoiser for EdmPrecond<D> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor> {
        if let Some(x) = zero_sigma(x, sigma)? {
            return Ok(x);
        }
        let c = &self.config;
        let skip: Vec<f64> = sigma.iter().map(|&s| c.c_skip(s)).collect();
        let out: Vec<f64> = sigma.iter().map(|&s| c.c_out(s)).collect();
        let f = self.raw(x, sigma)?;
        Ok(x.broadcast_mul(&per_sample(&skip, x)?)?.add(&f.broadcast_mul(&per_sample(&out, x)?)?)?)
    }
}

/// (d) The reverse adapter: any σ-space model as a discrete ε-prediction `Denoiser` over a DDPM
/// schedule (model time = fractional index t, σ = t_to_sigma(t), x_σ = x_t·√(1 + σ²),
/// ε = (x_σ − D(x_σ; σ))/σ). Pass it with the same schedule to the DDPM/DDIM samplers; for a
/// continuous SDE model use [`Sde::discrete_schedule`] to get a schedule with matching σ-space.
#[derive(Debug, Clone)]
pub struct DiscreteView<M: SigmaDenoiser> {
    pub model: M,
    pub sigmas: DiscreteSigmas,
}

impl<M: SigmaDenoiser> DiscreteView<M> {
    pub fn new(model: M, schedule: &DiffusionSchedule) -> Result<Self> {
        Ok(Self { model, sigmas: DiscreteSigmas::new(schedule)? })
    }

    fn eps(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        let ts: Vec<f64> = t.to_dtype(DType::F64)?.to_vec1()?;
        let sig =
            ts.iter().map(|&t| self.sigmas.t_to_sigma(t)).collect::<rediffuse_core::Result<Vec<_>>>()?;
        let scale: Vec<f64> = sig.iter().map(|s| (1.0 + s * s).sqrt()).collect();
        let x_sigma = x_t.broadcast_mul(&per_sample(&scale, x_t)?)?;
        let d = self.model.denoise(&x_sigma, &sig)?;
        let inv: Vec<f64> = sig.iter().map(|s| 1.0 / s).collect();
        Ok(x_sigma.sub(&d)?.broadcast_mul(&per_sample(&inv, x_t)?)?)
    }
}

impl<M: SigmaDenoiser> Denoiser for DiscreteView<M> {
    fn prediction(&self) -> Prediction {
        Prediction::Epsilon
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        self.eps(x_t, t).map_err(to_core_error)
    }
}
