//! [`SampleModel`]: the discrete, σ-space and continuous-frame views of one model.

use super::{invalid, Result};
use crate::continuous::{DiscreteModel, DiscreteView, SigmaDenoiser};
use candle_core::DType;
use rediffuse_core::sde::{geometric_sigmas, DiscreteSigmas, Sde};
use rediffuse_core::{Denoiser, DiffusionSchedule};
use serde::{Deserialize, Serialize};

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
    pub(super) discrete: Box<dyn Denoiser + 'a>,
    pub(super) schedule: DiffusionSchedule,
    pub(super) sigma: Box<dyn SigmaDenoiser + 'a>,
    pub(super) frame: Frame,
    pub(super) levels: Option<Vec<f64>>,
    pub(super) dtype: DType,
    /// The learned-variance model over `schedule` (full `[B, 2C, …]` output), if any.
    pub(super) learned: Option<Box<dyn Denoiser + 'a>>,
    /// Clamp of the σ-space samplers' denoised estimates ([`SampleModel::with_clip_denoised`]).
    pub(super) clip_denoised: Option<f64>,
    /// σ grid of the σ-space samplers whose spec leaves it open ([`SampleModel::with_sigma_schedule`]).
    pub(super) sigma_schedule: Option<super::SigmaSchedule>,
    /// Where those grids end.
    pub(super) final_sigma: super::FinalSigma,
    /// Built from a discrete-time model (the network or analytic denoiser sees training timesteps).
    pub(super) discrete_native: bool,
    /// The model family's own default σ grid (flow runs: uniform in flow time), used when
    /// `sigma_schedule` is unset ([`SampleModel::with_native_sigma_schedule`]).
    pub(super) native_schedule: Option<super::SigmaSchedule>,
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
            learned: None,
            clip_denoised: None,
            sigma_schedule: None,
            final_sigma: super::FinalSigma::Zero,
            discrete_native: true,
            native_schedule: None,
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
            learned: None,
            clip_denoised: None,
            sigma_schedule: None,
            final_sigma: super::FinalSigma::Zero,
            discrete_native: false,
            native_schedule: None,
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

    /// Attach a learned-variance model over this model's discrete schedule: `full.forward` returns
    /// `[B, 2C, …]` (mean half of kind `full.prediction()`, then iDDPM's v), as
    /// [`rediffuse_core::vlb::VarianceMode::LearnedRange`] expects. Used by
    /// [`super::SamplerSpec::DdpmLearned`]; build the other views on
    /// `rediffuse_core::vlb::LearnedVarianceDenoiser` of the same network.
    pub fn with_learned_variance<D: Denoiser + 'a>(mut self, full: D) -> Self {
        self.learned = Some(Box::new(full));
        self
    }

    /// Clamp the denoised estimate D(x; σ) to [−limit, limit] in every σ-space sampler
    /// ([`crate::continuous::ClampDenoised`]; DDPM, DDIM and `DdpmLearned` clip x̂₀ through their own
    /// `clip_x0` option). `None` (the default) leaves D as it is. Likelihoods ignore it.
    pub fn with_clip_denoised(mut self, limit: Option<f64>) -> Result<Self> {
        if let Some(l) = limit {
            if !(l.is_finite() && l > 0.0) {
                return Err(invalid("clip_denoised", format!("must be a finite number > 0, got {l}")));
            }
        }
        self.clip_denoised = limit;
        Ok(self)
    }

    /// The σ grid of every σ-space sampler whose spec does not name one (`None`: the family default,
    /// [`SampleModel::default_sigma_schedule`]). `FlowTime` on a flow model (native grid
    /// `FlowTime`) takes the model's own σ_min.
    pub fn with_sigma_schedule(mut self, schedule: Option<super::SigmaSchedule>) -> Result<Self> {
        if let Some(super::SigmaSchedule::Karras { rho }) = schedule {
            if !(rho.is_finite() && rho > 0.0) {
                return Err(invalid("rho", format!("must be a finite number > 0, got {rho}")));
            }
        }
        // a flow-time grid is defined by the flow's σ_min: a flow model's own replaces the given one
        let schedule = match (schedule, self.native_schedule) {
            (
                Some(super::SigmaSchedule::FlowTime { .. }),
                Some(native @ super::SigmaSchedule::FlowTime { .. }),
            ) => Some(native),
            (s, _) => s,
        };
        self.sigma_schedule = schedule;
        Ok(self)
    }

    /// Where the σ-space samplers' grids end ([`super::FinalSigma`]; default σ = 0).
    /// The σ grid samplers use by default for this model family (overridden by
    /// [`SampleModel::with_sigma_schedule`]).
    pub fn with_native_sigma_schedule(mut self, schedule: super::SigmaSchedule) -> Self {
        self.native_schedule = Some(schedule);
        self
    }

    pub fn with_final_sigma(mut self, final_sigma: super::FinalSigma) -> Self {
        self.final_sigma = final_sigma;
        self
    }

    /// Whether the model is a discrete-time one (DDPM-trained network or analytic denoiser).
    pub fn is_discrete_native(&self) -> bool {
        self.discrete_native
    }

    /// The learned-variance model, if one is attached.
    pub fn learned_variance(&self) -> Option<&dyn Denoiser> {
        self.learned.as_deref()
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
