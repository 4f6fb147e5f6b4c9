//! One entry point for every sampler on every model: [`SamplerSpec`] names a sampler and its
//! options (serde, `kind` tag), [`SampleModel`] bundles the views of one model that the sampler
//! families need, and [`sample`] draws x_T at the right scale and runs the sampler.
//! [`nll_ode`] computes probability-flow log-likelihoods of given points.
//!
//! # Views of a model
//! * a discrete `Denoiser` + `DiffusionSchedule` (DDPM, DDIM): the network itself for DDPM-trained
//!   models, `DiscreteView` over the σ-space model for continuous ones;
//! * a σ-space [`SigmaDenoiser`] (Langevin, DPM-Solver(++), EDM, and through `sde_score` the
//!   SDE/ODE samplers): `DiscreteModel` for DDPM models, `ContinuousModel` / `EdmPrecond` for
//!   continuous ones;
//! * a [`Frame`]: the SDE the SDE/ODE samplers integrate, their smallest time ε, and the σ range
//!   [σ_min, σ_max] the σ-space samplers cover.
//!
//! # Prior noise
//! x_T = c·z where z ~ N(0, I) comes from `NoiseSource` (first draw of each sample's stream) or from
//! the caller (e.g. an `--init-noise` file of unit-variance values), and c depends on the family:
//! * DDPM, DDIM: c = 1 (the VP state x_T);
//! * Euler–Maruyama, PC, probability-flow ODE: c = the SDE's prior std (σ_max for VE, 1 for VP/sub-VP);
//! * Langevin: c = σ₁, the first (largest) level;
//! * DPM-Solver, DPM-Solver++, EDM: c = σ_max of the frame (k-diffusion's `randn·sigmas[0]`).
//!
//! So one z file gives consistent starting points for every sampler.

use crate::continuous::{
    annealed_langevin, dpm_solver, dpmpp_multistep, edm_heun, edm_stochastic, lambda_uniform_sigmas,
    ode_fixed_step, ode_log_likelihood, ode_rk45, pc_sample, AnnealedLangevin, ContinuousError, Corrector,
    DiscreteModel, DiscreteView, Divergence, EdmChurn, LikelihoodOptions, OdeMethod, PcConfig, Predictor,
    Rk45Options, SampleStats, SigmaDenoiser, SnrNorms,
};
use crate::ddim::{ddim_sample, DdimOptions};
use crate::ddpm::{ddpm_sample, DdpmOptions};
use crate::error::SampleError;
use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rediffuse_core::sde::{geometric_sigmas, karras_sigmas, DiscreteSigmas, Sde};
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};
use serde::{Deserialize, Serialize};

