//! `rediffuse sample` on a cold-diffusion run: start from fully degraded training images plus a
//! little noise and restore them level by level (`rediffuse_sample::cold`).

use crate::args::{SampleArgs, SamplerKind};
use crate::io::finite;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::Rng;
use rediffuse_core::degradation::degrade_all;
use rediffuse_core::noise::batches;
use rediffuse_core::NoiseSource;
use rediffuse_data::npy::{write_npy_tensor, NpyDtype};
use rediffuse_sample::cold::{cold_sample, ColdUpdate};
use rediffuse_train::config::ColdConfig;
use rediffuse_train::LoadedRun;

/// Default standard deviation of the start's noise.
pub const DEFAULT_START_NOISE: f64 = 0.05;

/// Draw `n` samples; sample k starts from training image j_k (drawn from stream k of `--seed`),
/// x_T = D(x_{j_k}, T) + s·z_k, and runs the improved (`cold`) or naive (`cold-naive`) sampler.
/// With `--init-noise FILE` the starts are the given degraded images instead (at level
/// `--cold-from`, default T: restoration of partly degraded images).
pub fn sample(run: &LoadedRun, c: &ColdConfig, a: &SampleArgs, n: usize) -> Result<Tensor> {
    let update = match a.sampler.sampler {
        SamplerKind::Cold => ColdUpdate::Improved,
        SamplerKind::ColdNaive => ColdUpdate::Naive,
        other => bail!("a cold-diffusion run samples with --sampler cold or cold-naive, not {other:?}"),
    };
    let s = match a.start_noise {
        Some(v) => finite("start-noise", v, false)?,
        None => DEFAULT_START_NOISE,
    };
    let from = match a.cold_from {
        Some(t) if t == 0 || t > c.levels => bail!("--cold-from must lie in 1..={}, got {t}", c.levels),
        Some(t) if a.init_noise.is_none() => {
            bail!("--cold-from {t} restores given images: add --init-noise DEGRADED.npy")
        }
        Some(t) => t,
        None => c.levels,
    };
    let device = Device::Cpu;
    let shape = run.config.model.sample_shape();
    let data = match &a.init_noise {
        Some(_) => None,
        None => Some(
            crate::cmd::data::load(&run.config.data, run.config.n_train, run.config.seed, &device)
                .with_context(|| {
                    format!("loading the run's training data `{}` for the starts", run.config.data)
                })?,
        ),
    };
    let init = match &a.init_noise {
        Some(p) => Some(
            rediffuse_data::npy::read_npy_tensor(p, &device)
                .with_context(|| format!("reading {}", p.display()))?,
        ),
        None => None,
    };
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    for (start, count) in batches(n, a.batch_size.max(1)) {
        let x_t = match (&init, &data) {
            (Some(x), _) => {
                let mut want = vec![n];
                want.extend_from_slice(&shape);
                if x.dims() != want.as_slice() {
                    bail!("--init-noise has shape {:?}, expected {want:?}", x.dims());
                }
                x.narrow(0, start, count)?
            }
            (None, Some(d)) => {
                let mut noise = NoiseSource::new(a.seed, start as u64, count);
                let rows = d.dim(0)?;
                let idx: Vec<u32> = (0..count).map(|i| noise.rng(i).random_range(0..rows) as u32).collect();
                let x0 = d.index_select(&Tensor::from_vec(idx, count, &device)?, 0)?;
                let z = noise.randn(&shape, &device)?;
                degrade_all(&c.degradation, &x0, c.levels, c.levels)?.add(&z.affine(s, 0.0)?)?
            }
            (None, None) => bail!("no start for the cold sampler"),
        };
        let (x0, _) = cold_sample(&run.denoiser, &c.degradation, &x_t, from, c.levels, update)?;
        out.push(x0);
    }
    let x0 = Tensor::cat(&out, 0)?;
    let dtype = if a.f64 { NpyDtype::F64 } else { NpyDtype::F32 };
    write_npy_tensor(&a.out, &x0, dtype).with_context(|| format!("writing {}", a.out.display()))?;
    if !a.quiet {
        eprintln!(
            "wrote {n} samples {:?} to {} (cold diffusion, {} restorations, {:.1} s)",
            x0.dims(),
            a.out.display(),
            c.levels,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(x0)
}

/// `rediffuse data degrade`: D(x, level) with a cold run's degradation.
pub fn degrade(a: crate::args::DegradeArgs) -> Result<()> {
    crate::io::prepare_output(&a.out, a.force)?;
    let cfg = rediffuse_train::TrainConfig::load(&a.run.join("config.toml"))
        .with_context(|| format!("{} is not a run folder", a.run.display()))?;
    let rediffuse_train::Method::Cold(c) = cfg.method else {
        bail!("{} is not a cold-diffusion run (train --method cold)", a.run.display());
    };
    if a.level > c.levels {
        bail!("--level must lie in 0..={}, got {}", c.levels, a.level);
    }
    let x = rediffuse_data::npy::read_npy_tensor(&a.input, &Device::Cpu)
        .with_context(|| format!("reading {}", a.input.display()))?;
    if x.rank() != 4 || x.dims()[1..] != cfg.model.sample_shape()[..] {
        bail!("the run degrades images {:?}, got {:?}", cfg.model.sample_shape(), x.dims());
    }
    let y = degrade_all(&c.degradation, &x.to_dtype(candle_core::DType::F32)?, a.level, c.levels)?;
    write_npy_tensor(&a.out, &y, NpyDtype::F32).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {:?} at level {} of {} to {}", y.dims(), a.level, c.levels, a.out.display());
    Ok(())
}
