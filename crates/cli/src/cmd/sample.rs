//! `rediffuse sample`: run a sampler on a trained run or an analytic denoiser.

use crate::args::{SampleArgs, SamplerArgs, SamplerKind, SpacingKind, VarianceKind};
use crate::io::{finite, positive, prepare_output};
use crate::progress;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rediffuse_core::analytic::{EmpiricalDenoiser, GaussianDenoiser, GmmDenoiser, GmmSpec};
use rediffuse_core::noise::batches;
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};
use rediffuse_data::npy::{read_npy_tensor, write_npy_tensor, NpyDtype};
use rediffuse_sample::{
    ddim_sample, ddpm_sample, DdimOptions, DdpmOptions, DdpmVariance, StepInfo, TimestepSpacing,
};
use std::path::Path;

/// What to sample from.
pub struct Model {
    pub denoiser: Box<dyn Denoiser>,
    pub schedule: DiffusionSchedule,
    /// Shape of one sample (without the batch dimension).
    pub sample_shape: Vec<usize>,
}

fn analytic(spec: &str, a: &SampleArgs) -> Result<Model> {
    let (kind, arg) = spec
        .split_once(':')
        .context("--analytic takes gaussian:data.npy, gmm:spec.json or empirical:<data>")?;
    let schedule = DiffusionSchedule::new(crate::cmd::train::schedule_of(a.schedule), a.timesteps)?;
    let device = Device::Cpu;
    Ok(match kind {
        "gaussian" => {
            let data = crate::cmd::data::load(arg, None, 0, &device)?;
            let shape = data.dims()[1..].to_vec();
            Model {
                denoiser: Box::new(GaussianDenoiser::from_data(&data, &schedule)?),
                schedule,
                sample_shape: shape,
            }
        }
        "gmm" => {
            let spec = GmmSpec::from_path(arg).with_context(|| format!("reading GMM spec {arg}"))?;
            let shape = vec![spec.dim()];
            Model { denoiser: Box::new(GmmDenoiser::new(&spec, &schedule)?), schedule, sample_shape: shape }
        }
        "empirical" => {
            let data = crate::cmd::data::load(arg, None, 0, &device)?;
            let shape = data.dims()[1..].to_vec();
            Model {
                denoiser: Box::new(EmpiricalDenoiser::new(&data, &schedule)?),
                schedule,
                sample_shape: shape,
            }
        }
        other => bail!("unknown analytic denoiser `{other}` (expected gaussian, gmm or empirical)"),
    })
}

/// Load a trained run as a model.
pub fn from_run(run: &Path, ema: bool) -> Result<Model> {
    let loaded = rediffuse_train::load_run(run, ema, &Device::Cpu)
        .with_context(|| format!("loading run {}", run.display()))?;
    let sample_shape = crate::cmd::data::run_sample_shape(&loaded.config)?;
    Ok(Model { denoiser: Box::new(loaded.denoiser), schedule: loaded.schedule, sample_shape })
}

/// Sampler settings from flags.
pub enum Sampler {
    Ddpm(DdpmOptions),
    Ddim(DdimOptions),
}

pub fn sampler_of(s: &SamplerArgs, schedule: &DiffusionSchedule, image: bool) -> Result<Sampler> {
    let clip = s.clip.or(if image { Some(1.0) } else { None });
    Ok(match s.sampler {
        SamplerKind::Ddpm => Sampler::Ddpm(DdpmOptions {
            variance: match s.variance {
                VarianceKind::Beta => DdpmVariance::Beta,
                VarianceKind::BetaTilde => DdpmVariance::BetaTilde,
            },
            clip_x0: clip,
        }),
        SamplerKind::Ddim => Sampler::Ddim(DdimOptions {
            steps: match s.steps {
                Some(v) => positive("steps", v)?,
                None => 50.min(schedule.len()),
            },
            eta: finite("eta", s.eta, false)?,
            spacing: match s.timestep_spacing {
                SpacingKind::Leading => TimestepSpacing::Leading,
                SpacingKind::Trailing => TimestepSpacing::Trailing,
                SpacingKind::Linspace => TimestepSpacing::Linspace,
            },
            clip_x0: clip,
        }),
    })
}

