//! Super-resolution inputs of `rediffuse sample` (`--lowres`) and cascades of runs
//! (`--cascade BASE,SR[,SR…]`; Cascaded Diffusion Models, seed 002).

use crate::args::SampleArgs;
use crate::cmd::sample::{from_run, picture, sample_stage, Model, Source, Stage};
use crate::io::{finite, prepare_output};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rediffuse_data::npy::{read_npy_tensor, write_npy_tensor, NpyDtype};
use rediffuse_train::superres::{sampling_condition, DEFAULT_AUG_LEVEL};
use std::path::Path;

/// The low-resolution input of a super-resolution run's samples.
pub struct LowRes {
    /// `[N, C, h, w]`, one image per sample.
    pub low: Tensor,
    pub factor: usize,
    /// Augmentation level s₀ of the conditioning.
    pub aug_level: f64,
    /// The sampling run's seed (sample k's conditioning noise is stream k of its derived seed).
    pub seed: u64,
}

impl LowRes {
    /// The conditioning of samples `start..start + count`.
    pub fn condition(&self, start: usize, count: usize) -> Result<Tensor> {
        let low = self.low.narrow(0, start, count)?;
        Ok(sampling_condition(&low, self.factor, self.aug_level, self.seed, start as u64)?)
    }
}

/// The first `n` images of the .npy `path` (`[N, C, h, w]`).
pub fn read_lowres(path: &Path, n: usize) -> Result<Tensor> {
    let x = read_npy_tensor(path, &Device::Cpu).with_context(|| format!("reading {}", path.display()))?;
    if x.rank() != 4 {
        bail!("--lowres {} has shape {:?}, expected images N×C×H×W", path.display(), x.dims());
    }
    if x.dim(0)? < n {
        bail!("--lowres {} has {} images, fewer than --n {n}", path.display(), x.dim(0)?);
    }
    Ok(x.narrow(0, 0, n)?)
}

/// Check `lowres` against a super-resolution `model` (and that only such a model gets one).
pub fn attach_lowres(
    model: &Model,
    lowres: Option<Tensor>,
    aug_level: Option<f64>,
    seed: u64,
) -> Result<Option<LowRes>> {
    let sr = match &model.source {
        Source::Run(run) => run.config.super_res,
        Source::Analytic { .. } => None,
    };
    let (sr, low) = match (sr, lowres) {
        (None, None) if aug_level.is_some() => bail!("--aug-level applies to super-resolution runs"),
        (None, None) => return Ok(None),
        (None, Some(_)) => bail!("--lowres needs a super-resolution run (train it with --super-res)"),
        (Some(sr), None) => bail!(
            "the run is a ×{} super-resolution model: give its low-resolution input with --lowres FILE \
             (or sample a cascade with --cascade BASE,SR)",
            sr.factor
        ),
        (Some(sr), Some(low)) => (sr, low),
    };
    let shape = &model.sample_shape;
    let want = [shape[0], shape[1] / sr.factor, shape[2] / sr.factor];
    if low.dims()[1..] != want {
        bail!(
            "the ×{} super-resolution run takes low-resolution images of shape {want:?}, got {:?}",
            sr.factor,
            &low.dims()[1..]
        );
    }
    let aug_level = match aug_level {
        Some(s) => {
            let s = finite("aug-level", s, false)?;
            if s > 1.0 {
                bail!("--aug-level must lie in [0, 1], got {s}");
            }
            s
        }
        None => DEFAULT_AUG_LEVEL,
    };
    Ok(Some(LowRes { low, factor: sr.factor, aug_level, seed }))
}

/// `--cascade BASE,SR[,SR…]`: sample the base run, then each super-resolution run on the previous
/// stage's samples. Stage i samples with seed `--seed + i`; the class flags guide the
/// class-conditional stages; `--init-noise` is the base stage's.
pub fn run(stages: &str, a: &SampleArgs, n: usize) -> Result<()> {
    let dirs: Vec<&str> = stages.split(',').map(str::trim).collect();
    if dirs.len() < 2 || dirs.iter().any(|d| d.is_empty()) {
        bail!("--cascade takes BASE_RUN,SR_RUN[,SR_RUN…] (at least two run folders), got `{stages}`");
    }
    if a.lowres.is_some() {
        bail!("--cascade makes the low-resolution inputs itself; drop --lowres");
    }
    if let Some(p) = &a.lowres_out {
        prepare_output(p, a.force)?;
    }
    let mut models = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let m = from_run(Path::new(d), !a.no_ema)?;
        let is_sr = matches!(&m.source, Source::Run(r) if r.config.super_res.is_some());
        match (i, is_sr) {
            (0, true) => {
                bail!("the first run of --cascade ({d}) must be a base model, not a super-resolution one")
            }
            (i, false) if i > 0 => {
                bail!("run {d} of --cascade is not a super-resolution model (--super-res)")
            }
            _ => {}
        }
        models.push(m);
    }
    let conditional =
        |m: &Model| matches!(&m.source, Source::Run(r) if r.config.model.num_classes().is_some());
    let guided = a.class.is_some() || a.guidance_scale.is_some() || a.classifier.is_some();
    if guided && !models.iter().any(conditional) {
        bail!("--class/--guidance-scale need a class-conditional run in the cascade (train it with --class-cond)");
    }
    let last = models.len() - 1;
    let mut x: Option<Tensor> = None;
    for (i, m) in models.into_iter().enumerate() {
        let stage = Stage { write: i == last, guide: guided && conditional(&m), init: i == 0, aug: i > 0 };
        let out = sample_stage(m, a, n, a.seed.wrapping_add(i as u64), x.take(), stage)?;
        if i == 0 {
            if let Some(p) = &a.lowres_out {
                write_npy_tensor(p, &out, NpyDtype::F32)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
        }
        x = Some(out);
    }
    if let (Some(png), Some(x)) = (&a.png, &x) {
        picture(x, png, None)?;
    }
    Ok(())
}