/// Errors of [`sample`], [`nll_ode`] and the [`SampleModel`] constructors.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Discrete(#[from] SampleError),
    #[error(transparent)]
    Continuous(#[from] ContinuousError),
    #[error(transparent)]
    Core(#[from] rediffuse_core::CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A sampler option or model description is out of range.
    #[error("invalid `{name}`: {reason}")]
    Invalid { name: &'static str, reason: String },
    /// Initial noise or data of the wrong shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

pub type Result<T> = std::result::Result<T, DispatchError>;

fn invalid(name: &'static str, reason: impl Into<String>) -> DispatchError {
    DispatchError::Invalid { name, reason: reason.into() }
}

fn default_true() -> bool {
    true
}
fn default_rho() -> f64 {
    7.0
}
fn default_rtol() -> f64 {
    1e-5
}
fn default_s_tmax() -> f64 {
    f64::INFINITY
}
fn default_one() -> f64 {
    1.0
}
fn default_langevin_eps() -> f64 {
    2e-5
}
fn default_predictor() -> Predictor {
    Predictor::ReverseDiffusion
}

/// A sampler and its options. `eps: None` uses the model frame's smallest time ([`Frame::eps`]);
/// `denoise` ends SDE/ODE samplers with the noise-free mean / a Tweedie denoising step (default true).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SamplerSpec {
    /// Ancestral DDPM (Ho et al. 2020, Algorithm 2) over all T steps of the discrete view.
    Ddpm(DdpmOptions),
    /// DDIM (Song et al. 2021a) on a timestep sub-sequence of the discrete view.
    Ddim(DdimOptions),
    /// Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1). `levels: None` uses the model's
    /// trained NCSN levels, or 10 geometric levels over the frame's σ range; `Some(L)` always uses L
    /// geometric levels over that range. Step size α_i = `step_eps`·σ_i²/σ_L², so `step_eps` is the
    /// step at the last level: NCSN's 2e-5 suits σ_L = 0.01; in general choose about 0.1–0.5·σ_L²
    /// (`Frame::sigma_min` or the model's last level) — larger values diverge.
    Langevin {
        #[serde(default)]
        levels: Option<usize>,
        /// Smallest level σ_L of generated geometric levels (default the frame's σ_min; must lie in
        /// the frame's range). Frames reaching very small σ (sub-VP: 1e-4) waste levels otherwise.
        #[serde(default)]
        sigma_min: Option<f64>,
        steps_per_level: usize,
        #[serde(default = "default_langevin_eps")]
        step_eps: f64,
        #[serde(default = "default_true")]
        final_denoise: bool,
    },
    /// Reverse-SDE Euler–Maruyama on the frame's SDE (Song et al. 2021b, §4.1).
    EulerMaruyama {
        steps: usize,
        #[serde(default)]
        eps: Option<f64>,
        #[serde(default = "default_true")]
        denoise: bool,
    },
    /// Predictor–corrector sampling (Song et al. 2021b, Algorithm 1) with a Langevin corrector of
    /// signal-to-noise ratio `snr` (batch-mean norms, as the reference code).
    Pc {
        steps: usize,
        snr: f64,
        corrector_steps: usize,
        #[serde(default = "default_predictor")]
        predictor: Predictor,
        #[serde(default)]
        eps: Option<f64>,
        #[serde(default = "default_true")]
        denoise: bool,
    },
    /// Probability-flow ODE, Euler (NFE = steps).
    OdeEuler {
        steps: usize,
        #[serde(default)]
        eps: Option<f64>,
        #[serde(default = "default_true")]
        denoise: bool,
    },
    /// Probability-flow ODE, Heun (NFE = 2·steps).
    OdeHeun {
        steps: usize,
        #[serde(default)]
        eps: Option<f64>,
        #[serde(default = "default_true")]
        denoise: bool,
    },
    /// Probability-flow ODE, adaptive Dormand–Prince RK45.
    OdeRk45 {
        #[serde(default = "default_rtol")]
        rtol: f64,
        #[serde(default = "default_rtol")]
        atol: f64,
        #[serde(default)]
        eps: Option<f64>,
        #[serde(default = "default_true")]
        denoise: bool,
    },
    /// Single-step DPM-Solver of `order` 1–3 (Lu et al. 2022a) over `steps` intervals uniform in λ
    /// from σ_max to σ_min, plus a final first-order step σ_min → 0 (`steps` ≥ 2 counts it).
    DpmSolver { steps: usize, order: usize },
    /// Multistep DPM-Solver++(2M) (Lu et al. 2022b), same σ grid as `DpmSolver`.
    #[serde(rename = "dpmpp-2m")]
    DpmPp2m { steps: usize },
    /// Multistep DPM-Solver++(3M).
    #[serde(rename = "dpmpp-3m")]
    DpmPp3m { steps: usize },
    /// EDM deterministic Heun (Karras et al. 2022, Algorithm 1) on the ρ-schedule over the frame's σ range.
    EdmHeun {
        steps: usize,
        #[serde(default = "default_rho")]
        rho: f64,
    },
    /// EDM stochastic sampler (Algorithm 2).
    EdmStochastic {
        steps: usize,
        #[serde(default = "default_rho")]
        rho: f64,
        s_churn: f64,
        #[serde(default)]
        s_tmin: f64,
        #[serde(default = "default_s_tmax")]
        s_tmax: f64,
        #[serde(default = "default_one")]
        s_noise: f64,
    },
}

impl SamplerSpec {
    /// Short name (`ddpm`, `ddim`, `langevin`, `euler-maruyama`, `pc`, `ode-euler`, `ode-heun`,
    /// `ode-rk45`, `dpm-solver`, `dpmpp-2m`, `dpmpp-3m`, `edm-heun`, `edm-stochastic`).
    pub fn name(&self) -> &'static str {
        match self {
            SamplerSpec::Ddpm(_) => "ddpm",
            SamplerSpec::Ddim(_) => "ddim",
            SamplerSpec::Langevin { .. } => "langevin",
            SamplerSpec::EulerMaruyama { .. } => "euler-maruyama",
            SamplerSpec::Pc { .. } => "pc",
            SamplerSpec::OdeEuler { .. } => "ode-euler",
            SamplerSpec::OdeHeun { .. } => "ode-heun",
            SamplerSpec::OdeRk45 { .. } => "ode-rk45",
            SamplerSpec::DpmSolver { .. } => "dpm-solver",
            SamplerSpec::DpmPp2m { .. } => "dpmpp-2m",
            SamplerSpec::DpmPp3m { .. } => "dpmpp-3m",
            SamplerSpec::EdmHeun { .. } => "edm-heun",
            SamplerSpec::EdmStochastic { .. } => "edm-stochastic",
        }
    }

    /// Scale c of the prior draw x_T = c·z for this sampler on `model` (see the module docs).
    pub fn prior_scale(&self, model: &SampleModel<'_>) -> Result<f64> {
        Ok(match self {
            SamplerSpec::Ddpm(_) | SamplerSpec::Ddim(_) => 1.0,
            SamplerSpec::EulerMaruyama { .. }
            | SamplerSpec::Pc { .. }
            | SamplerSpec::OdeEuler { .. }
            | SamplerSpec::OdeHeun { .. }
            | SamplerSpec::OdeRk45 { .. } => model.frame.sde.prior_std(),
            SamplerSpec::Langevin { levels, sigma_min, .. } => model.langevin_levels(*levels, *sigma_min)?[0],
            SamplerSpec::DpmSolver { .. }
            | SamplerSpec::DpmPp2m { .. }
            | SamplerSpec::DpmPp3m { .. }
            | SamplerSpec::EdmHeun { .. }
            | SamplerSpec::EdmStochastic { .. } => model.frame.sigma_max,
        })
    }
}

/// The continuous-time frame a model is sampled in: the SDE of the SDE/ODE samplers and their
/// smallest time `eps`, and the σ range of the σ-space samplers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub sde: Sde,
    pub eps: f64,
    pub sigma_min: f64,
    pub sigma_max: f64,
}

