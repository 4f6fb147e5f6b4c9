//! Loading a trained run for sampling.

use crate::checkpoint::{
    find_checkpoint, read_state, read_tensors, CONFIG_FILE, EMA_FILE, MODEL_FILE, STATE_FILE,
};
use crate::config::{Method, TrainConfig};
use crate::error::{Result, TrainError};
use crate::objective::sampling_time_input;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rediffuse_core::sde::geometric_sigmas;
use rediffuse_core::superres::ImageConditioned;
use rediffuse_core::vlb::{LearnedVarianceDenoiser, VarianceMode};
use rediffuse_core::{ClassifierFreeGuidance, Denoiser, DiffusionSchedule, Prediction};
use rediffuse_nn::{DiffusionNet, ModelConfig};
use rediffuse_sample::continuous::FlowModel;
use rediffuse_sample::continuous::{ContinuousModel, DiscreteModel, DiscreteView, EdmPrecond, SigmaDenoiser};
use rediffuse_sample::dispatch::{finite_discrete_sigmas, Frame, SampleModel, SigmaSchedule};
use std::collections::HashMap;
use std::path::Path;

/// A trained network seen as a [`Denoiser`]: `forward(x_t, t) = net.forward(x_t, t, train = false)`.
pub struct NetDenoiser {
    pub net: Box<dyn DiffusionNet>,
    pub prediction: Prediction,
}

impl NetDenoiser {
    pub fn new(net: Box<dyn DiffusionNet>, prediction: Prediction) -> Self {
        Self { net, prediction }
    }
}

impl Denoiser for NetDenoiser {
    fn prediction(&self) -> Prediction {
        self.prediction
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        Ok(self.net.forward(x_t, t, false)?)
    }
    fn forward_with_labels(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
    ) -> rediffuse_core::Result<Tensor> {
        Ok(self.net.forward_with_labels(x_t, t, labels, false)?)
    }
    fn num_classes(&self) -> Option<usize> {
        self.net.num_classes()
    }
}

/// A run folder loaded for inference.
///
/// `denoiser` is the raw network with the method's model time; only for DDPM is it directly a
/// discrete denoiser over `schedule` (for iDDPM it returns the full `[B, 2C, …]` output: the mean
/// half, then v; [`LoadedRun::variance_mode`] says so). For every method, [`LoadedRun::sample_model`] (all samplers via
/// `rediffuse_sample::dispatch`), [`LoadedRun::sigma_model`] (σ-space samplers) and
/// [`LoadedRun::discrete_denoiser`] (DDPM/DDIM) give the right view.
pub struct LoadedRun {
    pub config: TrainConfig,
    /// The method's discrete schedule (`Method::schedule`; for continuous methods the schedule of
    /// their `DiscreteView`).
    pub schedule: DiffusionSchedule,
    pub denoiser: NetDenoiser,
    /// Steps the checkpoint was trained for.
    pub step: u64,
    /// Whether the EMA weights were loaded.
    pub ema: bool,
    /// Where the weights live.
    pub device: Device,
}

impl LoadedRun {
    /// How the reverse variance comes out of `denoiser` ([`Method::variance_mode`]): `LearnedRange`
    /// for iDDPM runs, whose `denoiser` outputs twice the data channels.
    pub fn variance_mode(&self) -> VarianceMode {
        self.config.method.variance_mode()
    }

