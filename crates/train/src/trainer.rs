//! The training loop: the method's objective (DDPM L_simple, iDDPM L_hybrid / L_vlb, NCSN / score-SDE
//! DSM, EDM; see [`crate::objective`]) with AdamW, EMA, warm-up, clipping, metrics and exactly
//! resumable checkpoints (iDDPM's importance-sampler history included).

use crate::batcher::Batcher;
use crate::checkpoint::{
    assign_params, find_checkpoint, param_tensors, read_state, read_tensors, write_checkpoint,
    CheckpointTensors, TrainState, CONFIG_FILE, EMA_FILE, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE,
    STATE_FILE, STATE_FORMAT,
};
use crate::config::TrainConfig;
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::fsutil::write_atomic;
use crate::iddpm::ImportanceSampler;
use crate::init::{sorted_params, SeededInit};
use crate::lr::{clip_scale, global_grad_norm, warmup_lr};
use crate::metrics::{MetricRecord, MetricsLog};
use crate::objective::Objective;
use crate::optim::{AdamW, AdamWConfig};
use crate::periodic::{eval_error, PeriodicEval};
use crate::rng::derive_rng;
use crate::run::LoadedRun;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rediffuse_core::DiffusionSchedule;
use rediffuse_nn::DiffusionNet;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Progress of one optimiser step, handed to [`TrainObserver::on_step`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Steps completed (1-based index of the step just taken).
    pub step: u64,
    /// Total steps of the run.
    pub total: u64,
    /// Mean loss since the previous log step; `Some` only on log steps (`step % log_every == 0`
    /// and the last step). (Each step's loss is read back once to check that it is finite.)
    pub loss: Option<f64>,
    /// Learning rate used by this step.
    pub lr: f64,
    /// Training seconds so far, including earlier sessions of a resumed run.
    pub elapsed_s: f64,
    /// Throughput of this session.
    pub steps_per_sec: f64,
}

/// Receives progress; the CLI implements this to draw a progress bar.
pub trait TrainObserver {
    fn on_step(&mut self, report: &StepReport) {
        let _ = report;
    }
    /// Called before the sample-quality evaluation of `step` starts (it may take a while).
    fn on_eval_start(&mut self, step: u64) {
        let _ = step;
    }
    /// Called after a checkpoint for `step` has been written.
    fn on_checkpoint(&mut self, step: u64) {
        let _ = step;
    }
    /// Polled before each step; `true` ends training after writing a checkpoint (e.g. on Ctrl-C).
    fn should_stop(&mut self) -> bool {
        false
    }
    /// Called when `step` was skipped because its loss or gradient norm was NaN or infinite
    /// (`value` is the offending number); `streak` counts the skipped steps in a row.
    fn on_skipped_step(&mut self, step: u64, value: f64, streak: u64) {
        let _ = (step, value, streak);
    }
}

/// Consecutive skipped (non-finite) steps after which training stops with
/// [`TrainError::NonFiniteLoss`]; the last checkpoint on disk, written before the streak, is kept.
pub const MAX_NONFINITE_STREAK: u64 = 10;

/// Outcome of one [`Trainer::train_step`].
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// The batch loss (a scalar tensor).
    pub loss: Tensor,
    /// Learning rate of the step.
    pub lr: f64,
    /// `Some(value)` when the loss or the gradient norm was `value`, NaN or infinite, and the
    /// update was skipped (no optimiser, EMA or target update; the step still counts, and its
    /// batch and random draws are consumed, so the run stays reproducible).
    pub skipped: Option<f64>,
}

/// An observer that ignores everything.
pub struct NoObserver;
impl TrainObserver for NoObserver {}

/// Outcome of [`Trainer::run`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSummary {
    pub step: u64,
    pub total: u64,
    /// The last logged mean loss.
    pub last_loss: Option<f64>,
    pub elapsed_s: f64,
    /// `true` when the observer asked to stop before `total` steps.
    pub stopped_early: bool,
}