impl Frame {
    /// A score SDE's own frame: σ from σ(eps) to σ(1) (σ = s(t)/m(t)).
    pub fn for_sde(sde: Sde, eps: f64) -> Result<Self> {
        sde.validate()?;
        if !(eps.is_finite() && eps > 0.0 && eps < 1.0) {
            return Err(invalid("eps", format!("must lie in (0, 1), got {eps}")));
        }
        Self { sde, eps, sigma_min: sde.sigma(eps), sigma_max: sde.sigma(1.0) }.checked()
    }

    /// A VE frame over [σ_min, σ_max] (NCSN, EDM): SDE `Ve { sigma_min, sigma_max }`, ε = 1e-5.
    pub fn ve(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        let sde = Sde::Ve { sigma_min, sigma_max };
        sde.validate()?;
        Self { sde, eps: sde.default_eps(), sigma_min, sigma_max }.checked()
    }

    /// The frame of a discrete DDPM schedule (entries with ᾱ = 0, i.e. zero terminal SNR, are
    /// skipped): σ from σ_0 to σ_{T−1} of `DiscreteSigmas`, and the VP SDE matching the schedule at
    /// both ends — β_min = T·β_0 and β_max chosen so that ∫₀¹β = −ln ᾱ_{T−1} (for the DDPM paper's
    /// linear schedule, T = 1000, this is β ∈ [0.1, ≈20], Song et al.'s VP SDE) — with ε = t(σ_0).
    pub fn for_schedule(schedule: &DiffusionSchedule) -> Result<Self> {
        let sig = finite_discrete_sigmas(schedule)?;
        let t = schedule.len() as f64;
        let total = -schedule.alpha_bar[sig.len() - 1].ln();
        let mut beta_min = t * schedule.betas[0];
        if !(beta_min > 0.0 && 2.0 * total - beta_min > beta_min) {
            beta_min = 0.5 * total;
        }
        let sde = Sde::Vp { beta_min, beta_max: 2.0 * total - beta_min };
        sde.validate()?;
        let eps = sde.t_from_sigma(sig.sigma_min())?.clamp(1e-6, 0.5);
        Self { sde, eps, sigma_min: sig.sigma_min(), sigma_max: sig.sigma_max() }.checked()
    }