    /// The network in σ-space: `DiscreteModel` (DDPM; zero-terminal-SNR steps skipped; iDDPM on
    /// the mean half, `LearnedVarianceDenoiser`),
    /// `ContinuousModel` with the method's time input (score SDE: 999·t; NCSN: the fractional level
    /// index on the VE SDE over [σ_L, σ₁]), or `EdmPrecond` (EDM).
    pub fn sigma_model(&self) -> Result<Box<dyn SigmaDenoiser + '_>> {
        sigma_view(&self.config.method, &self.schedule, &self.denoiser)
    }

    fn continuous_model_of<D: Denoiser>(&self, net: D) -> Result<ContinuousModel<D>> {
        let m = &self.config.method;
        let ti = sampling_time_input(m).ok_or_else(|| {
            TrainError::invalid("method", format!("{} is not a score-SDE/NCSN method", m.name()))
        })?;
        Ok(ContinuousModel::new(net, m.continuous_sde()?, ti)?)
    }

    /// A discrete denoiser and its schedule for DDPM/DDIM: the network itself (DDPM), its mean
    /// half (iDDPM, `LearnedVarianceDenoiser`), or
    /// `DiscreteView` over [`LoadedRun::sigma_model`] with `self.schedule` (continuous methods).
    pub fn discrete_denoiser(&self) -> Result<(Box<dyn Denoiser + '_>, DiffusionSchedule)> {
        Ok(match self.config.method {
            Method::Ddpm { .. } => (Box::new(&self.denoiser), self.schedule.clone()),
            Method::Iddpm { .. } => {
                (Box::new(LearnedVarianceDenoiser::new(&self.denoiser)), self.schedule.clone())
            }
            _ => (Box::new(DiscreteView::new(self.sigma_model()?, &self.schedule)?), self.schedule.clone()),
        })
    }

    /// The frame the samplers use: DDPM, iDDPM `Frame::for_schedule`; score SDE `Frame::for_sde(sde, eps)`
    /// with the training ε; NCSN and EDM `Frame::ve(σ_min, σ_max)`.
    pub fn frame(&self) -> Result<Frame> {
        Ok(match &self.config.method {
            Method::Ddpm { .. } | Method::Iddpm { .. } => Frame::for_schedule(&self.schedule)?,
            Method::Ncsn { sigma_max, sigma_min, .. } => Frame::ve(*sigma_min, *sigma_max)?,
            Method::ScoreSde { sde, eps, .. } => Frame::for_sde(*sde, *eps)?,
            Method::Edm(c) => Frame::ve(c.sigma_min, c.sigma_max)?,
            Method::Flow(c) => {
                let (lo, hi) = c.sigma_range();
                Frame::ve(lo, hi)?
            }
            Method::Consistency(c) => Frame::ve(c.sigma_min, c.sigma_max)?,
            Method::Cold(_) => return Err(cold_error()),
        })
    }

    /// Everything `rediffuse_sample::dispatch::sample` / `nll_ode` need, for every method
    /// (NCSN runs also carry their trained levels for Langevin). iDDPM runs: every sampler sees the
    /// mean half of the output (`LearnedVarianceDenoiser`, so DDPM runs with a fixed variance,
    /// DDIM and the σ-space samplers as usual), and the full output is attached for
    /// `SamplerSpec::DdpmLearned` (ancestral sampling with the learned Σ_θ, optionally respaced).
    pub fn sample_model(&self) -> Result<SampleModel<'_>> {
        self.check_not_super_res()?;
        self.sample_model_of(&self.denoiser)
    }

    /// Super-resolution runs sample only given their low-resolution input.
    fn check_not_super_res(&self) -> Result<()> {
        match self.config.super_res {
            Some(sr) => Err(TrainError::invalid(
                "lowres",
                format!(
                    "the run is a ×{} super-resolution model: sample it from low-resolution images \
                     (--lowres FILE or --cascade BASE,SR)",
                    sr.factor
                ),
            )),
            None => Ok(()),
        }
    }

    /// [`LoadedRun::sample_model`] guided towards `labels` (one per sample of the batch it will
    /// sample) with classifier-free guidance of scale `scale` (`ClassifierFreeGuidance`: 0 is the
    /// unconditional model, 1 the conditional one). Needs a class-conditional run.
    pub fn guided_sample_model(&self, labels: &[u32], scale: f64) -> Result<SampleModel<'_>> {
        self.check_not_super_res()?;
        let guided = ClassifierFreeGuidance::new(&self.denoiser, labels, scale, self.denoiser_device())?;
        self.sample_model_of(guided)
    }

    /// [`LoadedRun::sample_model`] with classifier guidance towards `labels` (one per sample of the
    /// batch it will sample) by a noise-conditioned `classifier` of scale γ = `scale`
    /// ([`crate::classifier_guidance::ClassifierGuided`]; every sampler sees the guided D).
    pub fn classifier_guided_sample_model<'a>(
        &'a self,
        classifier: &'a rediffuse_nn::classifier::Classifier,
        labels: &[u32],
        scale: f64,
    ) -> Result<SampleModel<'a>> {
        self.check_not_super_res()?;
        if classifier.config().noise_range.is_none() {
            return Err(TrainError::invalid(
                "classifier",
                "classifier guidance needs a noise-conditioned classifier (train-classifier --noisy)",
            ));
        }
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(TrainError::invalid(
                "classifier_scale",
                format!("must be a finite number >= 0, got {scale}"),
            ));
        }
        let k = classifier.config().num_classes;
        if let Some(bad) = labels.iter().find(|&&y| y as usize >= k) {
            return Err(TrainError::invalid("class", format!("{bad} is out of range 0..{k}")));
        }
        let guided = crate::classifier_guidance::ClassifierGuided {
            model: std::rc::Rc::from(self.sigma_model()?),
            classifier,
            labels: labels.to_vec(),
            scale,
        };
        self.finish(SampleModel::from_sigma_with_schedule(guided, self.frame()?, self.schedule.clone())?)
    }

    /// A super-resolution run's sampling view for one batch: `cond` (`[B, C + 1, H, W]`,
    /// `crate::superres::sampling_condition`) fixed as the network's extra input
    /// (`ImageConditioned`), optionally with classifier-free guidance towards `labels` of
    /// scale `scale` on top. Every sampler runs on it.
    pub fn super_res_sample_model(
        &self,
        cond: Tensor,
        guidance: Option<(&[u32], f64)>,
    ) -> Result<SampleModel<'_>> {
        if self.config.super_res.is_none() {
            return Err(TrainError::invalid("lowres", "the run is not a super-resolution model"));
        }
        let c = self.config.model.sample_shape()[0];
        let want_c = rediffuse_core::superres::cond_channels(c);
        if cond.rank() != 4 || cond.dim(1)? != want_c {
            return Err(TrainError::invalid(
                "lowres",
                format!("conditioning of shape {:?}, expected [B, {want_c}, H, W]", cond.dims()),
            ));
        }
        let conditioned = ImageConditioned { model: &self.denoiser, cond };
        match guidance {
            None => self.sample_model_of(conditioned),
            Some((labels, scale)) => self.sample_model_of(ClassifierFreeGuidance::new(
                conditioned,
                labels,
                scale,
                self.denoiser_device(),
            )?),
        }
    }

    /// The device of the network's weights (where label tensors go).
    fn denoiser_device(&self) -> &Device {
        &self.device
    }

    fn sample_model_of<'a, D: Denoiser + Clone + 'a>(&'a self, net: D) -> Result<SampleModel<'a>> {
        let frame = self.frame()?;
        let m = match &self.config.method {
            Method::Cold(_) => return Err(cold_error()),
            Method::Ddpm { .. } => SampleModel::from_discrete(net, self.schedule.clone())?,
            Method::Iddpm { .. } => {
                SampleModel::from_discrete(LearnedVarianceDenoiser::new(net.clone()), self.schedule.clone())?
                    .with_learned_variance(net)
            }
            Method::Edm(cfg) => SampleModel::from_sigma_with_schedule(
                EdmPrecond::new(net, *cfg)?,
                frame,
                self.schedule.clone(),
            )?,
            Method::Ncsn { .. } | Method::ScoreSde { .. } => SampleModel::from_sigma_with_schedule(
                self.continuous_model_of(net)?,
                frame,
                self.schedule.clone(),
            )?,
            Method::Flow(cfg) => SampleModel::from_sigma_with_schedule(
                FlowModel::new(net, cfg.sigma_min)?,
                frame,
                self.schedule.clone(),
            )?,
            Method::Consistency(c) => SampleModel::from_sigma_with_schedule(
                rediffuse_sample::continuous::ConsistencyPrecond { net, params: c.params() },
                frame,
                self.schedule.clone(),
            )?,
        };
        self.finish(m)
    }

    /// What every sampling view of the run shares: its native σ grid (uniform in flow time for
    /// flows, the nested Karras grid for distilled students) and NCSN's trained levels.
    fn finish<'a>(&self, m: SampleModel<'a>) -> Result<SampleModel<'a>> {
        let m = match (&self.config.distill, &self.config.method) {
            (Some(d), _) => m.with_native_sigma_schedule(d.schedule()),
            (None, Method::Flow(cfg)) => {
                m.with_native_sigma_schedule(SigmaSchedule::FlowTime { sigma_min: cfg.sigma_min })
            }
            _ => m,
        };
        Ok(match &self.config.method {
            Method::Ncsn { sigma_max, sigma_min, levels } => {
                m.with_levels(geometric_sigmas(*sigma_max, *sigma_min, *levels)?)?
            }
            _ => m,
        })
    }
}

