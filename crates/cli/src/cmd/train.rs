//! `rediffuse train`: build a run configuration from a file and flags, load data, train.

use crate::args::{MethodKind, ModelKind, PredictionKind, ScheduleKind, TrainArgs};
use crate::io::{finite, positive};
use crate::progress;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rediffuse_core::{BetaSchedule, Prediction};
use rediffuse_nn::{mlp::MlpConfig, ModelConfig};
use rediffuse_train::{Method, StepReport, TrainConfig, TrainObserver, Trainer};
use std::path::Path;

pub fn schedule_of(kind: ScheduleKind) -> BetaSchedule {
    match kind {
        ScheduleKind::Linear => BetaSchedule::linear(),
        ScheduleKind::Cosine => BetaSchedule::cosine(),
        ScheduleKind::Quadratic => BetaSchedule::quadratic(),
        ScheduleKind::Sigmoid => BetaSchedule::sigmoid(),
    }
}

fn prediction_of(kind: PredictionKind) -> Prediction {
    match kind {
        PredictionKind::Epsilon => Prediction::Epsilon,
        PredictionKind::Sample => Prediction::Sample,
        PredictionKind::V => Prediction::V,
    }
}

/// The training data and, for class-conditional models, their labels.
pub fn load_training_set(config: &TrainConfig, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
    let (data, labels) =
        crate::cmd::data::load_with_labels(&config.data, config.n_train, config.seed, device)
            .with_context(|| format!("loading training data `{}`", config.data))?;
    match (config.model.num_classes(), labels) {
        (None, _) => Ok((data, None)),
        (Some(_), None) => bail!("--class-cond needs a labelled data set; `{}` has no labels", config.data),
        (Some(_), labels) => Ok((data, labels)),
    }
}

/// The number of classes of a labelled data set (largest label + 1).
fn count_classes(labels: &Tensor) -> Result<usize> {
    let max = labels.to_dtype(candle_core::DType::I64)?.max(0)?.to_scalar::<i64>()?;
    Ok(max as usize + 1)
}