    fn checked(self) -> Result<Self> {
        if !(self.sigma_min.is_finite() && self.sigma_min > 0.0 && self.sigma_max > self.sigma_min) {
            return Err(invalid(
                "frame",
                format!("need 0 < sigma_min < sigma_max, got [{}, {}]", self.sigma_min, self.sigma_max),
            ));
        }
        if !self.sigma_max.is_finite() {
            return Err(invalid("frame", "sigma_max must be finite"));
        }
        Ok(self)
    }
}

/// A discrete schedule whose σ_i = √((1 − ᾱ_i)/ᾱ_i) are `n` values log-uniform from `sigma_min` to
/// `sigma_max` (ᾱ_i = 1/(1 + σ_i²)). Build an index-based analytic denoiser (gaussian, gmm,
/// empirical) on it and pass both to [`SampleModel::from_discrete_in`] with a frame inside
/// [σ_min, σ_max] to sample it as a continuous-time model: its index rounding then changes ln σ by at
/// most half a grid step, ln(σ_max/σ_min)/(2(n − 1)).
pub fn sigma_grid_schedule(sigma_min: f64, sigma_max: f64, n: usize) -> Result<DiffusionSchedule> {
    if n < 2 {
        return Err(invalid("n", "need at least 2 grid points"));
    }
    let mut s = geometric_sigmas(sigma_max, sigma_min, n)?;
    s.reverse();
    let ab: Vec<f64> = s.iter().map(|&s| 1.0 / (1.0 + s * s)).collect();
    Ok(DiffusionSchedule::from_betas(rediffuse_core::sde::betas_from_alpha_bar(&ab)?)?)
}

/// `DiscreteSigmas` of a schedule without its ᾱ = 0 tail (zero terminal SNR has σ = ∞ there), so
/// `DiscreteModel` / `DiscreteView` work on every DDPM schedule.
pub fn finite_discrete_sigmas(schedule: &DiffusionSchedule) -> Result<DiscreteSigmas> {
    let n = schedule.alpha_bar.iter().take_while(|&&a| a > 0.0).count();
    if n < 2 {
        return Err(invalid("schedule", "needs at least 2 timesteps with alpha_bar > 0"));
    }
    Ok(DiscreteSigmas::from_alpha_bar(&schedule.alpha_bar[..n])?)
}

/// Everything the samplers need from one model (see the module docs). Build it with
/// [`SampleModel::from_discrete`] (DDPM-trained networks, analytic denoisers) or
/// [`SampleModel::from_sigma`] (continuous-time models), or from a trained run with
/// `rediffuse_train::LoadedRun::sample_model`.
pub struct SampleModel<'a> {
    discrete: Box<dyn Denoiser + 'a>,
    schedule: DiffusionSchedule,
    sigma: Box<dyn SigmaDenoiser + 'a>,
    frame: Frame,
    levels: Option<Vec<f64>>,
    dtype: DType,
}