/// Cold runs are not Gaussian diffusions: only the cold samplers run them.
fn cold_error() -> TrainError {
    TrainError::invalid(
        "sampler",
        "a cold-diffusion run restores deterministic degradations: sample it with --sampler cold|cold-naive",
    )
}

/// The σ-space view of a network `net` trained with `method` (its discrete `schedule`):
/// `DiscreteModel` (DDPM; iDDPM on the mean half, `LearnedVarianceDenoiser`), `ContinuousModel`
/// with the method's time input (score SDE, NCSN), `EdmPrecond` (EDM) or `FlowModel` (flow).
pub fn sigma_view<'a, D: Denoiser + 'a>(
    method: &Method,
    schedule: &DiffusionSchedule,
    net: D,
) -> Result<Box<dyn SigmaDenoiser + 'a>> {
    Ok(match method {
        Method::Cold(_) => return Err(cold_error()),
        Method::Ddpm { .. } => {
            Box::new(DiscreteModel { model: net, sigmas: finite_discrete_sigmas(schedule)?, quantize: false })
        }
        Method::Iddpm { .. } => Box::new(DiscreteModel {
            model: LearnedVarianceDenoiser::new(net),
            sigmas: finite_discrete_sigmas(schedule)?,
            quantize: false,
        }),
        Method::Edm(cfg) => Box::new(EdmPrecond::new(net, *cfg)?),
        Method::Flow(cfg) => Box::new(FlowModel::new(net, cfg.sigma_min)?),
        Method::Consistency(c) => {
            Box::new(rediffuse_sample::continuous::ConsistencyPrecond { net, params: c.params() })
        }
        Method::Ncsn { .. } | Method::ScoreSde { .. } => {
            let ti = sampling_time_input(method).ok_or_else(|| {
                TrainError::invalid("method", format!("{} is not a score-SDE/NCSN method", method.name()))
            })?;
            Box::new(ContinuousModel::new(net, method.continuous_sde()?, ti)?)
        }
    })
}

