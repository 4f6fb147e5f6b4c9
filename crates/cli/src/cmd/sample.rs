//! `rediffuse sample`: run any sampler on a trained run or an analytic denoiser.

use crate::args::{
    DpmAlgorithmKind, FinalSigmaKind, SampleArgs, SamplerArgs, SamplerKind, SigmasKind, SpacingKind,
    UniPcVariantKind, VarianceKind,
};
use crate::cmd::analytic::AnalyticOptions;
use crate::io::{finite, positive, prepare_output};
use crate::progress;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rediffuse_core::noise::batches;
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};
use rediffuse_data::npy::{read_npy_tensor, write_npy_tensor, NpyDtype};
use rediffuse_sample::continuous::{DpmAlgorithm, UniPcOptions, UniPcVariant};
use rediffuse_sample::dispatch::{sample, FinalSigma, Progress, SampleModel, SamplerSpec, SigmaSchedule};
use rediffuse_sample::{DdimOptions, DdpmOptions, DdpmVariance, TimestepSpacing};
use rediffuse_train::LoadedRun;
use std::path::Path;

/// Where the model comes from.
pub enum Source {
    Run(Box<LoadedRun>),
    Analytic { denoiser: Box<dyn Denoiser>, schedule: Box<DiffusionSchedule> },
}

/// What to sample from.
pub struct Model {
    pub source: Source,
    /// Shape of one sample (without the batch dimension).
    pub sample_shape: Vec<usize>,
    /// Clamp of the σ-space samplers' denoised estimates (`SampleModel::with_clip_denoised`).
    pub clip_denoised: Option<f64>,
    /// σ grid of the σ-space samplers (`None`: the model's default) and where it ends.
    pub sigma_schedule: Option<SigmaSchedule>,
    pub final_sigma: FinalSigma,
    /// Classifier-free guidance of a class-conditional run: the label of every sample and w.
    pub guidance: Option<Guidance>,
    /// A super-resolution run's low-resolution inputs, one per sample.
    pub lowres: Option<crate::cmd::cascade::LowRes>,
    /// A latent-diffusion run's autoencoder: samples are latents, decoded by [`Model::to_data`].
    pub decoder: Option<Box<rediffuse_train::latent::LatentCodec>>,
}

/// `--class` / `--guidance-scale` (classifier-free) or `--classifier` / `--classifier-scale`:
/// sample k is drawn for class `labels[k]` with scale `scale`.
pub struct Guidance {
    pub labels: Vec<u32>,
    pub scale: f64,
    /// The noise-conditioned classifier of classifier guidance (`None`: classifier-free).
    pub classifier: Option<Box<rediffuse_nn::classifier::Classifier>>,
}

impl Model {
    /// A model with the sampling options at their defaults.
    pub fn new(source: Source, sample_shape: Vec<usize>) -> Self {
        Self {
            source,
            sample_shape,
            clip_denoised: None,
            sigma_schedule: None,
            final_sigma: FinalSigma::Zero,
            guidance: None,
            lowres: None,
            decoder: None,
        }
    }

    /// Whether the samples are images in [−1, 1] (clipped by default); a latent run's are not.
    pub fn samples_are_images(&self) -> bool {
        self.sample_shape.len() == 3 && self.decoder.is_none()
    }

    /// The samples in data space: a latent run's latents decoded to images, others unchanged.
    pub fn to_data(&self, x: Tensor) -> Result<Tensor> {
        match &self.decoder {
            Some(codec) => Ok(codec.decode(&x).context("decoding the latents")?),
            None => Ok(x),
        }
    }

