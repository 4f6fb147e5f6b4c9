//! The configuration of a training run (`config.toml` of a run folder).

use crate::error::{Result, TrainError};
use crate::iddpm::IddpmConfig;
use crate::periodic::PeriodicEvalConfig;
use rediffuse_core::schedule::rescale_zero_terminal_snr;
use rediffuse_core::sde::{EdmConfig, Sde};
use rediffuse_core::vlb::VarianceMode;
use rediffuse_core::{BetaSchedule, DiffusionSchedule, Prediction};
use rediffuse_nn::{ModelConfig, NnError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The diffusion method a network is trained for. Serialised with a `kind` tag
/// (`ddpm`, `iddpm`, `ncsn`, `score-sde`, `edm`).
///
/// What the network receives as its time input (model time) is fixed per method:
/// * `ddpm`, `iddpm`: the timestep index i ∈ {0, …, T−1} (paper's t = i + 1);
/// * `ncsn`: the fractional level index counted from the smallest noise level,
///   τ(σ) = (L − 1)·ln(σ/σ_L)/ln(σ₁/σ_L) ∈ [0, L − 1], so σ_L ↦ 0 and σ₁ ↦ L − 1 (the paper's
///   level i has τ = L − i); see [`crate::objective::ncsn_model_time`];
/// * `score-sde`: 999·t for t ∈ [ε, 1] (Song et al.'s DDPM++ convention, so the sinusoidal
///   embedding sees the same range as a T = 1000 DDPM network); see [`crate::objective::SDE_TIME_SCALE`];
/// * `edm`: c_noise(σ) = ¼·ln σ (Karras et al. 2022, Table 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Method {
    /// Discrete-time DDPM (Ho et al. 2020) trained with L_simple (Eq. 14) on the target of `prediction`.
    Ddpm {
        schedule: BetaSchedule,
        timesteps: usize,
        prediction: Prediction,
        /// Rescale the betas to zero terminal SNR (ᾱ_T = 0).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        zero_terminal_snr: bool,
    },
    /// Improved DDPM (Nichol & Dhariwal 2021; seed 002 "iDDPM"): a discrete DDPM whose network also
    /// outputs the variance interpolation v (`learn_sigma` models, 2C output channels), trained with
    /// L_hybrid = L_simple + λ·L_vlb or L_vlb (`iddpm.objective`), optionally with importance-sampled
    /// timesteps. Reverse variance Σ_θ = exp(v' log β_t + (1 − v') log β̃_t), v' = (v + 1)/2
    /// ([`VarianceMode::LearnedRange`]).
    Iddpm {
        schedule: BetaSchedule,
        timesteps: usize,
        prediction: Prediction,
        #[serde(default)]
        iddpm: IddpmConfig,
    },
    /// NCSN (Song & Ermon 2019): `levels` geometric noise levels σ₁ = `sigma_max` > … > σ_L =
    /// `sigma_min`, multi-σ denoising score matching with λ(σ) = σ², written in ε form
    /// (the network predicts z of x̃ = x + σ·z; its score is −ε/σ).
    Ncsn { sigma_max: f64, sigma_min: f64, levels: usize },
    /// Continuous-time score SDE (Song et al. 2021): VE, VP or sub-VP, DSM with λ(t) = s(t)² and
    /// t ~ U[`eps`, 1]; the network predicts the score or ε (= −s(t)·score).
    ScoreSde { sde: Sde, prediction: Prediction, eps: f64 },
    /// EDM (Karras et al. 2022): log-normal σ, preconditioning c_in/c_out/c_skip/c_noise, λ(σ) weight.
    Edm(EdmConfig),
    /// Flow matching with the linear interpolant (Lipman et al. 2023; rectified flow, Liu et al.
    /// 2023): x_t = t·x₁ + (1 − (1 − σ_min)t)·x₀, t ~ U[0, 1], the network (time input 999·t)
    /// regresses the velocity x₁ − (1 − σ_min)x₀ (`rediffuse_core::flow`).
    Flow(FlowConfig),
    /// Consistency models (Song et al. 2023): consistency distillation from a teacher run, or
    /// consistency training without one (`crate::consistency`).
    Consistency(crate::consistency::ConsistencyConfig),
    /// Cold diffusion (Bansal et al. 2022): a restoration network R(D(x₀, t), t) ≈ x₀ for a
    /// deterministic degradation D at levels t = 1…T, L1 loss, optional added noise.
    Cold(ColdConfig),
}

/// `[method]` of `kind = "cold"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColdConfig {
    pub degradation: rediffuse_core::degradation::Degradation,
    /// Number of degradation levels T (default 50).
    #[serde(default = "default_cold_levels")]
    pub levels: usize,
    /// Standard deviation of Gaussian noise added to D(x₀, t) in training (default 0).
    #[serde(default)]
    pub noise: f64,
}

