//! `rediffuse demo`: train a DDPM U-Net on the embedded digits, then sample a grid with DDIM.

use crate::args::DemoArgs;
use anyhow::{bail, Result};
use candle_core::Tensor;
use rediffuse_eval::grid::{denoising_strip_png, StripColumn};
use rediffuse_sample::dispatch::{Progress, SamplerSpec};
use rediffuse_sample::{DdimOptions, TimestepSpacing};
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
    let spec = SamplerSpec::Ddim(DdimOptions {
        steps: 50,
        eta: 0.0,
        spacing: TimestepSpacing::Leading,
        clip_x0: Some(1.0),
    });
    // The first batch's trajectory gives the denoising strip: x_t and the predicted x₀ of
    // 6 samples at 8 of the 50 steps.
    let mut cols = Vec::new();
    let mut record = |p: &Progress| {
        if let Some(x0) = p.denoised {
            if p.step % 7 == 1 || Some(p.step) == p.total {
                let pick = |t: &Tensor| t.narrow(0, 0, 6.min(t.dim(0).unwrap_or(0)));
                if let (Ok(x_t), Ok(x0)) = (pick(p.x), pick(x0)) {
                    cols.push(StripColumn { label: format!("step {}", p.step), x_t, x0_pred: x0 });
                }
            }
        }
    };
    let (samples, _) =
        crate::cmd::sample::generate(&model, &spec, 64, a.seed, 64, None, a.quiet, Some(&mut record))?;
    let grid = a.out.join("samples.png");
    crate::cmd::sample::picture(&samples, &grid, None)?;
    rediffuse_data::npy::write_npy_tensor(
        a.out.join("samples.npy"),
        &samples,
        rediffuse_data::NpyDtype::F32,
    )?;
    let strip = a.out.join("denoising.png");
    denoising_strip_png(&strip, &cols, 4, 2)?;
    println!("samples:   {}", grid.display());
    println!("denoising: {}", strip.display());
    println!("loss:      {}", a.out.join("loss.png").display());
    Ok(())
}
