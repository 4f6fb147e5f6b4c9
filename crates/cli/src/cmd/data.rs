//! `rediffuse data …` and the data-spec resolution shared by train/sample/eval.

use crate::args::{DataCommand, ExportArgs, FetchArgs, RemoteKind};
use crate::io::{positive, prepare_output};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rediffuse_data::fetch::{default_cache_dir, Fetcher, RemoteDataset};
use rediffuse_data::images::{ImageSpec, Split};
use rediffuse_data::npy::{write_npy_tensor, NpyDtype};
use rediffuse_data::source::DataSpec;
use rediffuse_data::DataError;
use rediffuse_nn::dit::DitConfig;
use rediffuse_nn::mlp::MlpConfig;
use rediffuse_nn::unet::UnetConfig;
use rediffuse_nn::ModelConfig;
use rediffuse_train::TrainConfig;

/// A data set named on the command line.
pub enum Data {
    /// 2-D toy set or `.npy` array.
    Plain(DataSpec),
    /// An image set.
    Images(ImageSpec),
}

/// Resolve a data name: toy sets and `.npy` files first, then image sets and folders.
pub fn parse(spec: &str) -> Result<Data> {
    match DataSpec::parse(spec) {
        Ok(d) => Ok(Data::Plain(d)),
        Err(DataError::UnknownSource { valid, .. }) => match spec.parse::<ImageSpec>() {
            Ok(img) => Ok(Data::Images(img)),
            Err(_) => bail!(
                "unknown data set `{spec}`: expected {valid}, an image set (digits, digits:16, \
                 mnist[:DIR], fashion-mnist[:DIR], cifar10[:DIR]) or a folder of images"
            ),
        },
        Err(e) => Err(e.into()),
    }
}

/// Load a data set named by `spec` as `[N, …]` f32 (`n` rows; generated sets and
/// image subsets drawn with `seed`).
pub fn load(spec: &str, n: Option<usize>, seed: u64, device: &Device) -> Result<Tensor> {
    load_split(spec, n, seed, Split::Train, device)
}

/// Like [`load`], with the class labels (`[N]` u32) of labelled image sets.
pub fn load_with_labels(
    spec: &str,
    n: Option<usize>,
    seed: u64,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>)> {
    load_split_with_labels(spec, n, seed, Split::Train, device)
}

/// Like [`load_with_labels`], from the given split of an image set.
pub fn load_split_with_labels(
    spec: &str,
    n: Option<usize>,
    seed: u64,
    split: Split,
    device: &Device,
) -> Result<(Tensor, Option<Tensor>)> {
    match parse(spec)? {
        Data::Plain(d) if split == Split::Train => Ok((d.load(n, seed, device)?, None)),
        Data::Plain(_) => bail!("`{spec}` has no test split (only MNIST, Fashion-MNIST and CIFAR-10 do)"),
        Data::Images(img) => {
            let batch = img.load(n, seed, split).with_context(|| {
                format!(
                    "loading {} (for MNIST/Fashion-MNIST/CIFAR-10 run `rediffuse data fetch` first)",
                    img.name()
                )
            })?;
            let labels = batch.labels.map(|l| l.to_device(device)).transpose()?;
            Ok((batch.images.to_device(device)?, labels))
        }
    }
}

/// Like [`load`], from the given split of an image set.
pub fn load_split(spec: &str, n: Option<usize>, seed: u64, split: Split, device: &Device) -> Result<Tensor> {
    match parse(spec)? {
        Data::Plain(d) => Ok(d.load(n, seed, device)?),
        Data::Images(img) => {
            let batch = img.load(n, seed, split).with_context(|| {
                format!(
                    "loading {} (for MNIST/Fashion-MNIST/CIFAR-10 run `rediffuse data fetch` first)",
                    img.name()
                )
            })?;
            Ok(batch.images.to_device(device)?)
        }
    }
}

