//! `rediffuse train-autoencoder`: train latent diffusion's KL autoencoder on an image set and
//! write it as a diffusers `AutoencoderKL` folder, reporting the reconstruction PSNR.

use crate::args::TrainAutoencoderArgs;
use crate::cmd::data::{parse, Data};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use rediffuse_data::images::{gather, Split};
use rediffuse_nn::AutoencoderKlConfig;
use rediffuse_train::autoencoder::{save_diffusers_autoencoder, train_autoencoder, AeTrainConfig};
use std::time::Instant;

/// PSNR (dB) of `y` against `x`, images in [−1, 1] (peak-to-peak 2).
fn psnr(x: &Tensor, y: &Tensor) -> Result<f64> {
    let mse = (x - y)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
    Ok(10.0 * (4.0 / mse.max(1e-20)).log10())
}

pub fn run(a: TrainAutoencoderArgs) -> Result<()> {
    let spec = match parse(&a.data)? {
        Data::Images(s) => s,
        Data::Plain(_) => bail!("--data must be an image set (digits, mnist, fashion-mnist, a folder)"),
    };
    if a.out.exists() && std::fs::read_dir(&a.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("--out {} exists and is not empty; not overwriting it", a.out.display());
    }
    let ds = spec.open(Split::Train).with_context(|| format!("loading {}", a.data))?;
    let all: Vec<usize> = (0..ds.len()).collect();
    let images = gather(ds.as_ref(), &all, &Device::Cpu)?.images.to_dtype(DType::F32)?;
    let (_, c, h, w) = images.dims4()?;
    if h != w {
        bail!("the autoencoder takes square images, {} has {h}×{w}", a.data);
    }
    let levels = a.channels.len();
    let cfg = AutoencoderKlConfig {
        in_channels: c,
        out_channels: c,
        down_block_types: vec!["DownEncoderBlock2D".into(); levels],
        up_block_types: vec!["UpDecoderBlock2D".into(); levels],
        block_out_channels: a.channels.clone(),
        layers_per_block: a.layers_per_block,
        latent_channels: a.latent_channels,
        norm_num_groups: a.groups,
        sample_size: h,
        ..AutoencoderKlConfig::default()
    };
    cfg.validate()?;
    if levels == 0 || h % (1 << (levels - 1)) != 0 {
        bail!(
            "--channels: {levels} levels need the image side {h} divisible by 2^{}",
            levels.saturating_sub(1)
        );
    }
    let tc = AeTrainConfig {
        steps: a.steps,
        batch_size: a.batch_size,
        lr: a.lr,
        kl_weight: a.kl_weight,
        seed: a.seed,
    };
    let start = Instant::now();
    let quiet = a.quiet;
    let every = (a.steps / 10).max(1);
    let (ae, vm) = train_autoencoder(&cfg, &images, &tc, |s| {
        if !quiet && (s.step % every == 0 || s.step == 1) {
            eprintln!("step {:>6}  mse {:.5}  kl {:.3}", s.step, s.mse, s.kl);
        }
    })?;
    let n = images.dim(0)?.min(512);
    let x = images.narrow(0, 0, n)?;
    let rec = ae.decode(&ae.encode(&x)?.mean)?;
    let p = psnr(&x, &rec)?;
    // held-out images, where the data set has a test split (MNIST, Fashion-MNIST, CIFAR-10)
    let test = match spec.load(Some(n), 0, Split::Test) {
        Ok(b) => {
            let x = b.images.to_dtype(DType::F32)?;
            let rec = ae.decode(&ae.encode(&x)?.mean)?;
            format!(", {:.2} dB on {} test images", psnr(&x, &rec)?, x.dim(0)?)
        }
        Err(_) => String::new(),
    };
    save_diffusers_autoencoder(&a.out, &ae, &vm)?;
    let z = cfg.latent_side(h);
    println!(
        "autoencoder: {c}×{h}×{w} -> {}×{z}×{z} latents, reconstruction PSNR {p:.2} dB ({n} training images{test}), \
         scaling_factor {:.4}, {:.0} s; written to {}",
        cfg.latent_channels,
        ae.config().scaling_factor,
        start.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}
