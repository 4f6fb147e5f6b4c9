//! Naming an image data set (`digits`, `mnist`, `fashion-mnist`, `cifar10`, a folder)
//! and loading it.

use super::batcher::{gather, ImageBatch};
use super::cifar::load_cifar10_dir;
use super::digits::load_digits;
use super::error::{ImageError, Result};
use super::folder::ImageFolder;
use super::idx::load_mnist_dir;
use super::set::ImageDataset;
use crate::fetch::{default_cache_dir, RemoteDataset};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// Which part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Test,
}

/// Default side length for image folders named by path only.
pub const DEFAULT_FOLDER_SIZE: usize = 32;

/// An image data set and where it lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSpec {
    /// Embedded UCI digits, 1×size×size (`size = 8` native, larger bilinearly upsampled).
    Digits { size: usize },
    /// MNIST IDX files in `dir` (raw or .gz).
    Mnist { dir: PathBuf },
    /// Fashion-MNIST IDX files in `dir` (raw or .gz).
    FashionMnist { dir: PathBuf },
    /// CIFAR-10 binary batches in `dir` (or `dir/cifar-10-batches-bin`).
    Cifar10 { dir: PathBuf },
    /// A folder of PNG/JPEG files, resized + centre-cropped to size×size, 1 or 3 channels.
    Folder { path: PathBuf, size: usize, channels: usize },
}

impl FromStr for ImageSpec {
    type Err = ImageError;

    /// `digits`, `digits:16` (or `digits16`), `mnist[:DIR]`, `fashion-mnist[:DIR]`,
    /// `cifar10[:DIR]`, `folder:PATH`, or the path of an existing directory
    /// (a folder of images at 32×32 RGB). Without `:DIR` the fetch cache is used
    /// (`$REDIFFUSE_DATA` or `~/.cache/rediffuse`, sub-folder `mnist`, `fashion-mnist`, `cifar10`).
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let cache = |d: RemoteDataset| -> PathBuf {
            arg.map(PathBuf::from).unwrap_or_else(|| default_cache_dir().join(d.dir_name()))
        };
        let lower = name.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "digits" => {
                let size = match arg {
                    Some(a) => a.parse().map_err(|_| ImageError::invalid("digits size", format!("`{a}`")))?,
                    None => 8,
                };
                ImageSpec::Digits { size }
            }
            "digits16" if arg.is_none() => ImageSpec::Digits { size: 16 },
            "mnist" => ImageSpec::Mnist { dir: cache(RemoteDataset::Mnist) },
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => {
                ImageSpec::FashionMnist { dir: cache(RemoteDataset::FashionMnist) }
            }
            "cifar10" | "cifar-10" => ImageSpec::Cifar10 { dir: cache(RemoteDataset::Cifar10) },
            "folder" if arg.is_some() => ImageSpec::Folder {
                path: PathBuf::from(arg.unwrap_or_default()),
                size: DEFAULT_FOLDER_SIZE,
                channels: 3,
            },
            _ if PathBuf::from(s).is_dir() => {
                ImageSpec::Folder { path: PathBuf::from(s), size: DEFAULT_FOLDER_SIZE, channels: 3 }
            }
            _ => {
                return Err(ImageError::invalid(
                    "data set",
                    format!("`{s}` is neither digits|mnist|fashion-mnist|cifar10 nor an existing folder"),
                ))
            }
        })
    }
}

impl ImageSpec {
    /// Short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ImageSpec::Digits { .. } => "digits",
            ImageSpec::Mnist { .. } => "mnist",
            ImageSpec::FashionMnist { .. } => "fashion-mnist",
            ImageSpec::Cifar10 { .. } => "cifar10",
            ImageSpec::Folder { .. } => "folder",
        }
    }

    /// Open the data set. Digits and folders only have a training split.
    pub fn open(&self, split: Split) -> Result<Box<dyn ImageDataset>> {
        let train = split == Split::Train;
        if !train && matches!(self, ImageSpec::Digits { .. } | ImageSpec::Folder { .. }) {
            return Err(ImageError::NoSplit { dataset: self.name(), split: "test" });
        }
        Ok(match self {
            ImageSpec::Digits { size } => Box::new(load_digits(*size)?),
            ImageSpec::Mnist { dir } | ImageSpec::FashionMnist { dir } => {
                Box::new(load_mnist_dir(dir, train)?)
            }
            ImageSpec::Cifar10 { dir } => Box::new(load_cifar10_dir(dir, train)?),
            ImageSpec::Folder { path, size, channels } => {
                Box::new(ImageFolder::open(path, *size, *channels)?)
            }
        })
    }

    /// `n` images (all, in stored order, when `None`; else the first `n` of a
    /// ChaCha8(`seed`) permutation) as `[N, C, H, W]` in [−1, 1] on the CPU, with labels.
    pub fn load(&self, n: Option<usize>, seed: u64, split: Split) -> Result<ImageBatch> {
        let ds = self.open(split)?;
        let indices = sample_indices(ds.len(), n, seed)?;
        gather(ds.as_ref(), &indices, &Device::Cpu)
    }
}

/// All indices (`n = None`) or the first `n` of a seeded permutation of `0..len`.
pub fn sample_indices(len: usize, n: Option<usize>, seed: u64) -> Result<Vec<usize>> {
    match n {
        None => Ok((0..len).collect()),
        Some(n) if n > len => {
            Err(ImageError::invalid("n", format!("{n} images requested, the data set has {len}")))
        }
        Some(n) => {
            let mut idx: Vec<usize> = (0..len).collect();
            idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
            idx.truncate(n);
            Ok(idx)
        }
    }
}

/// Parse `name_or_folder` (see [`ImageSpec::from_str`]) and load `n` training images.
pub fn load_images(name_or_folder: &str, n: Option<usize>, seed: u64) -> Result<Tensor> {
    Ok(name_or_folder.parse::<ImageSpec>()?.load(n, seed, Split::Train)?.images)
}
