//! Loading diffusers model folders (`config.json` + `diffusion_pytorch_model.safetensors`, as
//! written by diffusers' `save_pretrained`): `UNet2DModel` onto this crate's [`crate::Unet`],
//! `DiTTransformer2DModel` onto [`DitTransformer2d`], `AutoencoderKL` onto
//! [`crate::AutoencoderKl`]. Outputs reproduce diffusers' (golden tests in
//! `tests/diffusers_parity.rs`, made by `bench/diffusers_golden.py`).
//!
//! Config options this crate does not implement are refused ([`NnError::Unsupported`]), never
//! ignored; weights that do not fit the config are refused with every missing, misshapen and
//! unexpected tensor named ([`NnError::Weights`]).

mod dit;
mod unet2d;

pub use dit::{DitTransformer2d, DitTransformer2dConfig};
pub use unet2d::{unet_config, Unet2dModelConfig};

use crate::autoencoder::{AutoencoderKl, AutoencoderKlConfig};
use crate::checkpoint::build_checked;
use crate::error::NnError;
use crate::unet::Unet;
use crate::unet::UnetConfig;
use candle_core::{DType, Device, Tensor};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The config file of a diffusers model folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a diffusers model folder.
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";

/// A diffusers model folder read into memory: its `config.json` and its tensors.
pub struct DiffusersFolder {
    pub dir: PathBuf,
    /// `_class_name` of the config (`"UNet2DModel"`, …).
    pub class_name: String,
    pub config: serde_json::Value,
    pub tensors: HashMap<String, Tensor>,
    pub device: Device,
}

impl DiffusersFolder {
    /// Read `dir/config.json` and `dir/diffusion_pytorch_model.safetensors` (f32 on `device`).
    pub fn read(dir: &Path, device: &Device) -> Result<Self, NnError> {
        let cfg_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| NnError::checkpoint(&cfg_path, e))?;
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| NnError::checkpoint(&cfg_path, e))?;
        let class_name = config
            .get("_class_name")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                NnError::checkpoint(&cfg_path, "no `_class_name` (not a diffusers model config?)")
            })?
            .to_string();
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() {
            let reason = if dir.join("diffusion_pytorch_model.bin").is_file() {
                "missing; only PyTorch pickle weights (.bin) are there: save them with safe_serialization=True"
            } else {
                "missing"
            };
            return Err(NnError::checkpoint(&weights, reason));
        }
        let tensors = candle_core::safetensors::load(&weights, device)
            .map_err(|e| NnError::checkpoint(&weights, e))?
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
            .collect::<candle_core::Result<HashMap<_, _>>>()?;
        Ok(Self { dir: dir.to_path_buf(), class_name, config, tensors, device: device.clone() })
    }

    fn expect_class(&self, want: &str) -> Result<(), NnError> {
        if self.class_name != want {
            return Err(NnError::checkpoint(
                self.dir.join(CONFIG_FILE),
                format!("is a `{}`, not a `{want}`", self.class_name),
            ));
        }
        Ok(())
    }

    /// The config as `T` (diffusers' schema; unknown non-`_` keys are refused by `T`'s check).
    fn parse<T: DeserializeOwned>(&self) -> Result<T, NnError> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| NnError::checkpoint(self.dir.join(CONFIG_FILE), e))
    }

    /// A `UNet2DModel`: its config translated to [`UnetConfig`], the network, and the tensors in
    /// this crate's layout (the class-embedding table gets a zero "null label" row).
    pub fn unet2d(&self) -> Result<(UnetConfig, Unet, HashMap<String, Tensor>), NnError> {
        self.expect_class("UNet2DModel")?;
        let d: Unet2dModelConfig = self.parse()?;
        let cfg = unet_config(&d)?;
        let tensors = unet2d::convert_tensors(&self.tensors)?;
        let net = build_checked(&tensors, DType::F32, &self.device, |vb| Unet::new(&cfg, vb))?;
        Ok((cfg, net, tensors))
    }

    /// A `DiTTransformer2DModel`.
    pub fn dit(&self) -> Result<DitTransformer2d, NnError> {
        self.expect_class("DiTTransformer2DModel")?;
        let cfg: DitTransformer2dConfig = self.parse()?;
        build_checked(&self.tensors, DType::F32, &self.device, |vb| DitTransformer2d::new(&cfg, vb))
    }

    /// An `AutoencoderKL`.
    pub fn autoencoder_kl(&self) -> Result<AutoencoderKl, NnError> {
        self.expect_class("AutoencoderKL")?;
        let cfg: AutoencoderKlConfig = self.parse()?;
        build_checked(&self.tensors, DType::F32, &self.device, |vb| AutoencoderKl::new(&cfg, vb))
    }
}

/// Refuse config keys outside `known` (keys starting with `_` are diffusers' metadata).
pub(crate) fn refuse_unknown_keys(
    extra: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<(), NnError> {
    match extra.iter().find(|(k, _)| !k.starts_with('_')) {
        Some((k, v)) => Err(NnError::Unsupported {
            field: k.clone(),
            value: v.to_string(),
            reason: "option not implemented by rediffuse".into(),
        }),
        None => Ok(()),
    }
}

pub(crate) fn unsupported(field: &str, value: impl std::fmt::Display, reason: &str) -> NnError {
    NnError::Unsupported { field: field.into(), value: value.to_string(), reason: reason.into() }
}