impl Sampler {
    pub fn num_steps(&self, schedule: &DiffusionSchedule) -> usize {
        match self {
            Sampler::Ddpm(_) => schedule.len(),
            Sampler::Ddim(o) => o.steps,
        }
    }

    /// Sample one batch from `x_t`.
    pub fn run(
        &self,
        model: &Model,
        x_t: Tensor,
        noise: &mut NoiseSource,
        on_step: Option<&mut dyn FnMut(&StepInfo)>,
    ) -> Result<Tensor> {
        Ok(match self {
            Sampler::Ddpm(o) => ddpm_sample(&*model.denoiser, &model.schedule, x_t, o, noise, on_step)?,
            Sampler::Ddim(o) => ddim_sample(&*model.denoiser, &model.schedule, x_t, o, noise, on_step)?,
        })
    }
}

/// Generate `n` samples in batches; sample `k` uses noise stream `k` of `seed`.
pub fn generate(
    model: &Model,
    sampler: &Sampler,
    n: usize,
    seed: u64,
    batch_size: usize,
    init: Option<&Tensor>,
    quiet: bool,
) -> Result<Tensor> {
    let device = Device::Cpu;
    let steps = sampler.num_steps(&model.schedule) as u64;
    let bar = progress::bar(steps * n as u64, quiet, "sample");
    let mut out = Vec::new();
    for (start, count) in batches(n, batch_size) {
        let mut noise = NoiseSource::new(seed, start as u64, count);
        let x_t = match init {
            Some(x) => x.narrow(0, start, count)?,
            None => noise.randn(&model.sample_shape, &device)?,
        };
        let mut tick = |_: &StepInfo| bar.inc(count as u64);
        out.push(sampler.run(model, x_t, &mut noise, Some(&mut tick))?);
    }
    bar.finish_and_clear();
    Ok(Tensor::cat(&out, 0)?)
}

/// A picture of samples: scatter plot for 2-D points, a grid for images.
pub fn picture(x: &Tensor, png: &Path, reference: Option<&Tensor>) -> Result<()> {
    match x.dims() {
        [_, 2] => {
            let pts = to_points(x)?;
            let refp = reference.map(to_points).transpose()?;
            rediffuse_eval::plot::scatter_png(png, &pts, refp.as_deref(), "samples")?;
        }
        [n, _, _, _] => {
            let nrow = (*n as f64).sqrt().ceil() as usize;
            rediffuse_eval::grid::image_grid_png(png, x, nrow.max(1), 4, 1)?;
        }
        other => bail!("--png needs 2-D points or N×C×H×W images, got shape {other:?}"),
    }
    Ok(())
}

fn to_points(x: &Tensor) -> Result<Vec<[f64; 2]>> {
    let v: Vec<Vec<f32>> = x.to_vec2()?;
    Ok(v.into_iter().map(|r| [r[0] as f64, r[1] as f64]).collect())
}

pub fn run(a: SampleArgs) -> Result<()> {
    let n = positive("n", a.n)?;
    prepare_output(&a.out, a.force)?;
    if let Some(png) = &a.png {
        prepare_output(png, a.force)?;
    }
    let model = match (&a.run, &a.analytic) {
        (Some(run), None) => from_run(run, !a.no_ema)?,
        (None, Some(spec)) => analytic(spec, &a)?,
        _ => bail!("give exactly one of --run RUN_DIR or --analytic KIND:ARG"),
    };
    let image = model.sample_shape.len() == 3;
    let sampler = sampler_of(&a.sampler, &model.schedule, image)?;
    let init = match &a.init_noise {
        Some(p) => {
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
        None => None,
    };
    let x0 = generate(&model, &sampler, n, a.seed, a.batch_size.max(1), init.as_ref(), a.quiet)?;
    let dtype = if a.f64 { NpyDtype::F64 } else { NpyDtype::F32 };
    write_npy_tensor(&a.out, &x0, dtype).with_context(|| format!("writing {}", a.out.display()))?;
    if let Some(png) = &a.png {
        picture(&x0, png, None)?;
    }
    if !a.quiet {
        eprintln!("wrote {n} samples {:?} to {}", x0.dims(), a.out.display());
    }
    Ok(())
}