/// The configuration of a new run: defaults ← `--config` file ← flags.
fn build_config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = match &a.config {
        Some(path) => TrainConfig::load(path)?,
        None => {
            let data = a.data.clone().context("--data is required (or give --config)")?;
            let model = match a.model.unwrap_or(ModelKind::Mlp) {
                ModelKind::Mlp => crate::cmd::data::default_mlp(a.preset.as_deref())?,
                ModelKind::Unet => crate::cmd::data::default_unet(&data, a.preset.as_deref())?,
                ModelKind::Dit => crate::cmd::data::default_dit(&data, a.preset.as_deref())?,
            };
            let mut cfg = TrainConfig::new(data, model, Method::ddpm_default());
            // defaults that train the MLP well on toy data within seconds
            cfg.lr = 2e-3;
            cfg.warmup_steps = 200;
            if let Some(p) = a.preset.as_deref() {
                crate::cmd::data::apply_preset(&mut cfg, p)?;
            }
            cfg
        }
    };
    if let Some(d) = &a.data {
        cfg.data = d.clone();
    }
    if a.class_cond {
        // the class count comes from the data's labels once they are loaded
        cfg.model.set_num_classes(Some(0));
    }
    if let Some(p) = a.p_uncond {
        if !a.class_cond && cfg.model.num_classes().is_none() {
            bail!("--p-uncond applies to class-conditional training (--class-cond)");
        }
        cfg.p_uncond = p;
    }
    if let Some(f) = a.super_res {
        if !matches!(cfg.model, ModelConfig::Unet(_)) {
            bail!("--super-res trains a U-Net: add --model unet (and a --preset for .npy data)");
        }
        let mut sr = cfg.super_res.unwrap_or(rediffuse_train::SuperResConfig::new(f));
        sr.factor = f;
        cfg.super_res = Some(sr);
    }
    if let Some(dir) = &a.latent {
        if cfg.super_res.is_some() {
            bail!("--latent and --super-res do not combine (super-resolution works in pixel space)");
        }
        // opened (and checked) in `train_in`, before the run folder is written
        cfg.latent = Some(rediffuse_train::latent::LatentConfig { autoencoder: dir.display().to_string() });
    }
    if let Some(s) = a.aug_max {
        let Some(sr) = &mut cfg.super_res else {
            bail!("--aug-max applies to super-resolution training (--super-res)");
        };
        sr.aug_max = s;
    }
    if a.hidden.is_some() || a.layers.is_some() {
        let ModelConfig::Mlp(m) = &mut cfg.model else {
            bail!("--hidden and --layers apply to --model mlp only");
        };
        if let Some(h) = a.hidden {
            m.hidden = positive("hidden", h as i64)?;
        }
        if let Some(l) = a.layers {
            m.layers = l;
        }
    }
    if a.width.is_some() || a.depth.is_some() || a.heads.is_some() || a.patch_size.is_some() {
        let ModelConfig::Dit(m) = &mut cfg.model else {
            bail!("--width, --depth, --heads and --patch-size apply to --model dit only");
        };
        if let Some(v) = a.width {
            m.width = v;
        }
        if let Some(v) = a.depth {
            m.depth = v;
        }
        if let Some(v) = a.heads {
            m.num_heads = v;
        }
        if let Some(v) = a.patch_size {
            m.patch_size = v;
        }
    }
    if let Some(m) = a.method {
        let same = matches!(
            (m, &cfg.method),
            (MethodKind::Ddpm, Method::Ddpm { .. }) | (MethodKind::Iddpm, Method::Iddpm { .. })
        );
        if !same {
            cfg.method = Method::preset(m.name()).with_context(|| format!("unknown method {}", m.name()))?;
        }
    }
    match &mut cfg.method {
        Method::Ddpm { schedule, timesteps, prediction, zero_terminal_snr } => {
            if let Some(s) = a.schedule {
                *schedule = schedule_of(s);
            }
            if let Some(t) = a.timesteps {
                *timesteps = t;
            }
            if let Some(p) = a.prediction {
                *prediction = prediction_of(p);
            }
            if a.zero_terminal_snr {
                *zero_terminal_snr = true;
            }
        }
        Method::Iddpm { .. } if a.zero_terminal_snr => {
            bail!("--zero-terminal-snr applies to --method ddpm only")
        }
        Method::Iddpm { schedule, timesteps, prediction, .. } => {
            if let Some(s) = a.schedule {
                *schedule = schedule_of(s);
            }
            if let Some(t) = a.timesteps {
                *timesteps = t;
            }
            if let Some(p) = a.prediction {
                *prediction = prediction_of(p);
            }
        }
        _ if a.schedule.is_some()
            || a.timesteps.is_some()
            || a.prediction.is_some()
            || a.zero_terminal_snr =>
        {
            bail!(
                "--schedule, --timesteps, --prediction and --zero-terminal-snr apply to --method ddpm \
                 (and the first three to iddpm) only"
            );
        }
        _ => {}
    }
    match &mut cfg.method {
        Method::Flow(f) => {
            if let Some(s) = a.flow_sigma_min {
                f.sigma_min = s;
            }
            if a.ot_coupling {
                f.coupling = rediffuse_train::config::Coupling::MinibatchOt;
            }
        }
        _ if a.flow_sigma_min.is_some() || a.ot_coupling => {
            bail!("--flow-sigma-min and --ot-coupling apply to --method flow")
        }
        _ => {}
    }
    match &mut cfg.method {
        Method::Cold(c) => {
            use rediffuse_core::degradation::Degradation;
            let size = match (a.blur_size, c.degradation) {
                (Some(s), _) => s,
                (None, Degradation::Blur { size }) => size,
                (None, _) => 2.0,
            };
            match a.degradation {
                Some(crate::args::DegradationKind::Blur) => c.degradation = Degradation::Blur { size },
                Some(crate::args::DegradationKind::Mask) => c.degradation = Degradation::Mask { seed: 0 },
                Some(crate::args::DegradationKind::Pixelate) => c.degradation = Degradation::Pixelate,
                None => {}
            }
            if let (Some(s), Degradation::Blur { .. }) = (a.blur_size, c.degradation) {
                c.degradation = Degradation::Blur { size: s };
            } else if a.blur_size.is_some() {
                bail!("--blur-size applies to --degradation blur");
            }
            if let Some(t) = a.cold_levels {
                c.levels = crate::io::positive("cold-levels", t)?;
            }
            if let Some(v) = a.cold_noise {
                c.noise = v;
            }
        }
        _ if a.degradation.is_some()
            || a.blur_size.is_some()
            || a.cold_levels.is_some()
            || a.cold_noise.is_some() =>
        {
            bail!("--degradation, --blur-size, --cold-levels and --cold-noise apply to --method cold")
        }
        _ => {}
    }
    match &mut cfg.method {
        Method::Consistency(c) => {
            if let Some(t) = &a.teacher {
                c.teacher = Some(t.display().to_string());
            }
            if let Some(n) = a.cm_steps {
                c.steps = n;
            }
            if a.pseudo_huber {
                c.loss = rediffuse_train::consistency::ConsistencyLoss::PseudoHuber;
            }
            if a.lognormal_index {
                c.index_sampling =
                    rediffuse_train::consistency::IndexSampling::Lognormal { p_mean: -1.1, p_std: 2.0 };
            }
        }
        _ if a.teacher.is_some() || a.cm_steps.is_some() || a.pseudo_huber || a.lognormal_index => {
            bail!("--teacher, --cm-steps, --pseudo-huber and --lognormal-index apply to --method consistency")
        }
        _ => {}
    }
    crate::cmd::iddpm::configure(&mut cfg, a.importance_sampling)?;
    a.optim.apply_to_run(&mut cfg)?;
    if let Some(v) = a.grad_clip {
        let v = finite("grad-clip", v, false)?;
        cfg.grad_clip = if v == 0.0 { None } else { Some(v) };
    }
    if let Some(v) = a.ema_decay {
        if !(0.0..1.0).contains(&v) {
            bail!("--ema-decay must be in [0, 1), got {v}");
        }
        cfg.ema_decay = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.n_train {
        cfg.n_train = Some(v);
    }
    if let Some(v) = a.log_every {
        cfg.log_every = v;
    }
    if let Some(v) = a.checkpoint_every {
        cfg.checkpoint_every = v;
    }
    cfg.eval = crate::cmd::train_eval::configure(a, cfg.eval.take())?;
    Ok(cfg)
}