/// Load `dir/config.toml` and the latest checkpoint's weights (`ema.safetensors` when
/// `use_ema`, else `model.safetensors`) onto `device`.
/// Missing files -> `TrainError::MissingFile`; unreadable or mismatching ones -> `Corrupt`.
///
/// The network is built on the file's tensors (every parameter present with its shape, no other
/// tensor), never on freshly allocated ones: a config whose sizes do not match the checkpoint is an
/// error before anything of the size it claims is allocated.
///
/// A diffusers `UNet2DModel` folder (or pipeline folder) without `config.toml` loads as a DDPM
/// run through [`crate::diffusers_run::load_diffusers_run`].
pub fn load_run(dir: &Path, use_ema: bool, device: &Device) -> Result<LoadedRun> {
    if !dir.join(CONFIG_FILE).exists() && crate::diffusers_run::diffusers_model_dir(dir).is_some() {
        return crate::diffusers_run::load_diffusers_run(dir, device);
    }
    let config = TrainConfig::load(&dir.join(CONFIG_FILE))?;
    let ckpt = find_checkpoint(dir)?;
    let state = read_state(&ckpt.join(STATE_FILE))?;
    let weights = ckpt.join(if use_ema { EMA_FILE } else { MODEL_FILE });
    let tensors = read_tensors(&weights, device)?;
    check_weights(&config.model, &tensors, device, &weights)?;
    LoadedRun::from_weights(config, tensors, state.step, use_ema, device)
}