    /// The sampler-facing view (discrete denoiser, σ-space model, SDE frame).
    pub fn sample_model(&self) -> Result<SampleModel<'_>> {
        self.sample_model_for(0, 0)
    }

    /// The sampler-facing view for the samples `start..start + count` (with guidance, their labels).
    pub fn sample_model_for(&self, start: usize, count: usize) -> Result<SampleModel<'_>> {
        let model = match (&self.source, &self.guidance) {
            (Source::Run(run), g) if self.lowres.is_some() => {
                let lr = self.lowres.as_ref().context("no low-res input")?;
                let cond = lr.condition(start, count)?;
                let guidance = match g {
                    Some(Guidance { classifier: Some(_), .. }) => {
                        bail!("classifier guidance of a super-resolution run is not supported")
                    }
                    Some(g) => Some((
                        g.labels.get(start..start + count).context("guidance labels out of range")?,
                        g.scale,
                    )),
                    None => None,
                };
                run.super_res_sample_model(cond, guidance)?
            }
            (Source::Run(run), Some(g)) => {
                let labels = g.labels.get(start..start + count).context("guidance labels out of range")?;
                match &g.classifier {
                    Some(c) => run.classifier_guided_sample_model(c, labels, g.scale)?,
                    None => run.guided_sample_model(labels, g.scale)?,
                }
            }
            (Source::Run(run), None) => run.sample_model()?,
            (Source::Analytic { .. }, Some(_)) => bail!("analytic denoisers are not class-conditional"),
            (Source::Analytic { denoiser, schedule }, None) => {
                SampleModel::from_discrete(&**denoiser, (**schedule).clone())?
            }
        };
        Ok(model
            .with_clip_denoised(self.clip_denoised)?
            .with_sigma_schedule(self.sigma_schedule)?
            .with_final_sigma(self.final_sigma))
    }

    pub fn schedule(&self) -> &DiffusionSchedule {
        match &self.source {
            Source::Run(run) => &run.schedule,
            Source::Analytic { schedule, .. } => schedule,
        }
    }
}

fn analytic(spec: &str, a: &SampleArgs) -> Result<Model> {
    let schedule = DiffusionSchedule::new(crate::cmd::train::schedule_of(a.schedule), a.timesteps)?;
    let n = a.analytic_n.map(|v| positive("analytic-n", v)).transpose()?;
    let opts = AnalyticOptions { patch: a.patch.as_deref(), n };
    let (denoiser, shape) = crate::cmd::analytic::build(spec, &schedule, opts)?;
    let schedule = Box::new(schedule);
    Ok(Model::new(Source::Analytic { denoiser: denoiser.into_denoiser(), schedule }, shape))
}

/// Load a trained run as a model.
pub fn from_run(run: &Path, ema: bool) -> Result<Model> {
    let loaded = rediffuse_train::load_run(run, ema, &Device::Cpu)
        .with_context(|| format!("loading run {}", run.display()))?;
    let sample_shape = crate::cmd::data::run_sample_shape(&loaded.config)?;
    let decoder = match &loaded.config.latent {
        Some(_) => Some(Box::new(
            rediffuse_train::latent::LatentCodec::of_run(run, &Device::Cpu)
                .with_context(|| format!("loading the autoencoder of latent run {}", run.display()))?,
        )),
        None => None,
    };
    let mut model = Model::new(Source::Run(Box::new(loaded)), sample_shape);
    model.decoder = decoder;
    Ok(model)
}

/// Sampler settings from flags.
/// The clipping limit of `--clip` / `--no-clip`: images default to 1, other data to none.
pub fn clip_of(s: &SamplerArgs, image: bool) -> Result<Option<f32>> {
    if let Some(c) = s.clip {
        finite("clip", c as f64, true)?;
    }
    Ok(if s.no_clip { None } else { s.clip.or(image.then_some(1.0)) })
}