/// The U-Net preset named `preset`, or the one that fits the data set `data`.
pub fn default_unet(data: &str, preset: Option<&str>) -> Result<ModelConfig> {
    let name = match preset {
        Some(p) => p.to_string(),
        None => match parse(data)? {
            Data::Images(img) => img.name().to_string(),
            Data::Plain(_) => bail!("--model unet needs image data (or a --preset)"),
        },
    };
    let mut cfg = match name.as_str() {
        "digits" => UnetConfig::digits(),
        // one ResBlock per level and attention only in the middle: the 0.79 M-parameter
        // network of the speed benchmark, which trains ~2x faster than `UnetConfig::mnist()`
        "mnist" | "fashion-mnist" => UnetConfig {
            num_res_blocks: 1,
            attention_resolutions: vec![],
            num_heads: 1,
            groups: 8,
            ..UnetConfig::mnist()
        },
        "cifar10" => UnetConfig::cifar10(),
        "folder" => UnetConfig::cifar10(),
        other => bail!("unknown preset `{other}` (expected digits, mnist, fashion-mnist, cifar10)"),
    };
    if let Ok(Data::Images(ImageSpec::Digits { size })) = parse(data) {
        cfg.image_size = size;
    }
    Ok(ModelConfig::Unet(cfg))
}

/// The DiT preset named `preset`, or the one that fits the data set `data` (`digits`: 2×2
/// patches of the 8×8 digits, or of `digits:16`; `mnist`/`fashion-mnist`: 4×4 patches of 28×28).
pub fn default_dit(data: &str, preset: Option<&str>) -> Result<ModelConfig> {
    let name = match preset {
        Some(p) => p.to_string(),
        None => match parse(data)? {
            Data::Images(img) => img.name().to_string(),
            Data::Plain(_) => bail!("--model dit needs image data (or a --preset)"),
        },
    };
    let mut cfg = match name.as_str() {
        "digits" => DitConfig::digits(),
        "mnist" | "fashion-mnist" => DitConfig::mnist(),
        other => {
            bail!("preset `{other}` has no DiT (--model dit takes --preset digits, mnist or fashion-mnist)")
        }
    };
    if let Ok(Data::Images(ImageSpec::Digits { size })) = parse(data) {
        cfg.image_size = size;
    }
    Ok(ModelConfig::Dit(cfg))
}

/// The MLP of a preset (`data_dim` and the sample shape come from the data when training
/// starts): `digits` is a 512-wide residual MLP on the 64 pixels of the 8×8 digits.
pub fn default_mlp(preset: Option<&str>) -> Result<ModelConfig> {
    let mut m = MlpConfig::new(2);
    match preset {
        None => {}
        Some("digits") => m.hidden = MLP_DIGITS_HIDDEN,
        Some(other) => bail!("preset `{other}` has no MLP (--model mlp takes --preset digits)"),
    }
    Ok(ModelConfig::Mlp(m))
}

/// Width of the digits MLP preset.
pub const MLP_DIGITS_HIDDEN: usize = 512;
/// Steps, batch size, learning rate and warm-up of the digits MLP preset.
pub const MLP_DIGITS_TRAINING: (usize, usize, f64, usize) = (4000, 256, 2e-3, 200);

/// Steps, batch size, learning rate and warm-up of the digits DiT preset.
pub const DIT_DIGITS_TRAINING: (usize, usize, f64, usize) = (3000, 128, 1e-3, 200);
/// Steps, batch size, learning rate and warm-up of the MNIST / Fashion-MNIST DiT preset.
pub const DIT_MNIST_TRAINING: (usize, usize, f64, usize) = (4000, 64, 5e-4, 200);

