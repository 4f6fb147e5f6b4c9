//! `rediffuse demo`: train on the embedded 8×8 digits, then sample a grid.
//!
//! Default (`--model mlp`): EDM (Karras et al. 2022) around the residual MLP of the `digits` MLP
//! preset, sampled with EDM's stochastic sampler (Algorithm 2) — about a minute on 2 cores, and
//! on the digits the best of all method/sampler pairs measured on that MLP
//! (`methods_digits::digits_report`). `--model unet` / `--model dit`: DDPM with the `digits`
//! U-Net (about 10 minutes) or DiT, sampled with DDIM.

use crate::args::{DemoArgs, ModelKind};
use anyhow::{bail, Result};
use candle_core::Tensor;
use rediffuse_core::sde::EdmConfig;
use rediffuse_eval::grid::{denoising_strip_png, StripColumn};
use rediffuse_sample::dispatch::{Progress, SamplerSpec};
use rediffuse_sample::{DdimOptions, TimestepSpacing};
use rediffuse_train::{Method, TrainConfig};

/// σ_data of the digits: the standard deviation of their pixels in [−1, 1] (0.75).
const DIGITS_SIGMA_DATA: f64 = 0.75;

/// The demo's run configuration: the `digits` preset of `model`.
pub fn demo_config(model: ModelKind, seed: u64, steps: Option<usize>) -> Result<TrainConfig> {
    let (net, method) = match model {
        ModelKind::Mlp => (
            crate::cmd::data::default_mlp(Some("digits"))?,
            Method::Edm(EdmConfig { sigma_data: DIGITS_SIGMA_DATA, ..EdmConfig::default() }),
        ),
        ModelKind::Unet => {
            (crate::cmd::data::default_unet("digits", Some("digits"))?, Method::ddpm_default())
        }
        ModelKind::Dit => (crate::cmd::data::default_dit("digits", Some("digits"))?, Method::ddpm_default()),
    };
    let mut cfg = TrainConfig::new("digits", net, method);
    crate::cmd::data::apply_preset(&mut cfg, "digits")?;
    cfg.seed = seed;
    if let Some(s) = steps {
        cfg.steps = s;
    }
    Ok(cfg)
}

/// The demo's sampler for `model`.
fn demo_sampler(model: ModelKind) -> SamplerSpec {
    match model {
        // S_churn = 20 over 40 steps, churn for σ in [0.01, 5] (as measured in digits_report)
        ModelKind::Mlp => SamplerSpec::EdmStochastic {
            steps: 40,
            rho: 7.0,
            s_churn: 20.0,
            s_tmin: 0.01,
            s_tmax: 5.0,
            s_noise: 1.0,
        },
        ModelKind::Unet | ModelKind::Dit => SamplerSpec::Ddim(DdimOptions {
            steps: 50,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
            clip_x0: Some(1.0),
            clipped_model_output: true,
            stride_prev: false,
        }),
    }
}

pub fn run(a: DemoArgs) -> Result<()> {
    if a.out.exists() && std::fs::read_dir(&a.out)?.next().is_some() {
        bail!("{} already exists and is not empty: choose another --out or remove it", a.out.display());
    }
    let cfg = demo_config(a.model, a.seed, a.steps)?;
    // the MLP's data_dim and sample shape come from the data
    crate::cmd::train::train_in(&a.out, Some(cfg), None, a.quiet, true)?;

    let mut model = crate::cmd::sample::from_run(&a.out, true)?;
    // as `rediffuse sample` does for images: denoised estimates clipped to [−1, 1]
    model.clip_denoised = Some(1.0);
    let spec = demo_sampler(a.model);
    // The first batch's trajectory gives the denoising strip: x_t and the predicted x₀ of
    // 6 samples at every 7th step and the last.
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