pub fn sampler_of(s: &SamplerArgs, schedule: &DiffusionSchedule, image: bool) -> Result<SamplerSpec> {
    let clip = clip_of(s, image)?;
    let steps = |default: usize| -> Result<usize> {
        match s.steps {
            Some(v) => positive("steps", v),
            None => Ok(default),
        }
    };
    let eps = None;
    let denoise = !s.no_denoise;
    let snr = finite("snr", s.snr, false)?;
    let rtol = finite("rtol", s.rtol, true)?;
    let atol = finite("atol", s.atol, true)?;
    let rho = finite("rho", s.rho, true)?;
    Ok(match s.sampler {
        SamplerKind::Ddpm => SamplerSpec::Ddpm(DdpmOptions {
            variance: match s.variance {
                VarianceKind::Beta => DdpmVariance::Beta,
                VarianceKind::BetaTilde => DdpmVariance::BetaTilde,
            },
            clip_x0: clip,
        }),
        SamplerKind::DdpmLearned => SamplerSpec::DdpmLearned {
            steps: s.steps.map(|v| positive("steps", v)).transpose()?,
            clip_x0: clip,
        },
        SamplerKind::Ddim => SamplerSpec::Ddim(DdimOptions {
            steps: steps(50.min(schedule.len()))?,
            eta: finite("eta", s.eta, false)?,
            spacing: spacing_of(s.timestep_spacing.unwrap_or(SpacingKind::Leading)),
            clip_x0: clip,
            clipped_model_output: !s.keep_model_eps,
            stride_prev: s.ddim_stride_prev,
        }),
        SamplerKind::Langevin => SamplerSpec::Langevin {
            levels: s.levels,
            sigma_min: None,
            steps_per_level: s.steps_per_level.max(1),
            step_eps: finite("step-eps", s.step_eps, true)?,
            final_denoise: denoise,
        },
        SamplerKind::EulerMaruyama => SamplerSpec::EulerMaruyama { steps: steps(500)?, eps, denoise },
        SamplerKind::Pc => SamplerSpec::Pc {
            steps: steps(500)?,
            snr,
            corrector_steps: s.corrector_steps,
            predictor: rediffuse_sample::continuous::Predictor::ReverseDiffusion,
            eps,
            denoise,
        },
        SamplerKind::OdeEuler => SamplerSpec::OdeEuler { steps: steps(200)?, eps, denoise },
        SamplerKind::OdeHeun => SamplerSpec::OdeHeun { steps: steps(50)?, eps, denoise },
        SamplerKind::OdeRk45 => SamplerSpec::OdeRk45 { rtol, atol, eps, denoise },
        SamplerKind::DpmSolver => {
            if !(1..=3).contains(&s.order) {
                bail!("--order must be 1, 2 or 3, got {}", s.order);
            }
            SamplerSpec::DpmSolver {
                steps: steps(20)?,
                order: s.order,
                algorithm: match s.algorithm {
                    DpmAlgorithmKind::Dpmsolver => DpmAlgorithm::Noise,
                    DpmAlgorithmKind::DpmsolverPp => DpmAlgorithm::Data,
                },
            }
        }
        SamplerKind::DpmPp2m => SamplerSpec::DpmPp2m { steps: steps(20)? },
        SamplerKind::DpmPp3m => SamplerSpec::DpmPp3m { steps: steps(20)? },
        SamplerKind::Unipc => {
            if !(1..=3).contains(&s.order) {
                bail!("--order must be 1, 2 or 3, got {}", s.order);
            }
            SamplerSpec::UniPc {
                steps: steps(20)?,
                options: UniPcOptions {
                    order: s.order,
                    variant: match s.unipc_variant {
                        UniPcVariantKind::Bh1 => UniPcVariant::Bh1,
                        UniPcVariantKind::Bh2 => UniPcVariant::Bh2,
                    },
                    corrector: !s.no_corrector,
                    lower_order_final: true,
                },
            }
        }
        SamplerKind::Euler => SamplerSpec::Euler { steps: steps(50)? },
        SamplerKind::Heun => SamplerSpec::Heun { steps: steps(25)? },
        SamplerKind::EdmHeun => SamplerSpec::EdmHeun { steps: steps(18)?, rho },
        SamplerKind::Consistency => SamplerSpec::Consistency { steps: steps(1)? },
        SamplerKind::Cold | SamplerKind::ColdNaive => {
            bail!("--sampler cold and cold-naive sample cold-diffusion runs (train --method cold)")
        }
        SamplerKind::EdmStochastic => SamplerSpec::EdmStochastic {
            steps: steps(18)?,
            rho,
            s_churn: finite("s-churn", s.s_churn, false)?,
            s_tmin: finite("s-tmin", s.s_tmin, false)?,
            s_tmax: if s.s_tmax.is_nan() || s.s_tmax < 0.0 {
                bail!("--s-tmax must be >= 0, got {}", s.s_tmax)
            } else {
                s.s_tmax
            },
            s_noise: finite("s-noise", s.s_noise, false)?,
        },
    })
}

fn spacing_of(k: SpacingKind) -> TimestepSpacing {
    match k {
        SpacingKind::Leading => TimestepSpacing::Leading,
        SpacingKind::Trailing => TimestepSpacing::Trailing,
        SpacingKind::Linspace => TimestepSpacing::Linspace,
    }
}