/// Trains a network on an in-memory data tensor `[N, …]` inside a run folder
/// (layout in [`crate::checkpoint`]).
pub struct Trainer {
    dir: PathBuf,
    config: TrainConfig,
    schedule: DiffusionSchedule,
    objective: Objective,
    data: Tensor,
    /// `[N]` u32 class labels of `data` (class-conditional models only).
    labels: Option<Tensor>,
    /// Super-resolution runs: the upsampled low-resolution version of every row of `data`.
    lowres: Option<Tensor>,
    /// Reflow: the noise each row of `data` is coupled with (flow matching on fixed pairs).
    couplings: Option<Tensor>,
    /// Progressive distillation: the frozen teacher (the loss replaces the method's objective).
    teacher: Option<crate::distill::Teacher>,
    /// Consistency models: the CD teacher and the target network θ⁻ (an EMA of the weights).
    consistency: Option<(crate::consistency::ConsistencyState, Ema)>,
    params: Vec<(String, Var)>,
    net: Box<dyn DiffusionNet>,
    opt: AdamW,
    ema: Ema,
    rng: ChaCha8Rng,
    batcher: Batcher,
    /// iDDPM's timestep sampler (None unless importance sampling is on).
    sampler: Option<ImportanceSampler>,
    step: u64,
    loss_acc: Option<Tensor>,
    loss_count: u64,
    last_loss: Option<f64>,
    metrics: MetricsLog,
    elapsed_before: f64,
    last_checkpoint: Option<u64>,
    idx_buf: Vec<u32>,
    /// Steps skipped for a non-finite loss: in all, since the last metrics record, in a row.
    skipped_total: u64,
    skipped_since_log: u64,
    nonfinite_streak: u64,
}

struct Built {
    params: Vec<(String, Var)>,
    net: Box<dyn DiffusionNet>,
    opt: AdamW,
    ema: Ema,
}

fn build(config: &TrainConfig, device: &Device, seeded: bool) -> Result<Built> {
    let varmap = VarMap::new();
    let vb = if seeded {
        SeededInit::var_builder(&varmap, config.seed, device)
    } else {
        SeededInit::zeros_var_builder(&varmap, device)
    };
    let net = config.model.build(vb)?;
    let params = sorted_params(&varmap);
    let opt = AdamW::new(
        params.clone(),
        AdamWConfig {
            beta1: config.adam_beta1,
            beta2: config.adam_beta2,
            eps: config.adam_eps,
            weight_decay: config.weight_decay,
        },
    )?;
    let ema = Ema::new(&params, config.ema_decay, config.ema_warmup)?;
    Ok(Built { params, net, opt, ema })
}

/// Validate the data tensor against the model and return it as contiguous f32.
fn check_data(config: &TrainConfig, data: Tensor) -> Result<Tensor> {
    if data.rank() < 2 {
        return Err(TrainError::Data(format!("expected a tensor [N, …], got shape {:?}", data.dims())));
    }
    if data.dim(0)? == 0 {
        return Err(TrainError::Data("the data set is empty".into()));
    }
    config.model.check_data_shape(&data.dims()[1..]).map_err(|e| TrainError::Data(e.to_string()))?;
    if matches!(config.method, crate::config::Method::Cold(_)) && data.rank() != 4 {
        return Err(TrainError::Data(format!(
            "cold diffusion degrades images [N, C, H, W], got data of shape {:?}",
            data.dims()
        )));
    }
    let data = data.to_dtype(DType::F32)?.contiguous()?;
    let total = data.sum_all()?.to_scalar::<f32>()?;
    if !total.is_finite() {
        return Err(TrainError::Data("the data contain NaN or infinite values".into()));
    }
    Ok(data)
}

/// The labels of a class-conditional run: `[N]` integers in `0..num_classes` (as u32); none for
/// an unconditional one.
fn check_labels(config: &TrainConfig, data: &Tensor, labels: Option<Tensor>) -> Result<Option<Tensor>> {
    match (config.model.num_classes(), labels) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(TrainError::Data("class labels given for an unconditional model".into())),
        (Some(_), None) => {
            Err(TrainError::Data("the model is class-conditional but the data set has no labels".into()))
        }
        (Some(k), Some(l)) => {
            let n = data.dim(0)?;
            if l.dims() != [n] {
                return Err(TrainError::Data(format!("{n} examples but labels of shape {:?}", l.dims())));
            }
            let v: Vec<i64> = l.to_dtype(candle_core::DType::I64)?.to_vec1()?;
            if let Some(bad) = v.iter().find(|&&y| y < 0 || y as usize >= k) {
                return Err(TrainError::Data(format!("label {bad} out of range 0..{k}")));
            }
            Ok(Some(Tensor::from_vec(v.iter().map(|&y| y as u32).collect::<Vec<_>>(), n, data.device())?))
        }
    }
}