impl<'a> SampleModel<'a> {
    /// A discrete-time model (DDPM network or analytic denoiser) over `schedule`, in the schedule's
    /// own frame ([`Frame::for_schedule`]). Continuous samplers see it through `DiscreteModel`
    /// (fractional timesteps, σ interpolated in ln σ).
    pub fn from_discrete<D: Denoiser + Clone + 'a>(model: D, schedule: DiffusionSchedule) -> Result<Self> {
        let frame = Frame::for_schedule(&schedule)?;
        Self::from_discrete_in(model, schedule, frame)
    }

    /// A discrete-time model sampled in a given frame (e.g. an analytic denoiser built on a fine
    /// σ grid, sampled as a VP/VE/sub-VP SDE). The frame's σ range should lie inside the schedule's.
    pub fn from_discrete_in<D: Denoiser + Clone + 'a>(
        model: D,
        schedule: DiffusionSchedule,
        frame: Frame,
    ) -> Result<Self> {
        let sigmas = finite_discrete_sigmas(&schedule)?;
        let frame = frame.checked()?;
        let tol = 1e-6;
        if frame.sigma_min < sigmas.sigma_min() * (1.0 - tol)
            || frame.sigma_max > sigmas.sigma_max() * (1.0 + tol)
        {
            return Err(invalid(
                "frame",
                format!(
                    "σ range [{}, {}] exceeds the schedule's [{}, {}] (use `sigma_grid_schedule`)",
                    frame.sigma_min,
                    frame.sigma_max,
                    sigmas.sigma_min(),
                    sigmas.sigma_max()
                ),
            ));
        }
        let sigma = DiscreteModel { model: model.clone(), sigmas, quantize: false };
        Ok(Self {
            discrete: Box::new(model),
            schedule,
            sigma: Box::new(sigma),
            frame,
            levels: None,
            dtype: DType::F32,
        })
    }

    /// A σ-space model (`ContinuousModel`, `EdmPrecond`, `GaussianData`, …) in `frame`. DDPM/DDIM
    /// run on `DiscreteView` over the frame SDE's discrete schedule with `discrete_steps` steps
    /// ([`Sde::discrete_schedule`]).
    pub fn from_sigma<M: SigmaDenoiser + Clone + 'a>(
        model: M,
        frame: Frame,
        discrete_steps: usize,
    ) -> Result<Self> {
        let frame = frame.checked()?;
        let schedule = frame.sde.discrete_schedule(discrete_steps)?;
        Self::from_sigma_with_schedule(model, frame, schedule)
    }

    /// As [`SampleModel::from_sigma`] with an explicit discrete schedule for DDPM/DDIM.
    pub fn from_sigma_with_schedule<M: SigmaDenoiser + Clone + 'a>(
        model: M,
        frame: Frame,
        schedule: DiffusionSchedule,
    ) -> Result<Self> {
        let frame = frame.checked()?;
        let view = DiscreteView { model: model.clone(), sigmas: finite_discrete_sigmas(&schedule)? };
        Ok(Self {
            discrete: Box::new(view),
            schedule,
            sigma: Box::new(model),
            frame,
            levels: None,
            dtype: DType::F32,
        })
    }

    /// Attach the trained NCSN levels σ₁ > … > σ_L (used by Langevin with `levels: None`).
    pub fn with_levels(mut self, levels: Vec<f64>) -> Result<Self> {
        crate::continuous::error::check_sigmas(&levels)?;
        if levels.last().is_some_and(|&s| s <= 0.0) {
            return Err(invalid("levels", "all noise levels must be > 0"));
        }
        self.levels = Some(levels);
        Ok(self)
    }

    /// Compute dtype of [`nll_ode`] (default f32; f64 for analytic σ-space models such as
    /// `GaussianData`, which accept it).
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    pub fn discrete(&self) -> &dyn Denoiser {
        self.discrete.as_ref()
    }
    pub fn schedule(&self) -> &DiffusionSchedule {
        &self.schedule
    }
    pub fn sigma_model(&self) -> &dyn SigmaDenoiser {
        self.sigma.as_ref()
    }
    pub fn frame(&self) -> &Frame {
        &self.frame
    }
    pub fn levels(&self) -> Option<&[f64]> {
        self.levels.as_deref()
    }

    /// The Langevin noise levels for a spec's `levels` / `sigma_min` options: the trained NCSN levels
    /// when both are `None`, else `levels` (default 10) geometric levels from the frame's σ_max to
    /// `sigma_min` (default the frame's σ_min).
    pub fn langevin_levels(&self, levels: Option<usize>, sigma_min: Option<f64>) -> Result<Vec<f64>> {
        if let (None, None, Some(l)) = (levels, sigma_min, &self.levels) {
            return Ok(l.clone());
        }
        let f = &self.frame;
        let lo = sigma_min.unwrap_or(f.sigma_min);
        if !(lo.is_finite() && lo >= f.sigma_min * (1.0 - 1e-9) && lo < f.sigma_max) {
            return Err(invalid(
                "sigma_min",
                format!("must lie in the model's range [{}, {}), got {lo}", f.sigma_min, f.sigma_max),
            ));
        }
        Ok(geometric_sigmas(f.sigma_max, lo, levels.unwrap_or(10))?)
    }
}