/// The σ grid of `--sigmas` / `--timestep-spacing` / `--rho` (`None`: the model's default).
pub fn sigma_schedule_of(s: &SamplerArgs) -> Result<Option<SigmaSchedule>> {
    let spacing = s.timestep_spacing.map(spacing_of);
    let clip = match s.lambda_min_clipped {
        Some(l) if l.is_nan() => bail!("--lambda-min-clipped must be a number or -inf, got NaN"),
        Some(l) if l == f64::NEG_INFINITY => None,
        Some(l) => Some(l),
        None => Some(rediffuse_sample::dispatch::DEFAULT_LAMBDA_MIN_CLIPPED),
    };
    let timesteps = |spacing| SigmaSchedule::Timesteps { spacing, lambda_min_clipped: clip };
    Ok(match (s.sigmas, spacing) {
        (None, None) if s.lambda_min_clipped.is_none() => None,
        (None | Some(SigmasKind::Timesteps), spacing) => {
            Some(timesteps(spacing.unwrap_or(TimestepSpacing::Linspace)))
        }
        (Some(SigmasKind::Logsnr), _) => Some(SigmaSchedule::LogSnr),
        (Some(SigmasKind::Karras), _) => Some(SigmaSchedule::Karras { rho: finite("rho", s.rho, true)? }),
        // a flow run's own σ_min replaces this one (`SampleModel::with_sigma_schedule`)
        (Some(SigmasKind::FlowTime), _) => Some(SigmaSchedule::FlowTime { sigma_min: 0.0 }),
        (Some(SigmasKind::NestedKarras), _) => {
            Some(SigmaSchedule::NestedKarras { rho: finite("rho", s.rho, true)? })
        }
    })
}

/// The labels and scale of `--class K|all` / `--guidance-scale W` for `n` samples: class K for
/// every sample, or sample k of class k mod K (`all`, the default for class-conditional runs);
/// w = 1 (the conditional model) by default. Unconditional models take neither.
pub fn guidance_of(
    model: &Model,
    class: Option<&str>,
    scale: Option<f64>,
    n: usize,
) -> Result<Option<Guidance>> {
    let classes = match &model.source {
        Source::Run(run) => run.config.model.num_classes(),
        Source::Analytic { .. } => None,
    };
    let Some(k) = classes else {
        if class.is_some() || scale.is_some() {
            bail!("--class and --guidance-scale need a class-conditional run (train it with --class-cond)");
        }
        return Ok(None);
    };
    let scale = match scale {
        Some(w) => finite("guidance-scale", w, false)?,
        None => 1.0,
    };
    Ok(Some(Guidance { labels: class_labels(class, k, n)?, scale, classifier: None }))
}

/// The labels `--class K|all` (default all) of `n` samples over `k` classes.
fn class_labels(class: Option<&str>, k: usize, n: usize) -> Result<Vec<u32>> {
    Ok(match class.unwrap_or("all") {
        "all" => (0..n).map(|i| (i % k) as u32).collect(),
        c => {
            let y: usize =
                c.parse().with_context(|| format!("--class takes a class index or `all`, got `{c}`"))?;
            if y >= k {
                bail!("--class {y} is out of range: there are {k} classes (0..{k})");
            }
            vec![y as u32; n]
        }
    })
}

/// `--classifier DIR --classifier-scale γ --class K|all`: classifier guidance of any run by a
/// noise-conditioned classifier (γ = 1 by default).
pub fn classifier_guidance_of(
    model: &Model,
    dir: &Path,
    class: Option<&str>,
    scale: Option<f64>,
    n: usize,
) -> Result<Guidance> {
    if matches!(model.source, Source::Analytic { .. }) {
        bail!("--classifier guides a trained run (--run)");
    }
    let clf = rediffuse_train::classifier::load_classifier(dir, &Device::Cpu)
        .with_context(|| format!("loading classifier {}", dir.display()))?;
    let cfg = clf.config();
    if cfg.noise_range.is_none() {
        bail!(
            "{} is a classifier of clean images; guidance needs one trained with --noisy RUN",
            dir.display()
        );
    }
    if cfg.input_shape().to_vec() != model.sample_shape {
        bail!("the classifier takes {:?}, the run's samples are {:?}", cfg.input_shape(), model.sample_shape);
    }
    let scale = match scale {
        Some(w) => finite("classifier-scale", w, false)?,
        None => 1.0,
    };
    Ok(Guidance { labels: class_labels(class, cfg.num_classes, n)?, scale, classifier: Some(Box::new(clf)) })
}