/// Training hyper-parameters of a preset for the configured network (sizes chosen for a
/// 2-core CPU).
pub fn apply_preset(cfg: &mut TrainConfig, preset: &str) -> Result<()> {
    let mlp = matches!(cfg.model, ModelConfig::Mlp(_));
    let dit = matches!(cfg.model, ModelConfig::Dit(_));
    let (steps, batch, lr, warmup) = match (preset, mlp) {
        ("digits", false) if dit => DIT_DIGITS_TRAINING,
        ("mnist" | "fashion-mnist", false) if dit => DIT_MNIST_TRAINING,
        (other, false) if dit => {
            bail!("preset `{other}` has no DiT (--model dit takes --preset digits, mnist or fashion-mnist)")
        }
        ("digits", true) => MLP_DIGITS_TRAINING,
        ("digits", false) => (3000, 128, 2e-3, 200),
        ("mnist" | "fashion-mnist", false) => (4000, 64, 1e-3, 200),
        ("cifar10", false) => (20000, 64, 5e-4, 500),
        (other, true) => bail!("preset `{other}` has no MLP (--model mlp takes --preset digits)"),
        (other, false) => {
            bail!("unknown preset `{other}` (expected digits, mnist, fashion-mnist, cifar10)")
        }
    };
    cfg.steps = steps;
    cfg.batch_size = batch;
    cfg.lr = lr;
    cfg.warmup_steps = warmup;
    cfg.grad_clip = Some(1.0);
    cfg.ema_decay = 0.999;
    cfg.log_every = 50;
    cfg.checkpoint_every = 2000;
    Ok(())
}

/// Shape of one sample of a run's model.
pub fn run_sample_shape(config: &TrainConfig) -> Result<Vec<usize>> {
    Ok(config.model.sample_shape())
}

pub fn run(c: DataCommand) -> Result<()> {
    match c {
        DataCommand::Export(a) => export(a),
        DataCommand::Resize(a) => crate::cmd::resize::run(a),
        DataCommand::Degrade(a) => crate::cmd::cold::degrade(a),
        DataCommand::Fetch(a) => fetch(a),
    }
}

fn export(a: ExportArgs) -> Result<()> {
    let n = a.n.map(|v| positive("n", v)).transpose()?;
    prepare_output(&a.out, a.force)?;
    if let Some(png) = &a.png {
        prepare_output(png, a.force)?;
    }
    if let Some(l) = &a.labels_out {
        prepare_output(l, a.force)?;
    }
    let split = match a.split {
        crate::args::SplitKind::Train => Split::Train,
        crate::args::SplitKind::Test => Split::Test,
    };
    let (x, labels) = load_split_with_labels(&a.name, n, a.seed, split, &Device::Cpu)?;
    if a.labels_out.is_some() && labels.is_none() {
        bail!("{} has no class labels (--labels-out)", a.name);
    }
    write_npy_tensor(&a.out, &x, NpyDtype::F32).with_context(|| format!("writing {}", a.out.display()))?;
    if let (Some(path), Some(l)) = (&a.labels_out, labels) {
        write_npy_tensor(path, &l.to_dtype(candle_core::DType::F32)?, NpyDtype::F32)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(png) = &a.png {
        crate::cmd::sample::picture(&x, png, None)?;
    }
    eprintln!("wrote {} {:?} to {}", a.name, x.dims(), a.out.display());
    Ok(())
}

fn fetch(a: FetchArgs) -> Result<()> {
    let ds = match a.name {
        RemoteKind::Mnist => RemoteDataset::Mnist,
        RemoteKind::FashionMnist => RemoteDataset::FashionMnist,
        RemoteKind::Cifar10 => RemoteDataset::Cifar10,
    };
    let mut fetcher = Fetcher::new(a.dir.clone().unwrap_or_else(default_cache_dir));
    if let Some(url) = &a.base_url {
        fetcher = fetcher.with_base_url(url.clone());
    }
    let dir = match &a.from {
        Some(p) => fetcher.import_from(ds, p)?,
        None => fetcher.fetch(ds)?,
    };
    eprintln!("{} is in {}", ds.dir_name(), dir.display());
    Ok(())
}