/// Draws the progress bar and warns of skipped steps.
pub struct BarObserver {
    pub bar: indicatif::ProgressBar,
    /// Skipped steps warned about so far (the first few are listed, then a count at the end).
    pub skipped: u64,
}

/// Skipped steps listed one by one before the warnings stop.
const SKIP_WARNINGS: u64 = 5;

impl TrainObserver for BarObserver {
    fn on_eval_start(&mut self, step: u64) {
        self.bar.set_message(format!("step {step}: sampling for FID/KID"));
    }
    fn on_skipped_step(&mut self, step: u64, value: f64, streak: u64) {
        self.skipped += 1;
        if self.skipped <= SKIP_WARNINGS {
            let more = if self.skipped == SKIP_WARNINGS {
                " (further skipped steps are counted in metrics.jsonl)"
            } else {
                ""
            };
            self.bar.suspend(|| {
                eprintln!("warning: step {step}: non-finite loss or gradient ({value}); the update was skipped ({streak} in a row){more}")
            });
        }
    }
    fn on_step(&mut self, r: &StepReport) {
        self.bar.set_position(r.step);
        if let Some(loss) = r.loss {
            self.bar.set_message(format!("loss {loss:.4} lr {:.2e}", r.lr));
        }
    }
}

/// Train (or resume) in `out` and return the summary line.
/// `infer_dim`: set an MLP's `data_dim` from the data (when the model came from flags).
pub fn train_in(
    out: &Path,
    cfg: Option<TrainConfig>,
    extra_steps: Option<usize>,
    quiet: bool,
    infer_dim: bool,
) -> Result<()> {
    train_in_with(out, cfg, extra_steps, None, quiet, infer_dim)
}