/// Generate `n` samples in batches; sample `k` uses noise stream `k` of `seed`.
/// `on_batch_step` sees every step of the first batch (for the denoising strip).
#[allow(clippy::too_many_arguments)]
pub fn generate(
    model: &Model,
    spec: &SamplerSpec,
    n: usize,
    seed: u64,
    batch_size: usize,
    init: Option<&Tensor>,
    quiet: bool,
    mut on_first_batch: Option<&mut dyn FnMut(&Progress)>,
) -> Result<(Tensor, usize)> {
    let device = Device::Cpu;
    let bar = progress::bar(n as u64, quiet, "sample");
    let mut out = Vec::new();
    let mut nfe = 0;
    let per_sample = model.guidance.is_some() || model.lowres.is_some();
    let shared = if per_sample { None } else { Some(model.sample_model()?) };
    for (start, count) in batches(n, batch_size) {
        let per_batch = match &shared {
            Some(_) => None,
            None => Some(model.sample_model_for(start, count)?),
        };
        let sm = shared.as_ref().or(per_batch.as_ref()).context("no sample model")?;
        let mut noise = NoiseSource::new(seed, start as u64, count);
        let init_batch = init.map(|x| x.narrow(0, start, count)).transpose()?;
        let cb = on_first_batch.take();
        let (x0, stats) =
            sample(spec, sm, init_batch.as_ref(), &model.sample_shape, &device, &mut noise, cb)?;
        nfe = stats.nfe;
        out.push(x0);
        bar.inc(count as u64);
    }
    bar.finish_and_clear();
    Ok((Tensor::cat(&out, 0)?, nfe))
}

/// A picture of samples: scatter plot for 2-D points, a grid for images.
pub fn picture(x: &Tensor, png: &Path, reference: Option<&Tensor>) -> Result<()> {
    match x.dims() {
        [_, 2] => {
            let pts = to_points(x)?;
            let refp = reference.map(to_points).transpose()?;
            rediffuse_eval::plot::scatter_png(png, &pts, refp.as_deref(), "samples")?;
        }
        [n, _, h, _] => {
            let nrow = (*n as f64).sqrt().ceil() as usize;
            let scale = (64 / (*h).max(1)).clamp(1, 8);
            rediffuse_eval::grid::image_grid_png(png, x, nrow.max(1), scale, 2)?;
        }
        other => bail!("--png needs 2-D points or N×C×H×W images, got shape {other:?}"),
    }
    Ok(())
}

fn to_points(x: &Tensor) -> Result<Vec<[f64; 2]>> {
    let v: Vec<Vec<f32>> = x.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(v.into_iter().map(|r| [r[0] as f64, r[1] as f64]).collect())
}

pub fn run(a: SampleArgs) -> Result<()> {
    let n = positive("n", a.n)?;
    prepare_output(&a.out, a.force)?;
    if let Some(png) = &a.png {
        prepare_output(png, a.force)?;
    }
    if let Some(path) = &a.labels_out {
        prepare_output(path, a.force)?;
    }
    if let Some(path) = &a.latents_out {
        prepare_output(path, a.force)?;
    }
    if let Some(stages) = &a.cascade {
        return crate::cmd::cascade::run(stages, &a, n);
    }
    let model = match (&a.run, &a.analytic) {
        (Some(run), None) => from_run(run, !a.no_ema)?,
        (None, Some(spec)) => analytic(spec, &a)?,
        _ => bail!("give exactly one of --run RUN_DIR, --analytic KIND:ARG or --cascade BASE,SR"),
    };
    if let Source::Run(run) = &model.source {
        if let rediffuse_train::Method::Cold(c) = run.config.method {
            let x0 = crate::cmd::cold::sample(run, &c, &a, n)?;
            if let Some(png) = &a.png {
                picture(&x0, png, None)?;
            }
            return Ok(());
        }
    }
    let lowres = match &a.lowres {
        Some(p) => Some(crate::cmd::cascade::read_lowres(p, n)?),
        None => None,
    };
    let x0 = sample_stage(model, &a, n, a.seed, lowres, Stage::ALONE)?;
    if let Some(png) = &a.png {
        picture(&x0, png, None)?;
    }
    Ok(())
}