fn default_cold_levels() -> usize {
    50
}

impl ColdConfig {
    pub fn new(degradation: rediffuse_core::degradation::Degradation) -> Self {
        Self { degradation, levels: default_cold_levels(), noise: 0.0 }
    }
}

/// How flow matching pairs noise with data in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Coupling {
    /// Independent noise for every example.
    #[default]
    Independent,
    /// Minibatch optimal transport: the batch's noise re-assigned to its examples by the exact
    /// minimum total squared distance (Tong et al. 2023, Pooladian et al. 2023).
    MinibatchOt,
}

/// `[method]` of `kind = "flow"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Noise left at t = 1 (σ_min of Lipman et al.; 0 is rectified flow), in [0, 1).
    #[serde(default)]
    pub sigma_min: f64,
    #[serde(default)]
    pub coupling: Coupling,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self { sigma_min: 0.0, coupling: Coupling::Independent }
    }
}

impl FlowConfig {
    /// The σ-space range of flow times [t_eps, 1 − t_eps]: σ̃(1 − t_eps) and σ̃(t_eps).
    pub fn sigma_range(&self) -> (f64, f64) {
        use rediffuse_core::flow::sigma_of_time;
        let e = rediffuse_sample::continuous::FLOW_T_EPS;
        (sigma_of_time(1.0 - e, self.sigma_min), sigma_of_time(e, self.sigma_min))
    }
}

impl Method {
    /// DDPM with the paper's linear schedule, T = 1000, ε-prediction.
    pub fn ddpm_default() -> Self {
        Method::Ddpm {
            schedule: BetaSchedule::linear(),
            timesteps: 1000,
            prediction: Prediction::Epsilon,
            zero_terminal_snr: false,
        }
    }

    /// iDDPM with the paper's cosine schedule, T = 1000, ε-prediction and the hybrid loss
    /// (λ = 10⁻³, uniform timesteps; see [`IddpmConfig::default`]).
    pub fn iddpm_default() -> Self {
        Method::Iddpm {
            schedule: BetaSchedule::cosine(),
            timesteps: 1000,
            prediction: Prediction::Epsilon,
            iddpm: IddpmConfig::default(),
        }
    }

    /// NCSN with σ₁ = 10, σ_L = 0.01, L = 64 levels (σ₁ about the largest pairwise distance of
    /// unit-scale data, as NCSNv2 recommends; σ_L well below the data's fine structure).
    pub fn ncsn_default() -> Self {
        Method::Ncsn { sigma_max: 10.0, sigma_min: 0.01, levels: 64 }
    }

    /// A score SDE with ε-prediction and the SDE's default ε (1e-5 VE, 1e-3 VP/sub-VP).
    pub fn score_sde(sde: Sde) -> Self {
        Method::ScoreSde { sde, prediction: Prediction::Epsilon, eps: sde.default_eps() }
    }

    /// EDM with the defaults of Karras et al. (2022), Table 1.
    pub fn edm_default() -> Self {
        Method::Edm(EdmConfig::default())
    }