/// Progress of a sampler, after each step.
pub struct Progress<'a> {
    /// 1-based number of steps done.
    pub step: usize,
    /// Total steps, where known in advance (not for adaptive RK45, which reports nothing).
    pub total: Option<usize>,
    /// Current state.
    pub x: &'a Tensor,
    /// The model's denoised estimate at this step, where the sampler has one.
    pub denoised: Option<&'a Tensor>,
}

/// Progress callback of [`sample`].
pub type OnStep<'a> = Option<&'a mut dyn FnMut(&Progress<'_>)>;

/// Run `spec` on `model` for `noise.len()` samples of shape `sample_shape` on `device`.
/// `init`: unit-variance z `[B, sample_shape…]` (B = `noise.len()`); `None` draws z from `noise`
/// first. x_T = `spec.prior_scale(model)`·z; the samplers' own noise comes from `noise` after that.
/// Returns the samples (f32) and the cost (NFE counts batched model calls).
pub fn sample(
    spec: &SamplerSpec,
    model: &SampleModel<'_>,
    init: Option<&Tensor>,
    sample_shape: &[usize],
    device: &Device,
    noise: &mut NoiseSource,
    mut on_step: OnStep<'_>,
) -> Result<(Tensor, SampleStats)> {
    if noise.is_empty() {
        return Err(DispatchError::Shape("the noise source serves no samples".into()));
    }
    let mut want = vec![noise.len()];
    want.extend_from_slice(sample_shape);
    let z = match init {
        Some(z) => {
            if z.dims() != want.as_slice() {
                return Err(DispatchError::Shape(format!(
                    "initial noise has shape {:?}, expected {want:?}",
                    z.dims()
                )));
            }
            z.to_dtype(DType::F32)?.to_device(device)?
        }
        None => noise.randn(sample_shape, device)?,
    };
    let x = z.affine(spec.prior_scale(model)?, 0.0)?;
    let f = &model.frame;
    let eps_of = |e: &Option<f64>| e.unwrap_or(f.eps);
    let sigma = &model.sigma;
    Ok(match spec {
        SamplerSpec::Ddpm(opts) => {
            let n = model.schedule.len();
            let mut cb = |s: &crate::step::StepInfo<'_>| {
                if let Some(c) = on_step.as_mut() {
                    c(&Progress { step: s.step + 1, total: Some(n), x: s.x_t, denoised: Some(s.x0_pred) });
                }
            };
            let out = ddpm_sample(model.discrete.as_ref(), &model.schedule, x, opts, noise, Some(&mut cb))?;
            (out, SampleStats { nfe: n, steps: n, rejected_steps: 0 })
        }
        SamplerSpec::Ddim(opts) => {
            let n = opts.steps;
            let mut cb = |s: &crate::step::StepInfo<'_>| {
                if let Some(c) = on_step.as_mut() {
                    c(&Progress { step: s.step + 1, total: Some(n), x: s.x_t, denoised: Some(s.x0_pred) });
                }
            };
            let out = ddim_sample(model.discrete.as_ref(), &model.schedule, x, opts, noise, Some(&mut cb))?;
            (out, SampleStats { nfe: n, steps: n, rejected_steps: 0 })
        }
        SamplerSpec::Langevin { levels, sigma_min, steps_per_level, step_eps, final_denoise } => {
            let sigmas = model.langevin_levels(*levels, *sigma_min)?;
            let total = sigmas.len() * steps_per_level;
            let cfg = AnnealedLangevin {
                sigmas,
                steps_per_level: *steps_per_level,
                eps: *step_eps,
                final_denoise: *final_denoise,
            };
            let mut cb = relay(&mut on_step, Some(total));
            annealed_langevin(sigma, &x, &cfg, noise, Some(cb.as_mut()))?
        }
        SamplerSpec::EulerMaruyama { steps, eps, denoise } => {
            let cfg = PcConfig {
                steps: *steps,
                eps: eps_of(eps),
                predictor: Predictor::EulerMaruyama,
                corrector: Corrector::None,
                denoise: *denoise,
            };
            let mut cb = relay(&mut on_step, Some(*steps));
            pc_sample(sigma, &f.sde, &x, &cfg, noise, Some(cb.as_mut()))?
        }
        SamplerSpec::Pc { steps, snr, corrector_steps, predictor, eps, denoise } => {
            let cfg = PcConfig {
                steps: *steps,
                eps: eps_of(eps),
                predictor: *predictor,
                corrector: Corrector::Langevin {
                    snr: *snr,
                    steps: *corrector_steps,
                    norms: SnrNorms::BatchMean,
                },
                denoise: *denoise,
            };
            let mut cb = relay(&mut on_step, Some(*steps));
            pc_sample(sigma, &f.sde, &x, &cfg, noise, Some(cb.as_mut()))?
        }
        SamplerSpec::OdeEuler { steps, eps, denoise } | SamplerSpec::OdeHeun { steps, eps, denoise } => {
            let method =
                if matches!(spec, SamplerSpec::OdeEuler { .. }) { OdeMethod::Euler } else { OdeMethod::Heun };
            let mut cb = relay(&mut on_step, Some(*steps));
            ode_fixed_step(sigma, &f.sde, &x, method, *steps, eps_of(eps), *denoise, Some(cb.as_mut()))?
        }
        SamplerSpec::OdeRk45 { rtol, atol, eps, denoise } => {
            let opts = Rk45Options { rtol: *rtol, atol: *atol, ..Rk45Options::default() };
            let (out, stats, _) = ode_rk45(sigma, &f.sde, &x, eps_of(eps), &opts, *denoise)?;
            (out, stats)
        }
        SamplerSpec::DpmSolver { steps, order } => {
            let sigmas = dpm_sigmas(f, *steps)?;
            let mut cb = relay(&mut on_step, Some(*steps));
            dpm_solver(sigma, &x, &sigmas, *order, Some(cb.as_mut()))?
        }
        SamplerSpec::DpmPp2m { steps } | SamplerSpec::DpmPp3m { steps } => {
            let order = if matches!(spec, SamplerSpec::DpmPp2m { .. }) { 2 } else { 3 };
            let sigmas = dpm_sigmas(f, *steps)?;
            let mut cb = relay(&mut on_step, Some(*steps));
            dpmpp_multistep(sigma, &x, &sigmas, order, Some(cb.as_mut()))?
        }
        SamplerSpec::EdmHeun { steps, rho } => {
            let sigmas = karras_sigmas(*steps, f.sigma_min, f.sigma_max, *rho)?;
            let mut cb = relay(&mut on_step, Some(*steps));
            edm_heun(sigma, &x, &sigmas, Some(cb.as_mut()))?
        }
        SamplerSpec::EdmStochastic { steps, rho, s_churn, s_tmin, s_tmax, s_noise } => {
            let sigmas = karras_sigmas(*steps, f.sigma_min, f.sigma_max, *rho)?;
            let churn = EdmChurn { s_churn: *s_churn, s_tmin: *s_tmin, s_tmax: *s_tmax, s_noise: *s_noise };
            let mut cb = relay(&mut on_step, Some(*steps));
            edm_stochastic(sigma, &x, &sigmas, &churn, noise, Some(cb.as_mut()))?
        }
    })
}