impl Trainer {
    /// Start a new run in `dir`, which must not exist or be an empty directory.
    /// Writes `config.toml` and an empty `metrics.jsonl`.
    pub fn create(dir: &Path, config: TrainConfig, data: Tensor) -> Result<Self> {
        Self::create_with_labels(dir, config, data, None)
    }

    /// [`Trainer::create`] with the class labels of `data` (`[N]` integers in `0..num_classes`),
    /// which a class-conditional model needs.
    pub fn create_with_labels(
        dir: &Path,
        config: TrainConfig,
        data: Tensor,
        labels: Option<Tensor>,
    ) -> Result<Self> {
        config.validate()?;
        let data = check_data(&config, data)?;
        let labels = check_labels(&config, &data, labels)?;
        let lowres = config.super_res.map(|sr| sr.upsampled_lowres(&data)).transpose()?;
        let teacher = crate::distill::Teacher::load(&config, data.device())?;
        let cm_state = crate::consistency::ConsistencyState::load(&config, data.device())?;
        if dir.exists() {
            let empty =
                dir.is_dir() && std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?.next().is_none();
            if !empty {
                return Err(TrainError::RunDirNotEmpty(dir.to_path_buf()));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        write_atomic(&dir.join(CONFIG_FILE), config.to_toml_string()?.as_bytes())?;
        let metrics = MetricsLog::create(&dir.join(METRICS_FILE))?;
        let Built { params, net, opt, ema } = build(&config, data.device(), true)?;
        let consistency =
            cm_state.map(|s| Ok::<_, TrainError>((s, Ema::new(&params, 0.0, false)?))).transpose()?;
        let n = data.dim(0)?;
        let objective = Objective::new(&config.method)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            schedule: config.method.schedule()?,
            sampler: objective.new_sampler()?,
            objective,
            rng: derive_rng(config.seed, "train"),
            batcher: Batcher::new(n, config.seed),
            config,
            data,
            labels,
            lowres,
            couplings: None,
            teacher,
            consistency,
            params,
            net,
            opt,
            ema,
            step: 0,
            loss_acc: None,
            loss_count: 0,
            last_loss: None,
            metrics,
            elapsed_before: 0.0,
            last_checkpoint: None,
            idx_buf: Vec::new(),
            skipped_total: 0,
            skipped_since_log: 0,
            nonfinite_streak: 0,
        })
    }

    /// Continue the run in `dir` from its latest checkpoint, on the same data (`[N, …]`, same N).
    /// Continuing reproduces the uninterrupted run exactly.
    pub fn resume(dir: &Path, data: Tensor) -> Result<Self> {
        Self::resume_with_labels(dir, data, None)
    }