    /// The command-line names of the methods [`Method::preset`] knows.
    pub const PRESET_NAMES: [&'static str; 10] =
        ["ddpm", "iddpm", "ncsn", "vp-sde", "ve-sde", "subvp-sde", "edm", "flow", "consistency", "cold"];

    /// The default method of a command-line name: `ddpm`, `iddpm`, `ncsn`, `vp-sde`, `ve-sde`, `subvp-sde`, `edm`
    /// (score SDEs with the standard β ∈ [0.1, 20] or σ ∈ [0.01, 50]).
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "ddpm" => Self::ddpm_default(),
            "iddpm" => Self::iddpm_default(),
            "ncsn" => Self::ncsn_default(),
            "vp-sde" => Self::score_sde(Sde::vp()),
            "ve-sde" => Self::score_sde(Sde::ve()),
            "subvp-sde" => Self::score_sde(Sde::sub_vp()),
            "edm" => Self::edm_default(),
            "flow" => Method::Flow(FlowConfig::default()),
            "consistency" => Method::Consistency(crate::consistency::ConsistencyConfig::default()),
            "cold" => {
                Method::Cold(ColdConfig::new(rediffuse_core::degradation::Degradation::Blur { size: 2.0 }))
            }
            _ => return None,
        })
    }

    /// Short name (`ddpm`, `iddpm`, `ncsn`, `vp-sde`, `ve-sde`, `subvp-sde`, `edm`).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Ddpm { .. } => "ddpm",
            Method::Iddpm { .. } => "iddpm",
            Method::Ncsn { .. } => "ncsn",
            Method::ScoreSde { sde: Sde::Vp { .. }, .. } => "vp-sde",
            Method::ScoreSde { sde: Sde::Ve { .. }, .. } => "ve-sde",
            Method::ScoreSde { sde: Sde::SubVp { .. }, .. } => "subvp-sde",
            Method::Edm(_) => "edm",
            Method::Flow(_) => "flow",
            Method::Consistency(_) => "consistency",
            Method::Cold(_) => "cold",
        }
    }

    /// The discrete (DDPM-index) schedule that DDPM/DDIM samplers run on.
    /// DDPM, iDDPM: its own schedule. Score SDE: [`Sde::discrete_schedule`] with 1000 steps (σ-space of the
    /// SDE at t_i = (i + 1)/1000). NCSN and EDM: the same for the VE SDE spanning their σ range.
    /// Non-DDPM networks reach these samplers through `DiscreteView` (see `LoadedRun::discrete_denoiser`).
    pub fn schedule(&self) -> Result<DiffusionSchedule> {
        match self {
            Method::Ddpm { schedule, timesteps, zero_terminal_snr, .. } => {
                let betas = schedule.betas(*timesteps)?;
                let betas = if *zero_terminal_snr { rescale_zero_terminal_snr(&betas) } else { betas };
                Ok(DiffusionSchedule::from_betas(betas)?)
            }
            Method::Iddpm { schedule, timesteps, .. } => Ok(DiffusionSchedule::new(*schedule, *timesteps)?),
            // cold diffusion has no noise schedule; its runs refuse the Gaussian samplers
            // (`LoadedRun::sample_model`), this placeholder is never sampled from
            Method::Cold(_) => Ok(DiffusionSchedule::new(BetaSchedule::linear(), DISCRETE_VIEW_STEPS)?),
            _ => Ok(self.continuous_sde()?.discrete_schedule(DISCRETE_VIEW_STEPS)?),
        }
    }

    /// The SDE whose σ-space a continuous method lives in: the trained SDE, or VE over
    /// [σ_min, σ_max] for NCSN and EDM. DDPM and iDDPM have none (error).
    pub fn continuous_sde(&self) -> Result<Sde> {
        let sde = match self {
            Method::Ddpm { .. } | Method::Iddpm { .. } | Method::Cold(_) => {
                return Err(TrainError::invalid(
                    "method",
                    format!("{} is a discrete-time method (no SDE)", self.name()),
                ))
            }
            Method::Ncsn { sigma_max, sigma_min, .. } => {
                Sde::Ve { sigma_min: *sigma_min, sigma_max: *sigma_max }
            }
            Method::ScoreSde { sde, .. } => *sde,
            Method::Edm(c) => Sde::Ve { sigma_min: c.sigma_min, sigma_max: c.sigma_max },
            Method::Flow(c) => {
                let (sigma_min, sigma_max) = c.sigma_range();
                Sde::Ve { sigma_min, sigma_max }
            }
            Method::Consistency(c) => Sde::Ve { sigma_min: c.sigma_min, sigma_max: c.sigma_max },
        };
        sde.validate()?;
        Ok(sde)
    }

    /// What the raw network outputs: DDPM, iDDPM (its mean half) and score SDE as configured, NCSN ε. EDM's raw network
    /// F is preconditioned (its output is no standard parameterisation; `EdmPrecond` turns it into
    /// x̂₀), so `Sample` is reported for it.
    pub fn prediction(&self) -> Prediction {
        match self {
            Method::Ddpm { prediction, .. }
            | Method::Iddpm { prediction, .. }
            | Method::ScoreSde { prediction, .. } => *prediction,
            Method::Ncsn { .. } => Prediction::Epsilon,
            // EDM's F and a flow's velocity are no standard parameterisation (`EdmPrecond`,
            // `FlowModel` turn them into x̂₀)
            Method::Edm(_) | Method::Flow(_) | Method::Consistency(_) | Method::Cold(_) => Prediction::Sample,
        }
    }

    /// The reverse variance Σ_θ of the trained model: [`VarianceMode::LearnedRange`] for iDDPM
    /// (network output `[B, 2C, …]`), otherwise the fixed σ_t² = β_t of DDPM sampling
    /// ([`VarianceMode::Beta`]; the network outputs `[B, C, …]`).
    pub fn variance_mode(&self) -> VarianceMode {
        match self {
            Method::Iddpm { .. } => VarianceMode::LearnedRange,
            _ => VarianceMode::Beta,
        }
    }

    /// Check every value; errors name the field (prefix `method.`).
    pub fn validate(&self) -> Result<()> {
        match self {
            Method::Ddpm { schedule, timesteps, .. } => {
                if *timesteps == 0 {
                    return Err(TrainError::invalid("method.timesteps", "must be >= 1"));
                }
                at_most("method.timesteps", *timesteps, MAX_STEPS)?;
                DiffusionSchedule::new(*schedule, *timesteps).map_err(|e| nested("method.schedule", e))?;
                Ok(())
            }
            Method::Iddpm { schedule, timesteps, iddpm, .. } => {
                if *timesteps == 0 {
                    return Err(TrainError::invalid("method.timesteps", "must be >= 1"));
                }
                at_most("method.timesteps", *timesteps, MAX_STEPS)?;
                DiffusionSchedule::new(*schedule, *timesteps).map_err(|e| nested("method.schedule", e))?;
                iddpm.validate().map_err(|e| match e {
                    TrainError::InvalidConfig { field, reason } => {
                        TrainError::invalid(format!("method.{field}"), reason)
                    }
                    other => other,
                })
            }
            Method::Ncsn { sigma_max, sigma_min, levels } => {
                positive("method.sigma_max", *sigma_max)?;
                positive("method.sigma_min", *sigma_min)?;
                if sigma_min >= sigma_max {
                    return Err(TrainError::invalid("method.sigma_min", "must be smaller than sigma_max"));
                }
                if *levels < 2 {
                    return Err(TrainError::invalid("method.levels", "need at least 2 noise levels"));
                }
                at_most("method.levels", *levels, MAX_STEPS)?;
                Ok(())
            }
            Method::ScoreSde { sde, prediction, eps } => {
                sde.validate().map_err(|e| nested("method.sde", e))?;
                if !matches!(prediction, Prediction::Epsilon | Prediction::Score) {
                    return Err(TrainError::invalid(
                        "method.prediction",
                        format!("score SDEs train `epsilon` or `score`, got `{}`", prediction.name()),
                    ));
                }
                if !(eps.is_finite() && *eps > 0.0 && *eps < 1.0) {
                    return Err(TrainError::invalid("method.eps", format!("must lie in (0, 1), got {eps}")));
                }
                Ok(())
            }
            Method::Edm(c) => c.validate().map_err(|e| nested("method", e)),
            Method::Flow(c) => {
                rediffuse_core::flow::check_sigma_min(c.sigma_min).map_err(|e| nested("method", e))
            }
            Method::Consistency(c) => c.validate(),
            Method::Cold(c) => {
                c.degradation.validate().map_err(|e| nested("method.degradation", e))?;
                if c.levels == 0 {
                    return Err(TrainError::invalid("method.levels", "need at least 1 degradation level"));
                }
                at_most("method.levels", c.levels, MAX_STEPS)?;
                if !(c.noise.is_finite() && c.noise >= 0.0) {
                    return Err(TrainError::invalid(
                        "method.noise",
                        format!("must be >= 0, got {}", c.noise),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Number of steps of the discrete schedule a continuous method is seen through by DDPM/DDIM.
pub const DISCRETE_VIEW_STEPS: usize = 1000;

/// Largest number of timesteps / noise levels / degradation levels a config may ask for. Their
/// schedules are allocated when a config is validated or loaded, so a corrupt `timesteps =
/// 4294967295` would otherwise try to allocate tens of GB (found by `tests/fuzz_readers.rs`).
pub const MAX_STEPS: usize = 1 << 20;

/// Largest number of parameters of an MLP a config may describe (2^28: 1 GiB of f32 weights per
/// copy; the trainer holds four), and the largest of any one of its sizes.
pub const MAX_MLP_PARAMS: usize = 1 << 28;

/// Largest size of one dimension-like model field (`hidden`, `data_dim`, channels, image size,
/// embedding widths, class count).
pub const MAX_MODEL_DIM: usize = 1 << 24;

fn at_most(field: &str, v: usize, max: usize) -> Result<()> {
    if v > max {
        return Err(TrainError::invalid(field, format!("{v} is larger than the supported maximum {max}")));
    }
    Ok(())
}

/// Sizes of the model that the network builder allocates from (before any weight is read) must
/// be sane: every dimension at most [`MAX_MODEL_DIM`], an MLP's sample shape without overflow and
/// its parameter count at most [`MAX_MLP_PARAMS`] (computed without overflow).
fn check_model_sizes(model: &ModelConfig) -> Result<()> {
    match model {
        ModelConfig::Mlp(c) => {
            for (field, v) in [
                ("model.data_dim", c.data_dim),
                ("model.hidden", c.hidden),
                ("model.layers", c.layers),
                ("model.time_embed_dim", c.time_embed_dim),
                ("model.num_classes", c.num_classes.unwrap_or(0)),
            ] {
                at_most(field, v, MAX_MODEL_DIM)?;
            }
            if let Some(shape) = &c.sample_shape {
                if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none() {
                    return Err(TrainError::invalid(
                        "model.sample_shape",
                        format!("the product of {shape:?} overflows"),
                    ));
                }
            }
            // `MlpConfig::param_count`, in checked arithmetic
            let (d, h, l, e) = (c.data_dim, c.hidden, c.layers, c.time_embed_dim);
            let o = if c.learn_sigma { 2 * d } else { d };
            let k = c.num_classes.map_or(0, |k| k + 1);
            let count = (|| {
                let hh = h.checked_mul(h)?;
                let mut n = e.checked_mul(h)?.checked_add(h)?.checked_add(hh)?.checked_add(h)?;
                n = n.checked_add(d.checked_add(h)?.checked_mul(h)?)?.checked_add(h)?;
                n = n.checked_add(l.checked_mul(hh.checked_add(h)?)?)?;
                n = n.checked_add(h.checked_mul(o)?)?.checked_add(o)?;
                n.checked_add(k.checked_mul(h)?)
            })();
            match count {
                Some(n) if n <= MAX_MLP_PARAMS => Ok(()),
                _ => Err(TrainError::invalid(
                    "model",
                    format!(
                        "an MLP of data_dim {d}, hidden {h}, {l} layers, time_embed_dim {e} has more \
                         than the supported {MAX_MLP_PARAMS} parameters"
                    ),
                )),
            }
        }
        ModelConfig::Unet(c) => {
            for (field, v) in [
                ("model.image_size", c.image_size),
                ("model.in_channels", c.in_channels),
                ("model.out_channels", c.out_channels),
                ("model.base_channels", c.base_channels),
                ("model.num_res_blocks", c.num_res_blocks),
                ("model.num_heads", c.num_heads),
                ("model.groups", c.groups),
                ("model.time_embed_dim", c.time_embed_dim),
                ("model.temb_dim", c.temb_dim),
                ("model.num_classes", c.num_classes.unwrap_or(0)),
            ] {
                at_most(field, v, MAX_MODEL_DIM)?;
            }
            for &m in &c.channel_mults {
                at_most("model.channel_mults", m, MAX_MODEL_DIM)?;
            }
            Ok(())
        }
        #[allow(unreachable_patterns)]
        _ => Ok(()),
    }
}

/// A core validation error as a config error under `prefix` (e.g. `method.schedule.beta_start`).
fn nested(prefix: &str, e: rediffuse_core::CoreError) -> TrainError {
    match e {
        rediffuse_core::CoreError::InvalidParameter { name, reason } => {
            TrainError::invalid(format!("{prefix}.{name}"), reason)
        }
        other => TrainError::invalid(prefix, other.to_string()),
    }
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_ema_decay() -> f64 {
    0.999
}
fn default_true() -> bool {
    true
}
fn default_log_every() -> usize {
    100
}
fn default_checkpoint_every() -> usize {
    5000
}

/// Everything that defines a training run. Read from / written to TOML or JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Data set specification, interpreted by the data layer / CLI (e.g. `"moons"`, `"file:x.npy"`).
    pub data: String,
    /// Number of samples to generate, for generated data sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_train: Option<usize>,
    /// Number of optimiser steps.
    pub steps: usize,
    pub batch_size: usize,
    /// Peak learning rate (reached after `warmup_steps`).
    pub lr: f64,
    /// AdamW decoupled weight decay λ (default 0).
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_beta1")]
    pub adam_beta1: f64,
    #[serde(default = "default_beta2")]
    pub adam_beta2: f64,
    #[serde(default = "default_adam_eps")]
    pub adam_eps: f64,
    /// Linear learning-rate warm-up length in steps (0 = none).
    #[serde(default)]
    pub warmup_steps: usize,
    /// Clip the global gradient norm to this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// EMA decay of the weights (default 0.999).
    #[serde(default = "default_ema_decay")]
    pub ema_decay: f64,
    /// Use the EMA warm-up decay min(ema_decay, (1 + n)/(10 + n)) (default true).
    #[serde(default = "default_true")]
    pub ema_warmup: bool,
    /// Seeds parameter initialisation, data order, timesteps and noise.
    pub seed: u64,
    /// Log the mean loss to `metrics.jsonl` every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Write a checkpoint every this many steps (and always at the end).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// Sample-quality metrics during training (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<PeriodicEvalConfig>,
    /// Class-conditional models: probability of replacing a training label by the null label
    /// (classifier-free guidance's label dropout, Ho & Salimans 2022; default 0.1).
    #[serde(default = "default_p_uncond")]
    pub p_uncond: f64,
    /// Super-resolution: the model is conditioned on each image's low-resolution version
    /// (`[super_res]`, see [`crate::superres`]); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_res: Option<crate::superres::SuperResConfig>,
    /// Reflow: a .npy of the noise each data row is coupled with (flow runs; interpreted by the
    /// caller like `data`, see `Trainer::with_couplings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub couplings: Option<String>,
    /// Progressive distillation: the student of a teacher run (`[distill]`, see [`crate::distill`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<crate::distill::DistillConfig>,
    /// Latent diffusion: the model is trained on an autoencoder's scaled latents (`[latent]`,
    /// see [`crate::latent`]); none by default (pixel space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent: Option<crate::latent::LatentConfig>,
    pub model: ModelConfig,
    pub method: Method,
}

fn default_p_uncond() -> f64 {
    0.1
}

impl TrainConfig {
    /// A config with the defaults above for `data`/`model`/`method`.
    pub fn new(data: impl Into<String>, model: ModelConfig, method: Method) -> Self {
        Self {
            data: data.into(),
            n_train: None,
            steps: 10_000,
            batch_size: 256,
            lr: 1e-3,
            weight_decay: 0.0,
            adam_beta1: default_beta1(),
            adam_beta2: default_beta2(),
            adam_eps: default_adam_eps(),
            warmup_steps: 0,
            grad_clip: None,
            ema_decay: default_ema_decay(),
            ema_warmup: true,
            seed: 0,
            log_every: default_log_every(),
            checkpoint_every: default_checkpoint_every(),
            eval: None,
            p_uncond: default_p_uncond(),
            super_res: None,
            latent: None,
            couplings: None,
            distill: None,
            model,
            method,
        }
    }

    /// Check every value; the error names the first offending field.
    pub fn validate(&self) -> Result<()> {
        if self.data.trim().is_empty() {
            return Err(TrainError::invalid("data", "must not be empty"));
        }
        if self.n_train == Some(0) {
            return Err(TrainError::invalid("n_train", "must be >= 1"));
        }
        for (field, v) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("log_every", self.log_every),
            ("checkpoint_every", self.checkpoint_every),
        ] {
            if v == 0 {
                return Err(TrainError::invalid(field, "must be >= 1"));
            }
        }
        // every integer must be writable back to config.toml (TOML integers are signed 64-bit)
        for (field, v) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("warmup_steps", self.warmup_steps),
            ("log_every", self.log_every),
            ("checkpoint_every", self.checkpoint_every),
            ("n_train", self.n_train.unwrap_or(0)),
        ] {
            at_most(field, v, i64::MAX as usize)?;
        }
        if let Some(e) = &self.eval {
            at_most("eval.every", e.every, i64::MAX as usize)?;
            at_most("eval.n", e.n, i64::MAX as usize)?;
        }
        // counts that size arrays allocated from the config alone
        match &self.method {
            Method::Consistency(c) => {
                at_most("method.steps", c.steps, MAX_STEPS)?;
                at_most("method.s0", c.s0, MAX_STEPS)?;
                at_most("method.s1", c.s1, MAX_STEPS)?;
            }
            Method::Iddpm { iddpm, .. } => {
                at_most("method.iddpm.history_per_term", iddpm.history_per_term, MAX_STEPS)?
            }
            _ => {}
        }
        if let Some(d) = &self.distill {
            at_most("distill.student_steps", d.student_steps, MAX_STEPS)?;
        }
        if self.seed > i64::MAX as u64 {
            return Err(TrainError::invalid("seed", "must be < 2^63 (TOML integers are signed 64-bit)"));
        }
        positive("lr", self.lr)?;
        positive("adam_eps", self.adam_eps)?;
        if !(self.p_uncond.is_finite() && (0.0..=1.0).contains(&self.p_uncond)) {
            return Err(TrainError::invalid(
                "p_uncond",
                format!("must lie in [0, 1], got {}", self.p_uncond),
            ));
        }
        if !self.weight_decay.is_finite() || self.weight_decay < 0.0 {
            return Err(TrainError::invalid(
                "weight_decay",
                format!("must be finite and >= 0, got {}", self.weight_decay),
            ));
        }
        unit_interval("adam_beta1", self.adam_beta1)?;
        unit_interval("adam_beta2", self.adam_beta2)?;
        unit_interval("ema_decay", self.ema_decay)?;
        if let Some(c) = self.grad_clip {
            positive("grad_clip", c)?;
        }
        check_model_sizes(&self.model)?;
        self.model.validate().map_err(|e| match e {
            NnError::InvalidConfig { field, reason } => TrainError::invalid(format!("model.{field}"), reason),
            other => TrainError::invalid("model", other.to_string()),
        })?;
        self.method.validate()?;
        if let Some(e) = &self.eval {
            e.validate()?;
        }
        if let Some(d) = &self.distill {
            d.validate()?;
            if self.super_res.is_some() || self.couplings.is_some() || self.model.num_classes().is_some() {
                return Err(TrainError::invalid(
                    "distill",
                    "progressive distillation applies to unconditional runs without couplings",
                ));
            }
        }
        if self.latent.is_some() && (self.super_res.is_some() || matches!(self.method, Method::Cold(_))) {
            return Err(TrainError::invalid(
                "latent",
                "latent diffusion applies to noise-based methods without super-resolution",
            ));
        }
        if self.couplings.is_some() && !matches!(self.method, Method::Flow(_)) {
            return Err(crate::objective::couplings_error());
        }
        match &self.super_res {
            Some(sr) => {
                sr.validate(&self.model)?;
                if self.eval.is_some() {
                    return Err(TrainError::invalid(
                        "eval",
                        "FID/KID during training needs an unconditional model, not a super-resolution one",
                    ));
                }
            }
            None if self.model.extra_input_channels() > 0 => {
                return Err(TrainError::invalid(
                    "model.in_channels",
                    "a U-Net with more input than output channels is a super-resolution model: \
                     give [super_res] (--super-res)",
                ))
            }
            None => {}
        }
        match (self.method.variance_mode().is_learned(), self.model.learn_sigma()) {
            (true, false) => Err(TrainError::invalid(
                "model.learn_sigma",
                format!("method `{}` needs a network with learn_sigma = true", self.method.name()),
            )),
            (false, true) => Err(TrainError::invalid(
                "model.learn_sigma",
                format!("only iddpm trains a learned variance, not `{}`", self.method.name()),
            )),
            _ => Ok(()),
        }
    }

    /// Parse TOML text (does not validate).
    pub fn from_toml_str(s: &str) -> Result<Self> {
        toml::from_str(s).map_err(|e| parse_error("<toml text>", e))
    }

    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| TrainError::invalid("config", e.to_string()))
    }

    /// Parse JSON text (does not validate).
    pub fn from_json_str(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| parse_error("<json text>", e))
    }

    pub fn to_json_string(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| TrainError::invalid("config", e.to_string()))
    }

    /// Read and validate a config file: JSON if the extension is `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TrainError::MissingFile(path.to_path_buf()))
            }
            Err(e) => return Err(TrainError::io(path, e)),
        };
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let cfg = if is_json { Self::from_json_str(&text) } else { Self::from_toml_str(&text) }.map_err(
            |e| match e {
                TrainError::ConfigParse { reason, .. } => {
                    TrainError::ConfigParse { path: path.to_path_buf(), reason }
                }
                other => other,
            },
        )?;
        cfg.validate()?;
        Ok(cfg)
    }
}