/// [`train_in`]; `eval_args`: the `--eval-*` flags of a resumed run (they update its settings).
fn train_in_with(
    out: &Path,
    cfg: Option<TrainConfig>,
    extra_steps: Option<usize>,
    eval_args: Option<&TrainArgs>,
    quiet: bool,
    infer_dim: bool,
) -> Result<()> {
    let device = Device::Cpu;
    // the evaluator (reference data, feature network) is set up before the run folder is
    // written, so a bad --eval-* setting leaves nothing behind
    let (mut trainer, evaluator) = match cfg {
        Some(mut cfg) => {
            let (data, labels) = load_training_set(&cfg, &device)?;
            let codec = latent_codec(&cfg, None, &device)?;
            let data = encode_latents(codec.as_ref(), data, &cfg, quiet)?;
            if let (Some(0), Some(l)) = (cfg.model.num_classes(), &labels) {
                // `--class-cond`: as many classes as the data set has
                cfg.model.set_num_classes(Some(count_classes(l)?));
            }
            match (infer_dim, &mut cfg.model, &data.dims()[1..]) {
                (true, ModelConfig::Mlp(m), shape) => {
                    let shape = MlpConfig::for_shape(shape);
                    (m.data_dim, m.sample_shape) = (shape.data_dim, shape.sample_shape);
                }
                (true, ModelConfig::Unet(u), &[c, h, w]) if h == w => {
                    // a preset's U-Net on images of another size or channel count (e.g. a .npy)
                    (u.image_size, u.in_channels, u.out_channels) = (h, c, c);
                }
                (true, ModelConfig::Dit(m), &[c, h, w]) if h == w => {
                    (m.image_size, m.channels) = (h, c);
                }
                _ => {}
            }
            if let (Some(_), ModelConfig::Unet(u)) = (&cfg.super_res, &mut cfg.model) {
                // the image, then the augmented low-res image and its level
                u.in_channels = u.out_channels + rediffuse_core::superres::cond_channels(u.out_channels);
            }
            cfg.validate()?;
            if cfg.couplings.is_some() {
                bail!("fixed couplings come from `rediffuse reflow`, not from a training config");
            }
            let evaluator = crate::cmd::train_eval::FidKidEval::new(&cfg, codec, &device)?;
            let init = consistency_init(&cfg)?;
            let mut trainer = Trainer::create_with_labels(out, cfg, data, labels)?;
            if let Some(l) = &trainer.config().latent {
                rediffuse_train::latent::install_vae(Path::new(&l.autoencoder), out)
                    .context("copying the autoencoder into the run")?;
            }
            if let Some(file) = init {
                // consistency distillation starts from the teacher's weights (same network)
                trainer.init_from(rediffuse_train::checkpoint::read_tensors(&file, &device)?, &file)?;
            }
            (trainer, evaluator)
        }
        None => {
            let mut cfg = TrainConfig::load(&out.join("config.toml"))
                .with_context(|| format!("{} is not a run folder to resume", out.display()))?;
            if let Some(a) = eval_args {
                cfg.eval = crate::cmd::train_eval::configure(a, cfg.eval.take())?;
            }
            let (data, labels) = load_training_set(&cfg, &device)?;
            let codec = latent_codec(&cfg, Some(out), &device)?;
            let data = encode_latents(codec.as_ref(), data, &cfg, quiet)?;
            let evaluator = crate::cmd::train_eval::FidKidEval::new(&cfg, codec, &device)?;
            let mut trainer = Trainer::resume_with_labels(out, data, labels)?;
            if let Some(path) = &cfg.couplings {
                let z = crate::cmd::data::load(path, None, cfg.seed, &device)
                    .with_context(|| format!("loading the run's couplings `{path}`"))?;
                trainer = trainer.with_couplings(z)?;
            }
            if eval_args.is_some() {
                trainer.set_eval(cfg.eval)?;
            }
            (trainer, evaluator)
        }
    };
    if let Some(steps) = extra_steps {
        trainer.set_total_steps(steps)?;
    }
    drive(out, trainer, evaluator, quiet)
}

/// A latent run's autoencoder: the folder it is created from (`run` = `None`) or the run's
/// `vae/` copy (resumed runs); `None` for pixel runs.
fn latent_codec(
    cfg: &TrainConfig,
    run: Option<&Path>,
    device: &Device,
) -> Result<Option<rediffuse_train::latent::LatentCodec>> {
    use rediffuse_train::latent::LatentCodec;
    let Some(l) = &cfg.latent else { return Ok(None) };
    Ok(Some(match run {
        None => LatentCodec::open(Path::new(&l.autoencoder), device)
            .with_context(|| format!("--latent {}: not an autoencoder folder", l.autoencoder))?,
        Some(run) => LatentCodec::of_run(run, device)
            .with_context(|| format!("loading the autoencoder of latent run {}", run.display()))?,
    }))
}