/// Which of the sampling flags a stage of `rediffuse sample` uses.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    /// Write `--out` (and `--labels-out`).
    pub write: bool,
    /// Apply `--class`/`--guidance-scale`/`--classifier`.
    pub guide: bool,
    /// Start from `--init-noise`.
    pub init: bool,
    /// Apply `--aug-level` (super-resolution stages).
    pub aug: bool,
}

impl Stage {
    /// A single-model `rediffuse sample`.
    pub const ALONE: Stage = Stage { write: true, guide: true, init: true, aug: true };
}

/// Configure `model` from the sampling flags (sampler, σ grid, guidance, `lowres` input of a
/// super-resolution run), draw `n` samples with `seed` and write `--out` when `stage.write` (and
/// the labels of guided samples to `--labels-out`). Returns the samples.
pub fn sample_stage(
    mut model: Model,
    a: &SampleArgs,
    n: usize,
    seed: u64,
    lowres: Option<Tensor>,
    stage: Stage,
) -> Result<Tensor> {
    let write = stage.write;
    let aug_level = a.aug_level.filter(|_| stage.aug);
    model.lowres = crate::cmd::cascade::attach_lowres(&model, lowres, aug_level, seed)?;
    if write && a.latents_out.is_some() && model.decoder.is_none() {
        bail!("--latents-out applies to latent-diffusion runs (train --latent AE_DIR)");
    }
    let image = model.samples_are_images();
    let spec = sampler_of(&a.sampler, model.schedule(), image)?;
    model.clip_denoised = clip_of(&a.sampler, image)?.map(f64::from);
    model.sigma_schedule = sigma_schedule_of(&a.sampler)?;
    model.guidance = match &a.classifier {
        _ if !stage.guide => None,
        Some(dir) => {
            if a.guidance_scale.is_some() {
                bail!(
                    "give --guidance-scale (classifier-free) or --classifier (classifier guidance), not both"
                );
            }
            Some(classifier_guidance_of(&model, dir, a.class.as_deref(), a.classifier_scale, n)?)
        }
        None => guidance_of(&model, a.class.as_deref(), a.guidance_scale, n)?,
    };
    model.final_sigma = match a.sampler.final_sigma {
        FinalSigmaKind::Zero => FinalSigma::Zero,
        FinalSigmaKind::SigmaMin => FinalSigma::SigmaMin,
    };
    let init = match &a.init_noise {
        Some(p) if stage.init => {
            let x = read_npy_tensor(p, &Device::Cpu).with_context(|| format!("reading {}", p.display()))?;
            let mut want = vec![n];
            want.extend_from_slice(&model.sample_shape);
            if x.dims() != want.as_slice() {
                bail!(
                    "--init-noise {} has shape {:?}, expected {:?} (--n × sample shape)",
                    p.display(),
                    x.dims(),
                    want
                );
            }
            Some(x)
        }
        _ => None,
    };
    let start = std::time::Instant::now();
    let (x0, nfe) = generate(&model, &spec, n, seed, a.batch_size.max(1), init.as_ref(), a.quiet, None)?;
    if let (true, Some(path)) = (write, &a.latents_out) {
        write_npy_tensor(path, &x0, NpyDtype::F32).with_context(|| format!("writing {}", path.display()))?;
    }
    let x0 = model.to_data(x0)?;
    if write {
        let dtype = if a.f64 { NpyDtype::F64 } else { NpyDtype::F32 };
        write_npy_tensor(&a.out, &x0, dtype).with_context(|| format!("writing {}", a.out.display()))?;
        if let (Some(path), Some(g)) = (&a.labels_out, &model.guidance) {
            let v: Vec<f32> = g.labels.iter().map(|&y| y as f32).collect();
            rediffuse_data::npy::write_npy(path, &[v.len()], &v, NpyDtype::F32)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if !a.quiet {
        eprintln!(
            "{} {n} samples {:?}{} ({}, {nfe} model evaluations per batch, {:.1} s)",
            if write { "wrote" } else { "drew" },
            x0.dims(),
            if write { format!(" to {}", a.out.display()) } else { String::new() },
            spec.name(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(x0)
}