/// Check that `tensors` (read from `origin`) are exactly the parameters of `model`, with their
/// shapes; mismatches are `Corrupt` errors naming every missing, misshapen or unexpected tensor.
/// The network is built on the file's tensors, so nothing of the size a (corrupt) config claims is
/// allocated.
pub fn check_weights(
    model: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
    device: &Device,
    origin: &Path,
) -> Result<()> {
    rediffuse_nn::checkpoint::build_checked(tensors, DType::F32, device, |vb| model.build(vb))
        .map_err(|e| TrainError::corrupt(origin, e))?;
    Ok(())
}

impl LoadedRun {
    /// A run from in-memory weights (e.g. the trainer's EMA during training). `weights` must hold
    /// every parameter of `config.model` with its shape (checked by the network's builder).
    pub fn from_weights(
        config: TrainConfig,
        weights: HashMap<String, Tensor>,
        step: u64,
        ema: bool,
        device: &Device,
    ) -> Result<Self> {
        // The network is built on plain (non-variable) tensors: candle records the graph of every
        // op that touches a variable, which would keep all activations of a sampling run alive.
        // Gradients with respect to the input (likelihood divergences) still flow.
        let weights = weights.into_iter().map(|(n, t)| (n, t.detach())).collect();
        let net = config.model.build(VarBuilder::from_tensors(weights, DType::F32, device))?;
        Ok(LoadedRun {
            schedule: config.method.schedule()?,
            denoiser: NetDenoiser { net, prediction: config.method.prediction() },
            config,
            step,
            ema,
            device: device.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{sorted_params, SeededInit};
    use candle_nn::VarMap;
    use rediffuse_nn::MlpConfig;

    fn mlp(hidden: usize) -> ModelConfig {
        ModelConfig::Mlp(MlpConfig { hidden, layers: 1, time_embed_dim: 8, ..MlpConfig::new(2) })
    }

    fn weights_of(model: &ModelConfig) -> HashMap<String, Tensor> {
        let varmap = VarMap::new();
        model.build(SeededInit::zeros_var_builder(&varmap, &Device::Cpu)).unwrap();
        sorted_params(&varmap).into_iter().map(|(n, v)| (n, v.as_tensor().detach())).collect()
    }

    /// Regression (fuzzing `load_run`): a corrupt config with a huge `hidden` made `load_run`
    /// allocate the network it claims (zero-initialised) before comparing it with the checkpoint.
    /// The weights are now checked against the config on the file's own tensors.
    #[test]
    fn weights_are_checked_before_the_claimed_network_is_allocated() {
        let p = Path::new("model.safetensors");
        let dev = Device::Cpu;
        let w = weights_of(&mlp(16));
        check_weights(&mlp(16), &w, &dev, p).unwrap();
        // 2^13 hidden units: 4 × 2^26 weights of the claimed network, never allocated
        let e = check_weights(&mlp(1 << 13), &w, &dev, p).unwrap_err();
        assert!(
            matches!(&e, TrainError::Corrupt { reason, .. } if reason.contains("the model expects")),
            "{e}"
        );
        let mut missing = w.clone();
        missing.remove("output.bias");
        let e = check_weights(&mlp(16), &missing, &dev, p).unwrap_err();
        assert!(e.to_string().contains("missing tensor(s) `output.bias`"), "{e}");
        let mut extra = w.clone();
        extra.insert("zzz".into(), Tensor::zeros(3, DType::F32, &dev).unwrap());
        let e = check_weights(&mlp(16), &extra, &dev, p).unwrap_err();
        assert!(e.to_string().contains("unexpected tensor(s) `zzz`"), "{e}");
    }
}