/// Forward a continuous sampler's step information to the caller's callback.
fn relay<'b, 'c: 'b>(
    on_step: &'b mut OnStep<'c>,
    total: Option<usize>,
) -> Box<dyn FnMut(&crate::continuous::StepInfo<'_>) + 'b> {
    Box::new(move |info| {
        if let Some(c) = on_step.as_mut() {
            c(&Progress { step: info.step, total, x: info.x, denoised: info.denoised });
        }
    })
}

/// σ_max = σ̃₀ > … > σ̃_{steps−1} = σ_min uniform in λ = −ln σ̃, then 0.
fn dpm_sigmas(frame: &Frame, steps: usize) -> Result<Vec<f64>> {
    if steps < 2 {
        return Err(invalid("steps", "DPM-Solver needs at least 2 steps (the last one denoises to σ = 0)"));
    }
    let mut s = lambda_uniform_sigmas(frame.sigma_max, frame.sigma_min, steps - 1)?;
    s.push(0.0);
    Ok(s)
}

/// Options of [`nll_ode`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NllOptions {
    pub divergence: Divergence,
    pub rk45: Rk45Options,
    /// Lower integration limit; `None` uses the model frame's ε.
    #[serde(default)]
    pub eps: Option<f64>,
    /// The points are 8-bit images in [−1, 1] (pixel k ↦ 2k/255 − 1): also report bits/dim with
    /// uniform dequantisation (see [`nll_ode`]).
    #[serde(default)]
    pub images: bool,
}

