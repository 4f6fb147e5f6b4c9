//! `rediffuse interpolate`: DDIM-style interpolation (Song et al. 2021a §5.3) between the latents
//! of two seeds, decoded by a deterministic sampler.

use crate::args::InterpolateArgs;
use crate::cmd::sample::{clip_of, from_run, generate, guidance_of, picture, sampler_of, sigma_schedule_of};
use crate::io::prepare_output;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use rediffuse_core::NoiseSource;
use rediffuse_data::npy::{write_npy_tensor, NpyDtype};
use rediffuse_sample::dispatch::{FinalSigma, SamplerSpec};
use rediffuse_sample::slerp;

/// Whether `spec` maps x_T to x₀ deterministically (no noise drawn while sampling).
fn deterministic(spec: &SamplerSpec) -> bool {
    match spec {
        SamplerSpec::Ddim(o) => o.eta == 0.0,
        SamplerSpec::Consistency { steps } => *steps == 1,
        SamplerSpec::EdmStochastic { s_churn, .. } => *s_churn == 0.0,
        SamplerSpec::OdeEuler { .. }
        | SamplerSpec::OdeHeun { .. }
        | SamplerSpec::OdeRk45 { .. }
        | SamplerSpec::DpmSolver { .. }
        | SamplerSpec::DpmPp2m { .. }
        | SamplerSpec::DpmPp3m { .. }
        | SamplerSpec::UniPc { .. }
        | SamplerSpec::Euler { .. }
        | SamplerSpec::Heun { .. }
        | SamplerSpec::EdmHeun { .. } => true,
        SamplerSpec::Ddpm(_)
        | SamplerSpec::DdpmLearned { .. }
        | SamplerSpec::Langevin { .. }
        | SamplerSpec::EulerMaruyama { .. }
        | SamplerSpec::Pc { .. } => false,
    }
}

pub fn run(a: InterpolateArgs) -> Result<()> {
    if a.frames < 2 {
        bail!("--frames must be at least 2 (both ends), got {}", a.frames);
    }
    prepare_output(&a.out, a.force)?;
    if let Some(p) = &a.npy {
        prepare_output(p, a.force)?;
    }
    let mut model = from_run(&a.run, !a.no_ema)?;
    let image = model.samples_are_images();
    let spec = sampler_of(&a.sampler, model.schedule(), image)?;
    if !deterministic(&spec) {
        bail!(
            "interpolation needs a deterministic sampler (ddim with --eta 0, ode-*, dpm-solver, dpmpp-*, unipc, \
             euler, heun, edm-heun, edm-stochastic with --s-churn 0); {} draws fresh noise while sampling",
            spec.name()
        );
    }
    model.clip_denoised = clip_of(&a.sampler, image)?.map(f64::from);
    model.sigma_schedule = sigma_schedule_of(&a.sampler)?;
    model.final_sigma = match a.sampler.final_sigma {
        crate::args::FinalSigmaKind::Zero => FinalSigma::Zero,
        crate::args::FinalSigmaKind::SigmaMin => FinalSigma::SigmaMin,
    };
    let conditional = match &model.source {
        crate::cmd::sample::Source::Run(r) => r.config.model.num_classes().is_some(),
        crate::cmd::sample::Source::Analytic { .. } => false,
    };
    if conditional && a.class.as_deref().is_none_or(|c| c == "all") {
        bail!("a class-conditional run interpolates within one class: give --class K");
    }
    model.guidance = guidance_of(&model, a.class.as_deref(), a.guidance_scale, a.frames)?;
    let dev = Device::Cpu;
    let shape = model.sample_shape.clone();
    let z = |seed: u64| -> Result<candle_core::Tensor> {
        Ok(NoiseSource::new(seed, 0, 1).randn(&shape, &dev)?.squeeze(0)?)
    };
    let alphas: Vec<f64> = (0..a.frames).map(|k| k as f64 / (a.frames - 1) as f64).collect();
    let init = slerp(&z(a.seed_a)?, &z(a.seed_b)?, &alphas)?;
    let (frames, _) = generate(&model, &spec, a.frames, a.seed_a, a.frames, Some(&init), a.quiet, None)?;
    let frames = model.to_data(frames)?;
    if let Some(p) = &a.npy {
        write_npy_tensor(p, &frames, NpyDtype::F32).with_context(|| format!("writing {}", p.display()))?;
    }
    match frames.dims() {
        [k, _, h, _] => {
            let scale = (64 / (*h).max(1)).clamp(1, 8);
            rediffuse_eval::grid::image_grid_png(&a.out, &frames, *k, scale, 2)?;
        }
        _ => picture(&frames, &a.out, None)?,
    }
    if !a.quiet {
        println!("{} frames from seed {} to seed {}: {}", a.frames, a.seed_a, a.seed_b, a.out.display());
    }
    Ok(())
}
