//! `rediffuse reflow`: rectified flow's reflow (Liu et al. 2023, seed 000 "Rectified Flow"):
//! (Z₀, Z₁ = ODE_k(Z₀)) pairs from flow run k train flow k + 1 with the same objective on those
//! fixed couplings, which straightens its paths (fewer steps for the same samples).

use crate::args::{PairSamplerKind, ReflowArgs};
use crate::cmd::sample::{from_run, generate, Source};
use crate::io::positive;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use rediffuse_core::NoiseSource;
use rediffuse_data::npy::{write_npy_tensor, NpyDtype};
use rediffuse_sample::dispatch::SamplerSpec;
use rediffuse_train::checkpoint::{find_checkpoint, read_tensors, EMA_FILE, MODEL_FILE};
use rediffuse_train::config::Coupling;
use rediffuse_train::{Method, Trainer};

/// The ODE solver that couples the pairs.
fn pair_spec(kind: PairSamplerKind, steps: Option<i64>) -> Result<SamplerSpec> {
    let steps =
        |default: usize| steps.map(|v| positive("pair-steps", v)).transpose().map(|s| s.unwrap_or(default));
    Ok(match kind {
        PairSamplerKind::Euler => SamplerSpec::Euler { steps: steps(100)? },
        PairSamplerKind::Heun => SamplerSpec::Heun { steps: steps(50)? },
        PairSamplerKind::Rk45 => SamplerSpec::OdeRk45 { rtol: 1e-5, atol: 1e-5, eps: None, denoise: false },
    })
}

pub fn run(a: ReflowArgs) -> Result<()> {
    let n = positive("pairs", a.pairs)?;
    if a.out.exists() && std::fs::read_dir(&a.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty (choose a new run folder)", a.out.display());
    }
    let spec = pair_spec(a.pair_sampler, a.pair_steps)?;
    let mut teacher = from_run(&a.run, !a.no_ema)?;
    let Source::Run(run) = &teacher.source else { bail!("reflow needs a trained flow run") };
    let Method::Flow(flow) = run.config.method else {
        bail!(
            "reflow needs a flow-matching run (train --method flow), {} is `{}`",
            a.run.display(),
            run.config.method.name()
        )
    };
    if run.config.super_res.is_some() || run.config.model.num_classes().is_some() {
        bail!("reflow supports unconditional flow runs only");
    }
    if run.config.latent.is_some() {
        bail!("reflow of latent-diffusion runs is not supported (the couplings would be latents)");
    }
    let mut cfg = run.config.clone();
    // the pairs: Z₀ = noise stream k of --seed, Z₁ its ODE end point (no clipping: the ODE's own end)
    let shape = teacher.sample_shape.clone();
    let z = NoiseSource::new(a.seed, 0, n).randn(&shape, &Device::Cpu)?;
    teacher.clip_denoised = None;
    let t0 = std::time::Instant::now();
    let (x1, nfe) =
        generate(&teacher, &spec, n, a.seed, a.sample_batch_size.max(1), Some(&z), a.quiet, None)?;
    if !a.quiet {
        eprintln!(
            "coupled {n} pairs with {} ({nfe} evaluations per batch, {:.1} s)",
            spec.name(),
            t0.elapsed().as_secs_f64()
        );
    }
    let pairs = a.out.join("pairs");
    cfg.data = pairs.join("x1.npy").display().to_string();
    cfg.couplings = Some(pairs.join("x0.npy").display().to_string());
    cfg.method =
        Method::Flow(rediffuse_train::config::FlowConfig { coupling: Coupling::Independent, ..flow });
    cfg.eval = None;
    cfg.seed = a.seed;
    cfg.n_train = None;
    a.optim.apply_to_run(&mut cfg)?;
    cfg.validate()?;
    let mut trainer = Trainer::create(&a.out, cfg, x1.clone())?.with_couplings(z.clone())?;
    if !a.fresh_init {
        let ckpt = find_checkpoint(&a.run)?;
        let file = ckpt.join(if a.no_ema { MODEL_FILE } else { EMA_FILE });
        trainer.init_from(read_tensors(&file, &Device::Cpu)?, &file)?;
    }
    std::fs::create_dir_all(&pairs).with_context(|| format!("creating {}", pairs.display()))?;
    write_npy_tensor(pairs.join("x1.npy"), &x1, NpyDtype::F32)?;
    write_npy_tensor(pairs.join("x0.npy"), &z, NpyDtype::F32)?;
    crate::cmd::train::drive(&a.out, trainer, None, a.quiet)
}