    /// [`Trainer::resume`] with the class labels of `data` (class-conditional runs).
    pub fn resume_with_labels(dir: &Path, data: Tensor, labels: Option<Tensor>) -> Result<Self> {
        let config = TrainConfig::load(&dir.join(CONFIG_FILE))?;
        let data = check_data(&config, data)?;
        let labels = check_labels(&config, &data, labels)?;
        let lowres = config.super_res.map(|sr| sr.upsampled_lowres(&data)).transpose()?;
        let teacher = crate::distill::Teacher::load(&config, data.device())?;
        let cm_state = crate::consistency::ConsistencyState::load(&config, data.device())?;
        let ckpt = find_checkpoint(dir)?;
        let state = read_state(&ckpt.join(STATE_FILE))?;
        let n = data.dim(0)?;
        if state.data_len != n {
            return Err(TrainError::Data(format!(
                "the run was trained on {} examples but {n} were given",
                state.data_len
            )));
        }
        let dev = data.device().clone();
        let Built { params, net, mut opt, mut ema } = build(&config, &dev, false)?;
        let model_path = ckpt.join(MODEL_FILE);
        assign_params(&params, read_tensors(&model_path, &dev)?, &model_path)?;
        let ema_path = ckpt.join(EMA_FILE);
        ema.load(read_tensors(&ema_path, &dev)?, state.ema_updates, &ema_path)?;
        let opt_path = ckpt.join(OPTIMIZER_FILE);
        opt.load_state_tensors(read_tensors(&opt_path, &dev)?, &opt_path)?;
        let consistency = match cm_state {
            Some(s) => {
                let path = ckpt.join(crate::checkpoint::TARGET_FILE);
                let mut target = Ema::new(&params, 0.0, false)?;
                target.load(read_tensors(&path, &dev)?, state.step, &path)?;
                Some((s, target))
            }
            None => None,
        };
        if opt.step_count() + state.skipped_steps != state.step {
            return Err(TrainError::corrupt(
                &opt_path,
                format!(
                    "optimizer is at step {} but state.json at step {} ({} skipped)",
                    opt.step_count(),
                    state.step,
                    state.skipped_steps
                ),
            ));
        }
        let loss_acc =
            if state.loss_count > 0 { Some(Tensor::new(state.loss_sum as f32, &dev)?) } else { None };
        let objective = Objective::new(&config.method)?;
        let state_path = ckpt.join(STATE_FILE);
        let sampler = match (objective.new_sampler()?, state.importance_sampler) {
            (None, None) => None,
            (Some(fresh), Some(saved)) if saved.timesteps() == fresh.timesteps() => Some(saved),
            (Some(_), Some(saved)) => {
                return Err(TrainError::corrupt(
                    &state_path,
                    format!(
                        "importance sampler over {} timesteps for a different schedule",
                        saved.timesteps()
                    ),
                ))
            }
            (Some(_), None) => {
                return Err(TrainError::corrupt(
                    &state_path,
                    "the run samples timesteps by importance but the checkpoint has no sampler state",
                ))
            }
            (None, Some(_)) => {
                return Err(TrainError::corrupt(
                    &state_path,
                    "the checkpoint has an importance sampler but the run's config does not use one",
                ))
            }
        };
        let metrics = MetricsLog::resume(&dir.join(METRICS_FILE), state.step)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            schedule: config.method.schedule()?,
            objective,
            sampler,
            rng: state.rng,
            batcher: Batcher::from_state(n, config.seed, state.batcher),
            config,
            data,
            labels,
            lowres,
            couplings: None,
            teacher,
            consistency,
            params,
            net,
            opt,
            ema,
            step: state.step,
            loss_acc,
            loss_count: state.loss_count,
            last_loss: None,
            metrics,
            elapsed_before: state.elapsed_s,
            last_checkpoint: Some(state.step),
            idx_buf: Vec::new(),
            skipped_total: state.skipped_steps,
            skipped_since_log: state.skipped_since_log,
            nonfinite_streak: 0,
        })
    }

    /// Train a flow on fixed (noise, data) pairs (reflow, Liu et al. 2023): row i of the data is
    /// coupled with row i of `noise` (same shape) instead of fresh noise. Flow runs only; a
    /// resumed reflow run needs the same couplings again.
    pub fn with_couplings(mut self, noise: Tensor) -> Result<Self> {
        if !matches!(self.config.method, crate::config::Method::Flow(_)) {
            return Err(crate::objective::couplings_error());
        }
        if noise.dims() != self.data.dims() {
            return Err(TrainError::Data(format!(
                "couplings of shape {:?} for data of shape {:?}",
                noise.dims(),
                self.data.dims()
            )));
        }
        let noise = noise.to_dtype(DType::F32)?.contiguous()?;
        if !noise.sum_all()?.to_scalar::<f32>()?.is_finite() {
            return Err(TrainError::Data("the couplings contain NaN or infinite values".into()));
        }
        self.couplings = Some(noise);
        Ok(self)
    }

    /// Start from given weights instead of the seeded initialisation (e.g. reflow from the previous
    /// flow, as Liu et al. do): every parameter is set from `weights` (names and shapes must match)
    /// and the EMA restarts from them. Only before the first step.
    pub fn init_from(&mut self, weights: HashMap<String, Tensor>, origin: &Path) -> Result<()> {
        if self.step != 0 {
            return Err(TrainError::invalid("init", "weights can only be set before the first step"));
        }
        let dev = self.data.device().clone();
        let weights = weights
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_device(&dev)?.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        assign_params(&self.params, weights, origin)?;
        self.ema = Ema::new(&self.params, self.config.ema_decay, self.config.ema_warmup)?;
        if let Some((_, target)) = &mut self.consistency {
            *target = Ema::new(&self.params, 0.0, false)?;
        }
        Ok(())
    }

    /// Change the total number of steps (e.g. to train a finished run longer); rewrites `config.toml`.
    pub fn set_total_steps(&mut self, steps: usize) -> Result<()> {
        let mut c = self.config.clone();
        c.steps = steps;
        c.validate()?;
        write_atomic(&self.dir.join(CONFIG_FILE), c.to_toml_string()?.as_bytes())?;
        self.config = c;
        Ok(())
    }

    /// Change the sample-quality evaluation settings (e.g. when resuming); rewrites `config.toml`.
    pub fn set_eval(&mut self, eval: Option<crate::PeriodicEvalConfig>) -> Result<()> {
        let mut c = self.config.clone();
        c.eval = eval;
        c.validate()?;
        write_atomic(&self.dir.join(CONFIG_FILE), c.to_toml_string()?.as_bytes())?;
        self.config = c;
        Ok(())
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    pub fn run_dir(&self) -> &Path {
        &self.dir
    }
    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }
    /// The discrete schedule of the method (for continuous methods: the schedule DDPM/DDIM
    /// samplers see them through, see `Method::schedule`).
    pub fn schedule(&self) -> &DiffusionSchedule {
        &self.schedule
    }
    pub fn objective(&self) -> &Objective {
        &self.objective
    }
    pub fn net(&self) -> &dyn DiffusionNet {
        self.net.as_ref()
    }
    /// iDDPM's importance sampler (its loss history), when the run uses one.
    pub fn importance_sampler(&self) -> Option<&ImportanceSampler> {
        self.sampler.as_ref()
    }
    /// The trainable parameters, sorted by name.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }
    pub fn param_count(&self) -> usize {
        self.params.iter().map(|(_, p)| p.elem_count()).sum()
    }

    /// One optimiser step (DDPM Alg. 1 for DDPM; the same shape for every method): x₀ from the
    /// shuffled data, the method's noise level and noise from the run's generator, loss =
    /// [`Objective::batch_loss`] (the batch mean of the per-sample loss; for iDDPM weighted by the
    /// importance weights, updating the sampler's history). A step whose loss or gradient norm is
    /// NaN or infinite changes no weights ([`StepOutcome::skipped`]).
    pub fn train_step(&mut self) -> Result<StepOutcome> {
        let b = self.config.batch_size;
        let dev = self.data.device().clone();
        self.batcher.next_batch(b, &mut self.idx_buf);
        let idx = Tensor::from_slice(&self.idx_buf, b, &dev)?;
        let x0 = self.data.index_select(&idx, 0)?;
        // class-conditional: the batch's labels, each replaced by the null label with probability
        // p_uncond (one uniform per sample from the run's generator, before the objective's draws)
        let labels = match (&self.labels, self.config.model.num_classes()) {
            (Some(all), Some(k)) => {
                let mut y: Vec<u32> = all.index_select(&idx, 0)?.to_vec1()?;
                for v in y.iter_mut() {
                    if self.rng.random::<f64>() < self.config.p_uncond {
                        *v = k as u32;
                    }
                }
                Some(Tensor::from_vec(y, b, &dev)?)
            }
            _ => None,
        };
        // super-resolution: the batch's low-res conditioning, augmented (levels, then noise, from
        // the run's generator, before the objective's draws)
        let conditioned = match (&self.lowres, &self.config.super_res) {
            (Some(up), Some(sr)) => Some(rediffuse_nn::ConditionedNet {
                net: self.net.as_ref(),
                cond: sr.training_condition(&up.index_select(&idx, 0)?, &mut self.rng)?,
            }),
            _ => None,
        };
        let net: &dyn DiffusionNet = match &conditioned {
            Some(c) => c,
            None => self.net.as_ref(),
        };
        let noise = self.couplings.as_ref().map(|z| z.index_select(&idx, 0)).transpose()?;
        let k = self.step + 1;
        let loss = match (&self.teacher, &self.consistency, &self.config.method) {
            (Some(t), _, _) => t.loss_per_sample(&self.config, net, &x0, &mut self.rng)?.mean_all()?,
            (None, Some((state, target)), crate::config::Method::Consistency(c)) => state
                .loss_per_sample(&self.config, c, net, &target.tensors(), &x0, self.step, &mut self.rng)?
                .mean_all()?,
            _ => self.objective.batch_loss_paired(
                net,
                &x0,
                labels.as_ref(),
                noise.as_ref(),
                &mut self.rng,
                self.sampler.as_mut(),
            )?,
        };
        let lr = warmup_lr(self.config.lr, self.config.warmup_steps, k);
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            self.step = k;
            return Ok(StepOutcome { loss: loss.detach(), lr, skipped: Some(value) });
        }
        let grads = loss.backward()?;
        let norm = global_grad_norm(&grads, &self.params)?;
        if !norm.is_finite() {
            self.step = k;
            return Ok(StepOutcome { loss: loss.detach(), lr, skipped: Some(norm) });
        }
        let scale = match self.config.grad_clip {
            Some(c) => clip_scale(norm, c),
            None => 1.0,
        };
        self.opt.step(&grads, lr, scale)?;
        self.ema.update(&self.params)?;
        if let (Some((_, target)), crate::config::Method::Consistency(c)) =
            (&mut self.consistency, &self.config.method)
        {
            target.update_with_decay(&self.params, c.target_decay(self.step, self.config.steps as u64))?;
        }
        self.step = k;
        Ok(StepOutcome { loss: loss.detach(), lr, skipped: None })
    }

    /// Train until `config.steps` (or until the observer asks to stop), logging every
    /// `log_every` steps, checkpointing every `checkpoint_every` steps and at the end.
    pub fn run(&mut self, observer: &mut dyn TrainObserver) -> Result<TrainSummary> {
        self.run_with(observer, None)
    }

    /// [`Trainer::run`], and with `evaluator` and a `config.eval`, the evaluator's metrics of the
    /// EMA weights at every evaluation step ([`crate::PeriodicEvalConfig::is_eval_step`]), logged
    /// in that step's `metrics.jsonl` record together with `eval_s` (the evaluation's seconds,
    /// which `time_s` does not count). Evaluations draw no randomness from the run, so a run
    /// trains identically with or without them.
    pub fn run_with(
        &mut self,
        observer: &mut dyn TrainObserver,
        mut evaluator: Option<&mut dyn PeriodicEval>,
    ) -> Result<TrainSummary> {
        let total = self.config.steps as u64;
        let (log_every, ckpt_every) = (self.config.log_every as u64, self.config.checkpoint_every as u64);
        let eval_cfg = self.config.eval.clone().filter(|_| evaluator.is_some());
        let session = Instant::now();
        let mut eval_time = 0.0;
        let first_step = self.step;
        let mut stopped_early = false;
        while self.step < total {
            if observer.should_stop() {
                stopped_early = true;
                break;
            }
            let StepOutcome { loss, lr, skipped } = self.train_step()?;
            match skipped {
                Some(value) => {
                    self.skipped_total += 1;
                    self.skipped_since_log += 1;
                    self.nonfinite_streak += 1;
                    observer.on_skipped_step(self.step, value, self.nonfinite_streak);
                    if self.nonfinite_streak >= MAX_NONFINITE_STREAK {
                        return Err(TrainError::NonFiniteLoss {
                            step: self.step,
                            loss: value,
                            streak: self.nonfinite_streak,
                            checkpoint: self.last_checkpoint,
                        });
                    }
                }
                None => {
                    self.nonfinite_streak = 0;
                    self.loss_acc = Some(match self.loss_acc.take() {
                        Some(acc) => (acc + loss)?,
                        None => loss,
                    });
                    self.loss_count += 1;
                }
            }
            let train_time = session.elapsed().as_secs_f64() - eval_time;
            let elapsed_s = self.elapsed_before + train_time;
            let mut extra = BTreeMap::new();
            if let (Some(cfg), Some(ev)) = (&eval_cfg, evaluator.as_mut()) {
                if cfg.is_eval_step(self.step, total) {
                    observer.on_eval_start(self.step);
                    let t0 = Instant::now();
                    let model = self.ema_run()?;
                    let values = ev.evaluate(&model).map_err(|e| eval_error(self.step, e))?;
                    extra.extend(values.into_iter().filter(|(_, v)| v.is_finite()));
                    let dt = t0.elapsed().as_secs_f64();
                    extra.insert("eval_s".into(), dt);
                    eval_time += dt;
                }
            }
            let mut reported = None;
            if self.step.is_multiple_of(log_every) || self.step == total || !extra.is_empty() {
                reported = self.flush_loss(lr, elapsed_s, extra)?;
            }
            let done = (self.step - first_step) as f64;
            observer.on_step(&StepReport {
                step: self.step,
                total,
                loss: reported,
                lr,
                elapsed_s,
                steps_per_sec: done / train_time.max(1e-9),
            });
            // during a streak of skipped steps the weights are suspect: the checkpoint waits for
            // the next good step's checkpoint step
            if self.step.is_multiple_of(ckpt_every) && self.step < total && self.nonfinite_streak == 0 {
                self.save_checkpoint_at(elapsed_s)?;
                observer.on_checkpoint(self.step);
            }
        }
        let elapsed_s = self.elapsed_before + session.elapsed().as_secs_f64() - eval_time;
        if self.last_checkpoint != Some(self.step) {
            self.save_checkpoint_at(elapsed_s)?;
            observer.on_checkpoint(self.step);
        }
        self.elapsed_before = elapsed_s;
        Ok(TrainSummary { step: self.step, total, last_loss: self.last_loss, elapsed_s, stopped_early })
    }

    /// Read back the accumulated loss, append a metrics record (with `skipped_steps` when steps
    /// were skipped since the previous one), reset the accumulator. No record when every step
    /// since the previous one was skipped.
    fn flush_loss(
        &mut self,
        lr: f64,
        elapsed_s: f64,
        mut eval: BTreeMap<String, f64>,
    ) -> Result<Option<f64>> {
        let Some(acc) = self.loss_acc.take() else { return Ok(None) };
        let mean = acc.to_scalar::<f32>()? as f64 / self.loss_count as f64;
        self.loss_count = 0;
        if !mean.is_finite() {
            return Err(self.diverged(mean));
        }
        if self.skipped_since_log > 0 {
            eval.insert("skipped_steps".into(), self.skipped_since_log as f64);
            self.skipped_since_log = 0;
        }
        self.metrics.append(&MetricRecord { step: self.step, loss: mean, lr, time_s: elapsed_s, eval })?;
        self.last_loss = Some(mean);
        Ok(Some(mean))
    }

    fn diverged(&self, loss: f64) -> TrainError {
        TrainError::NonFiniteLoss {
            step: self.step,
            loss,
            streak: self.nonfinite_streak.max(1),
            checkpoint: self.last_checkpoint,
        }
    }

    /// The current EMA weights as a run ready for sampling (a copy: later steps do not change it).
    pub fn ema_run(&self) -> Result<LoadedRun> {
        let weights = self
            .ema
            .tensors()
            .into_iter()
            .map(|(n, t)| Ok((n, t.copy()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        LoadedRun::from_weights(self.config.clone(), weights, self.step, true, self.data.device())
    }

    /// Write a checkpoint of the current step now.
    pub fn save_checkpoint(&mut self) -> Result<()> {
        let e = self.elapsed_before;
        self.save_checkpoint_at(e)
    }

    fn save_checkpoint_at(&mut self, elapsed_s: f64) -> Result<()> {
        let loss_sum = match &self.loss_acc {
            Some(t) => t.to_scalar::<f32>()? as f64,
            None => 0.0,
        };
        // a non-finite loss since the last log step means the weights may be NaN/inf: keep the
        // previous (good) checkpoint rather than overwrite it
        if !loss_sum.is_finite() {
            return Err(self.diverged(loss_sum));
        }
        // and never a NaN/inf weight on disk
        for (name, p) in &self.params {
            let s = p.as_tensor().abs()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !s.is_finite() {
                return Err(TrainError::NonFiniteWeights { step: self.step, param: name.clone() });
            }
        }
        let state = TrainState {
            format: STATE_FORMAT,
            step: self.step,
            rng: self.rng.clone(),
            batcher: self.batcher.state(),
            data_len: self.data.dim(0)?,
            ema_updates: self.ema.updates(),
            loss_sum,
            loss_count: self.loss_count,
            elapsed_s,
            importance_sampler: self.sampler.clone(),
            skipped_steps: self.skipped_total,
            skipped_since_log: self.skipped_since_log,
        };
        let tensors = CheckpointTensors {
            model: param_tensors(&self.params),
            ema: self.ema.tensors(),
            optimizer: self.opt.state_tensors()?,
            target: self.consistency.as_ref().map(|(_, t)| t.tensors()),
        };
        self.metrics.sync()?;
        write_checkpoint(&self.dir, &tensors, &state)?;
        self.last_checkpoint = Some(self.step);
        Ok(())
    }
}
