//! `rediffuse demo`: train a DDPM U-Net on the embedded digits, then sample a grid with DDIM.

use crate::args::DemoArgs;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use rediffuse_core::noise::NoiseSource;
use rediffuse_eval::grid::{denoising_strip_png, StripColumn};
use rediffuse_sample::{DdimOptions, StepInfo, TimestepSpacing};
use rediffuse_train::{Method, TrainConfig};

/// The demo's run configuration: the `digits` preset.
pub fn demo_config(seed: u64, steps: Option<usize>) -> Result<TrainConfig> {
    let model = crate::cmd::data::default_unet("digits", Some("digits"))?;
    let mut cfg = TrainConfig::new("digits", model, Method::ddpm_default());
    crate::cmd::data::apply_preset(&mut cfg, "digits")?;
    cfg.seed = seed;
    if let Some(s) = steps {
        cfg.steps = s;
    }
    Ok(cfg)
}

pub fn run(a: DemoArgs) -> Result<()> {
    if a.out.exists() && std::fs::read_dir(&a.out)?.next().is_some() {
        bail!("{} already exists and is not empty: choose another --out or remove it", a.out.display());
    }
    let cfg = demo_config(a.seed, a.steps)?;
    crate::cmd::train::train_in(&a.out, Some(cfg), None, a.quiet, false)?;

    let model = crate::cmd::sample::from_run(&a.out, true)?;
    let opts = DdimOptions { steps: 50, eta: 0.0, spacing: TimestepSpacing::Leading, clip_x0: Some(1.0) };
    let sampler = crate::cmd::sample::Sampler::Ddim(opts);
    let n = 64;
    let samples = crate::cmd::sample::generate(&model, &sampler, n, a.seed, 64, None, a.quiet)?;
    let grid = a.out.join("samples.png");
    crate::cmd::sample::picture(&samples, &grid, None)?;
    rediffuse_data::npy::write_npy_tensor(
        a.out.join("samples.npy"),
        &samples,
        rediffuse_data::NpyDtype::F32,
    )?;

    // Denoising strip: x_t and the predicted x₀ of 6 samples at 8 of the 50 steps.
    let strip = a.out.join("denoising.png");
    let mut cols = Vec::new();
    let mut noise = NoiseSource::new(a.seed, 0, 6);
    let x_t = noise.randn(&model.sample_shape, &Device::Cpu)?;
    let mut record = |s: &StepInfo| {
        if s.step % 7 == 0 || s.step + 1 == s.num_steps {
            cols.push(StripColumn {
                label: format!("t={}", s.t_index),
                x_t: s.x_t.clone(),
                x0_pred: s.x0_pred.clone(),
            });
        }
    };
    let _: Tensor = sampler.run(&model, x_t, &mut noise, Some(&mut record))?;
    denoising_strip_png(&strip, &cols, 4, 2)?;
    println!("samples:   {}", grid.display());
    println!("denoising: {}", strip.display());
    println!("loss:      {}", a.out.join("loss.png").display());
    Ok(())
}