/// A latent run's training set: the data's latents z = s·(μ(x) − shift) (pixel runs: `data`).
fn encode_latents(
    codec: Option<&rediffuse_train::latent::LatentCodec>,
    data: Tensor,
    cfg: &TrainConfig,
    quiet: bool,
) -> Result<Tensor> {
    let Some(codec) = codec else { return Ok(data) };
    let shape =
        codec.latent_shape(&data.dims()[1..]).with_context(|| format!("--latent with `{}`", cfg.data))?;
    let start = std::time::Instant::now();
    let z = codec.encode(&data).context("encoding the training set")?;
    if !quiet {
        eprintln!(
            "encoded {} images {:?} to latents {shape:?} (scale {:.4}) in {:.1} s",
            data.dim(0)?,
            &data.dims()[1..],
            codec.scaling_factor(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(z)
}

/// The teacher's EMA weights file when a consistency-distillation student has the teacher's network.
fn consistency_init(cfg: &TrainConfig) -> Result<Option<std::path::PathBuf>> {
    let Method::Consistency(c) = &cfg.method else { return Ok(None) };
    let Some(t) = &c.teacher else { return Ok(None) };
    let dir = Path::new(t);
    let teacher = TrainConfig::load(&dir.join("config.toml"))
        .with_context(|| format!("--teacher {t} is not a run folder"))?;
    if teacher.model != cfg.model {
        return Ok(None);
    }
    Ok(Some(rediffuse_train::checkpoint::find_checkpoint(dir)?.join(rediffuse_train::checkpoint::EMA_FILE)))
}

/// Run `trainer` to its total steps with a progress bar, then draw the loss (and evaluation)
/// curves into `out` and print a summary.
pub fn drive(
    out: &Path,
    mut trainer: Trainer,
    mut evaluator: Option<crate::cmd::train_eval::FidKidEval>,
    quiet: bool,
) -> Result<()> {
    let cfg = trainer.config().clone();
    if !quiet {
        eprintln!(
            "training {} ({} parameters) on {} for {} steps (batch {}, lr {}) into {}",
            cfg.model.name(),
            trainer.param_count(),
            cfg.data,
            cfg.steps,
            cfg.batch_size,
            cfg.lr,
            out.display()
        );
    }
    let bar = progress::bar(cfg.steps as u64, quiet, "train");
    bar.set_position(trainer.step());
    let mut obs = BarObserver { bar, skipped: 0 };
    let summary =
        trainer.run_with(&mut obs, evaluator.as_mut().map(|e| e as &mut dyn rediffuse_train::PeriodicEval));
    obs.bar.finish();
    let summary = match summary {
        Err(
            e @ (rediffuse_train::TrainError::NonFiniteLoss { .. }
            | rediffuse_train::TrainError::NonFiniteWeights { .. }),
        ) => bail!(
            "{e}\nhint: lower the learning rate (edit lr in {}) or clip gradients (grad_clip), \
             then continue from that checkpoint with `rediffuse train --resume {}`",
            out.join("config.toml").display(),
            out.display()
        ),
        r => r?,
    };
    if obs.skipped > SKIP_WARNINGS {
        eprintln!("warning: {} steps were skipped for a non-finite loss or gradient", obs.skipped);
    }
    let plot = out.join("loss.png");
    if let Err(e) = crate::cmd::eval::loss_plot(out, &plot) {
        eprintln!("warning: could not draw the loss curve: {e:#}");
    }
    if cfg.eval.is_some() {
        match crate::cmd::train_eval::eval_plots(out) {
            Ok(files) if !quiet => {
                if let Some(last) = rediffuse_train::read_metrics(&out.join("metrics.jsonl"))?
                    .iter()
                    .rev()
                    .find(|r| r.eval.contains_key("fid"))
                {
                    eprintln!(
                        "last evaluation (step {}): FID {:.4}, KID {:.5} ± {:.5}; plots {}",
                        last.step,
                        last.eval["fid"],
                        last.eval.get("kid").copied().unwrap_or(f64::NAN),
                        last.eval.get("kid_std").copied().unwrap_or(f64::NAN),
                        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                    );
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: could not draw the evaluation curves: {e:#}"),
        }
    }
    if !quiet {
        eprintln!(
            "done: step {} of {}, final loss {}, {:.1} s; loss curve {}",
            summary.step,
            summary.total,
            summary.last_loss.map_or("n/a".to_string(), |l| format!("{l:.5}")),
            summary.elapsed_s,
            plot.display()
        );
    }
    Ok(())
}

pub fn run(a: TrainArgs) -> Result<()> {
    if a.resume {
        let steps = a.optim.steps.map(|v| positive("steps", v)).transpose()?;
        return train_in_with(&a.out, None, steps, Some(&a), a.quiet, false);
    }
    let cfg = build_config(&a)?;
    train_in(&a.out, Some(cfg), None, a.quiet, a.config.is_none())
}