impl NllOptions {
    /// Exact divergence (low dimension) or Hutchinson with Rademacher probes; RK45 at 1e-5.
    pub fn new(divergence: Divergence) -> Self {
        Self { divergence, rk45: Rk45Options::default(), eps: None, images: false }
    }
}

/// Result of [`nll_ode`].
#[derive(Debug, Clone, PartialEq)]
pub struct NllReport {
    /// −log p_ε(x) per sample, in nats, of the given points (no dequantisation).
    pub nll_nats_per_sample: Vec<f64>,
    /// Mean of `nll_nats_per_sample`.
    pub nll_nats: f64,
    /// Per-sample bits/dim of the dequantised images (`images` only).
    pub bits_per_dim_per_sample: Option<Vec<f64>>,
    /// Mean bits/dim (`images` only).
    pub bits_per_dim: Option<f64>,
    /// ∫_ε^1 ∇·F dt per sample (the change-of-variables term; NLL = −(prior + this)).
    pub delta_log_prob: Vec<f64>,
    /// The ODE latents x(1), row-major, one row per sample.
    pub latents: Vec<f64>,
    /// Batched model evaluations (both solves for images).
    pub nfe: usize,
}

/// Probability-flow ODE negative log-likelihood (Song et al. 2021b, §4.3, Appendix D.2) of each
/// point of `x` (`[B, …]`, model space) under `model` in its frame's SDE, with `opts.divergence`
/// (Hutchinson probes drawn from `noise`, B streams).
///
/// With `images`, the points are also mapped back to pixels k = round((x + 1)·255/2) ∈ 0..=255,
/// dequantised as y = 2(k + U)/256 − 1 with U ~ U[0, 1) from `noise`, and bits/dim =
/// NLL(y)/(d·ln 2) + 7 (`bits_per_dim` with scale 2).
pub fn nll_ode(
    model: &SampleModel<'_>,
    x: &Tensor,
    opts: &NllOptions,
    noise: &mut NoiseSource,
) -> Result<NllReport> {
    if x.rank() < 2 || x.dim(0)? != noise.len() || x.dim(0)? == 0 {
        return Err(DispatchError::Shape(format!(
            "x must be [B, …] with B = noise streams ({}), got {:?}",
            noise.len(),
            x.dims()
        )));
    }
    let lopts = LikelihoodOptions {
        eps: opts.eps.unwrap_or(model.frame.eps),
        rk45: opts.rk45,
        divergence: opts.divergence,
    };
    let sde = model.frame.sde;
    let xs = x.to_dtype(model.dtype)?;
    let out = ode_log_likelihood(&model.sigma, &sde, &xs, &lopts, noise)?;
    let nll: Vec<f64> = out.log_likelihood.iter().map(|l| -l).collect();
    let mut nfe = out.stats.nfe;
    let (bpd_all, bpd) = if opts.images {
        let b = x.dim(0)?;
        let d = x.elem_count() / b;
        let v: Vec<f64> = x.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
        let mut y = Vec::with_capacity(v.len());
        for r in 0..b {
            for j in 0..d {
                let k = ((v[r * d + j] + 1.0) * 127.5).round().clamp(0.0, 255.0);
                let u: f64 = noise.rng(r).random();
                y.push(2.0 * (k + u) / 256.0 - 1.0);
            }
        }
        let yt = Tensor::from_vec(y, x.shape(), x.device())?.to_dtype(model.dtype)?;
        let o = ode_log_likelihood(&model.sigma, &sde, &yt, &lopts, noise)?;
        nfe += o.stats.nfe;
        let per: Vec<f64> =
            o.log_likelihood.iter().map(|l| crate::continuous::bits_per_dim(-l, d, 2.0)).collect();
        let mean = per.iter().sum::<f64>() / per.len() as f64;
        (Some(per), Some(mean))
    } else {
        (None, None)
    };
    let mean = nll.iter().sum::<f64>() / nll.len() as f64;
    Ok(NllReport {
        nll_nats_per_sample: nll,
        nll_nats: mean,
        bits_per_dim_per_sample: bpd_all,
        bits_per_dim: bpd,
        delta_log_prob: out.delta_log_prob,
        latents: out.latents,
        nfe,
    })
}
