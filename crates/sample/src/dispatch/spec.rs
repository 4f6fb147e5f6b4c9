//! The sampler specifications and the prior scale of each sampler family.

use super::{GridFamily, Result, SampleModel};
use crate::continuous::{DpmAlgorithm, Predictor, UniPcOptions};
use crate::ddim::DdimOptions;
use crate::ddpm::DdpmOptions;
use rediffuse_core::sde::{karras_sigmas, Sde};
use serde::{Deserialize, Serialize};

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
    /// Ancestral sampling with iDDPM's learned variances Σ_θ (Nichol & Dhariwal 2021, §3.1; seed 002
    /// "iDDPM") via [`crate::learned_variance_sample`]: over all T steps, or with `steps: Some(K)`
    /// on the schedule respaced onto K evenly spaced training indices (iDDPM §4,
    /// [`crate::space_timesteps`] with one section). Needs a learned-variance model
    /// ([`SampleModel::with_learned_variance`], e.g. a run trained with `iddpm`).
    DdpmLearned {
        #[serde(default)]
        steps: Option<usize>,
        /// Clamp x̂₀ to [−c, c] before forming μ_θ.
        #[serde(default)]
        clip_x0: Option<f32>,
    },
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
    /// Single-step DPM-Solver of `order` 1–3 (Lu et al. 2022a, noise-prediction form) with `steps`
    /// model evaluations on the model's σ grid ([`SampleModel::default_sigma_schedule`]), orders
    /// and intermediate points as diffusers' `DPMSolverSinglestepScheduler(algorithm_type =
    /// "dpmsolver")` ([`crate::continuous::dpm_solver_singlestep`]); the last step denoises to σ = 0.
    DpmSolver {
        steps: usize,
        order: usize,
        /// Noise form (DPM-Solver, the default) or data form (DPM-Solver++ single-step).
        #[serde(default)]
        algorithm: DpmAlgorithm,
    },
    /// Multistep DPM-Solver++(2M) (Lu et al. 2022b) on the model's σ grid (NFE = `steps`).
    #[serde(rename = "dpmpp-2m")]
    DpmPp2m { steps: usize },
    /// Multistep DPM-Solver++(3M).
    #[serde(rename = "dpmpp-3m")]
    DpmPp3m { steps: usize },
    /// Multistep UniPC (Zhao et al. 2023) in data-prediction form on the model's σ grid
    /// (NFE = `steps`).
    #[serde(rename = "unipc")]
    UniPc {
        steps: usize,
        #[serde(default)]
        options: UniPcOptions,
    },
    /// Euler steps of the probability-flow ODE in σ (k-diffusion `sample_euler`, diffusers
    /// `EulerDiscreteScheduler`) on the model's σ grid of `steps` levels (NFE = `steps`).
    Euler { steps: usize },
    /// Heun steps (Karras et al. 2022, Algorithm 1) on the model's σ grid of `steps` levels, the last
    /// one Euler (diffusers `HeunDiscreteScheduler`; NFE = 2·`steps` − 1).
    Heun { steps: usize },
    /// Multistep consistency sampling (Song et al. 2023, Algorithm 1) at `steps` levels of the nested
    /// Karras grid over the frame (σ_max first; one step is one-step generation; NFE = `steps`).
    Consistency { steps: usize },
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
    /// Short name (`ddpm`, `ddim`, `ddpm-learned`, `langevin`, `euler-maruyama`, `pc`, `ode-euler`, `ode-heun`,
    /// `ode-rk45`, `dpm-solver`, `dpmpp-2m`, `dpmpp-3m`, `unipc`, `euler`, `heun`, `edm-heun`,
    /// `edm-stochastic`).
    pub fn name(&self) -> &'static str {
        match self {
            SamplerSpec::Ddpm(_) => "ddpm",
            SamplerSpec::Ddim(_) => "ddim",
            SamplerSpec::DdpmLearned { .. } => "ddpm-learned",
            SamplerSpec::Langevin { .. } => "langevin",
            SamplerSpec::EulerMaruyama { .. } => "euler-maruyama",
            SamplerSpec::Pc { .. } => "pc",
            SamplerSpec::OdeEuler { .. } => "ode-euler",
            SamplerSpec::OdeHeun { .. } => "ode-heun",
            SamplerSpec::OdeRk45 { .. } => "ode-rk45",
            SamplerSpec::DpmSolver { .. } => "dpm-solver",
            SamplerSpec::DpmPp2m { .. } => "dpmpp-2m",
            SamplerSpec::DpmPp3m { .. } => "dpmpp-3m",
            SamplerSpec::UniPc { .. } => "unipc",
            SamplerSpec::Euler { .. } => "euler",
            SamplerSpec::Heun { .. } => "heun",
            SamplerSpec::EdmHeun { .. } => "edm-heun",
            SamplerSpec::Consistency { .. } => "consistency",
            SamplerSpec::EdmStochastic { .. } => "edm-stochastic",
        }
    }

    /// The σ grid of a σ-space sampler on `model` (`steps + 1` values ending at 0), `None` for the
    /// other samplers.
    pub fn sigma_grid(&self, model: &SampleModel<'_>) -> Result<Option<Vec<f64>>> {
        let grid = |family: GridFamily, steps: usize| {
            model.sigma_grid(model.default_sigma_schedule(family), family, steps).map(Some)
        };
        match self {
            SamplerSpec::DpmSolver { steps, .. }
            | SamplerSpec::DpmPp2m { steps }
            | SamplerSpec::DpmPp3m { steps }
            | SamplerSpec::UniPc { steps, .. } => grid(GridFamily::Dpm, *steps),
            SamplerSpec::Euler { steps } | SamplerSpec::Heun { steps } => grid(GridFamily::Euler, *steps),
            SamplerSpec::Consistency { steps } => {
                let f = &model.frame;
                Ok(Some(rediffuse_core::sde::nested_karras_sigmas(*steps, f.sigma_min, f.sigma_max, 7.0)?))
            }
            SamplerSpec::EdmHeun { steps, rho } | SamplerSpec::EdmStochastic { steps, rho, .. } => {
                let f = &model.frame;
                Ok(Some(karras_sigmas(*steps, f.sigma_min, f.sigma_max, *rho)?))
            }
            _ => Ok(None),
        }
    }

    /// Scale c of the prior draw x_T = c·z for this sampler on `model` (see the module docs).
    pub fn prior_scale(&self, model: &SampleModel<'_>) -> Result<f64> {
        self.prior_scale_on(model, self.sigma_grid(model)?.as_deref())
    }

    /// [`SamplerSpec::prior_scale`] given this spec's σ grid on `model` (`sigma_grid`'s result).
    pub(super) fn prior_scale_on(&self, model: &SampleModel<'_>, grid: Option<&[f64]>) -> Result<f64> {
        if let Some(grid) = grid {
            let s0 = grid[0];
            let dpm_family = matches!(
                self,
                SamplerSpec::DpmSolver { .. }
                    | SamplerSpec::DpmPp2m { .. }
                    | SamplerSpec::DpmPp3m { .. }
                    | SamplerSpec::UniPc { .. }
            );
            // the VP prior x_T ~ N(0, I) seen in σ-space, as diffusers' DPM-Solver/UniPC start
            return Ok(if dpm_family && matches!(model.frame.sde, Sde::Vp { .. }) {
                (1.0 + s0 * s0).sqrt()
            } else {
                s0
            });
        }
        Ok(match self {
            SamplerSpec::Ddpm(_) | SamplerSpec::Ddim(_) | SamplerSpec::DdpmLearned { .. } => 1.0,
            SamplerSpec::EulerMaruyama { .. }
            | SamplerSpec::Pc { .. }
            | SamplerSpec::OdeEuler { .. }
            | SamplerSpec::OdeHeun { .. }
            | SamplerSpec::OdeRk45 { .. } => model.frame.sde.prior_std(),
            SamplerSpec::Langevin { levels, sigma_min, .. } => model.langevin_levels(*levels, *sigma_min)?[0],
            SamplerSpec::DpmSolver { .. }
            | SamplerSpec::DpmPp2m { .. }
            | SamplerSpec::DpmPp3m { .. }
            | SamplerSpec::UniPc { .. }
            | SamplerSpec::Euler { .. }
            | SamplerSpec::Heun { .. }
            | SamplerSpec::EdmHeun { .. }
            | SamplerSpec::Consistency { .. }
            | SamplerSpec::EdmStochastic { .. } => model.frame.sigma_max, // (handled by the grid above)
        })
    }
}