fn parse_error(what: &str, e: impl std::fmt::Display) -> TrainError {
    TrainError::ConfigParse { path: what.into(), reason: e.to_string() }
}

fn positive(field: &str, v: f64) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        return Err(TrainError::invalid(field, format!("must be a finite number > 0, got {v}")));
    }
    Ok(())
}

fn unit_interval(field: &str, v: f64) -> Result<()> {
    if !v.is_finite() || !(0.0..1.0).contains(&v) {
        return Err(TrainError::invalid(field, format!("must lie in [0, 1), got {v}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rediffuse_nn::MlpConfig;

    fn cfg() -> TrainConfig {
        TrainConfig::new("moons", ModelConfig::Mlp(MlpConfig::new(2)), Method::ddpm_default())
    }

    #[test]
    fn toml_and_json_round_trip() {
        let mut c = cfg();
        c.grad_clip = Some(1.0);
        c.n_train = Some(5000);
        let t = c.to_toml_string().unwrap();
        assert_eq!(TrainConfig::from_toml_str(&t).unwrap(), c, "{t}");
        assert_eq!(TrainConfig::from_json_str(&c.to_json_string().unwrap()).unwrap(), c);
        c.validate().unwrap();
    }

    #[test]
    fn minimal_toml_uses_defaults() {
        let t = r#"
data = "moons"
steps = 100
batch_size = 64
lr = 0.001
seed = 3
[model]
kind = "mlp"
data_dim = 2
[method]
kind = "ddpm"
timesteps = 100
prediction = "epsilon"
[method.schedule]
kind = "cosine"
s = 0.008
max_beta = 0.999
"#;
        let c = TrainConfig::from_toml_str(t).unwrap();
        c.validate().unwrap();
        assert_eq!(c.ema_decay, 0.999);
        assert_eq!(c.model, ModelConfig::Mlp(MlpConfig::new(2)));
        assert!(matches!(
            TrainConfig::from_toml_str(&format!("bogus = 1\n{t}")),
            Err(TrainError::ConfigParse { .. })
        ));
    }

    /// Regressions (fuzzing `TrainConfig::load`): `timesteps = 4294967295` made validation
    /// allocate a 34 GB schedule; a huge `hidden` / `time_embed_dim` let loaders allocate the
    /// network it claims; an overflowing `sample_shape` product overflowed in validation.
    #[test]
    fn huge_sizes_are_rejected_before_allocating() {
        type Mutation = Box<dyn Fn(&mut TrainConfig)>;
        let mlp = |f: &dyn Fn(&mut MlpConfig)| {
            let mut m = MlpConfig::new(2);
            f(&mut m);
            ModelConfig::Mlp(m)
        };
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| {
                    c.method = Method::Ddpm {
                        schedule: BetaSchedule::linear(),
                        timesteps: u32::MAX as usize,
                        prediction: Prediction::Epsilon,
                        zero_terminal_snr: false,
                    }
                }),
                "method.timesteps",
            ),
            (
                Box::new(|c| c.method = Method::Ncsn { sigma_max: 1.0, sigma_min: 0.1, levels: usize::MAX }),
                "method.levels",
            ),
            (Box::new(move |c| c.model = mlp(&|m| m.hidden = 1 << 40)), "model.hidden"),
            (Box::new(move |c| c.model = mlp(&|m| m.time_embed_dim = usize::MAX)), "model.time_embed_dim"),
            (Box::new(move |c| c.model = mlp(&|m| m.hidden = 1 << 16)), "model"),
            (
                Box::new(move |c| {
                    c.model = mlp(&|m| {
                        m.data_dim = 4;
                        m.sample_shape = Some(vec![1 << 40, 1 << 40, 4]);
                    })
                }),
                "model.sample_shape",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = cfg();
            mutate(&mut c);
            match c.validate() {
                Err(TrainError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected InvalidConfig({field}), got {other:?}"),
            }
        }
        // Regression (fuzzing a JSON config): `steps = 18446744073709551615` was accepted but
        // cannot be written to config.toml
        let mut c = cfg();
        c.steps = u64::MAX as usize;
        match c.validate() {
            Err(TrainError::InvalidConfig { field, .. }) => assert_eq!(field, "steps"),
            other => panic!("expected InvalidConfig(steps), got {other:?}"),
        }
        // the largest accepted sizes still validate
        let mut c = cfg();
        c.method = Method::Ddpm {
            schedule: BetaSchedule::linear(),
            timesteps: MAX_STEPS,
            prediction: Prediction::Epsilon,
            zero_terminal_snr: false,
        };
        c.validate().unwrap();
    }

    /// Regression (fuzzing `TrainConfig::load`): serde_json's default float parser may be off by
    /// one ulp, so a config (or `state.json`) written as JSON did not read back equal. The
    /// workspace enables serde_json's `float_roundtrip`.
    #[test]
    fn json_floats_round_trip_exactly() {
        let mut c = cfg();
        c.adam_beta1 = 0.10376293541461623;
        assert_eq!(TrainConfig::from_json_str(&c.to_json_string().unwrap()).unwrap(), c);
    }

    #[test]
    fn bad_values_name_their_field() {
        type Mutation = Box<dyn Fn(&mut TrainConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.lr = f64::NAN), "lr"),
            (Box::new(|c| c.lr = -1e-3), "lr"),
            (Box::new(|c| c.batch_size = 0), "batch_size"),
            (Box::new(|c| c.steps = 0), "steps"),
            (Box::new(|c| c.log_every = 0), "log_every"),
            (Box::new(|c| c.checkpoint_every = 0), "checkpoint_every"),
            (Box::new(|c| c.weight_decay = -0.1), "weight_decay"),
            (Box::new(|c| c.ema_decay = 1.0), "ema_decay"),
            (Box::new(|c| c.adam_beta2 = f64::INFINITY), "adam_beta2"),
            (Box::new(|c| c.adam_eps = 0.0), "adam_eps"),
            (Box::new(|c| c.grad_clip = Some(0.0)), "grad_clip"),
            (Box::new(|c| c.n_train = Some(0)), "n_train"),
            (Box::new(|c| c.seed = u64::MAX), "seed"),
            (Box::new(|c| c.data = " ".into()), "data"),
            (
                Box::new(|c| c.model = ModelConfig::Mlp(MlpConfig { hidden: 0, ..MlpConfig::new(2) })),
                "model.hidden",
            ),
            (
                Box::new(|c| {
                    c.method = Method::Ddpm {
                        schedule: BetaSchedule::linear(),
                        timesteps: 0,
                        prediction: Prediction::V,
                        zero_terminal_snr: false,
                    }
                }),
                "method.timesteps",
            ),
            (
                Box::new(|c| {
                    c.method = Method::Ddpm {
                        schedule: BetaSchedule::Linear { beta_start: -1.0, beta_end: 0.02 },
                        timesteps: 10,
                        prediction: Prediction::V,
                        zero_terminal_snr: false,
                    }
                }),
                "method.schedule.beta_start",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = cfg();
            mutate(&mut c);
            match c.validate() {
                Err(TrainError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected InvalidConfig({field}), got {other:?}"),
            }
        }
    }
}
