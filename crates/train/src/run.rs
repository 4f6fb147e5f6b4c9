//! Loading a trained run for sampling.

use crate::checkpoint::{
    assign_params, find_checkpoint, read_state, read_tensors, CONFIG_FILE, EMA_FILE, MODEL_FILE, STATE_FILE,
};
use crate::config::TrainConfig;
use crate::error::Result;
use crate::init::{sorted_params, SeededInit};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rediffuse_core::{Denoiser, DiffusionSchedule, Prediction};
use rediffuse_nn::DiffusionNet;
use std::path::Path;

/// A trained network seen as a [`Denoiser`]: `forward(x_t, t) = net.forward(x_t, t, train = false)`.
pub struct NetDenoiser {
    pub net: Box<dyn DiffusionNet>,
    pub prediction: Prediction,
}

impl NetDenoiser {
    pub fn new(net: Box<dyn DiffusionNet>, prediction: Prediction) -> Self {
        Self { net, prediction }
    }
}

impl Denoiser for NetDenoiser {
    fn prediction(&self) -> Prediction {
        self.prediction
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        Ok(self.net.forward(x_t, t, false)?)
    }
}

/// A run folder loaded for inference.
pub struct LoadedRun {
    pub config: TrainConfig,
    pub schedule: DiffusionSchedule,
    pub denoiser: NetDenoiser,
    /// Steps the checkpoint was trained for.
    pub step: u64,
    /// Whether the EMA weights were loaded.
    pub ema: bool,
}

/// Load `dir/config.toml` and the latest checkpoint's weights (`ema.safetensors` when
/// `use_ema`, else `model.safetensors`) onto `device`.
/// Missing files -> `TrainError::MissingFile`; unreadable or mismatching ones -> `Corrupt`.
pub fn load_run(dir: &Path, use_ema: bool, device: &Device) -> Result<LoadedRun> {
    let config = TrainConfig::load(&dir.join(CONFIG_FILE))?;
    let ckpt = find_checkpoint(dir)?;
    let state = read_state(&ckpt.join(STATE_FILE))?;
    let varmap = VarMap::new();
    let net = config.model.build(SeededInit::zeros_var_builder(&varmap, device))?;
    let weights = ckpt.join(if use_ema { EMA_FILE } else { MODEL_FILE });
    assign_params(&sorted_params(&varmap), read_tensors(&weights, device)?, &weights)?;
    Ok(LoadedRun {
        schedule: config.method.schedule()?,
        denoiser: NetDenoiser { net, prediction: config.method.prediction() },
        config,
        step: state.step,
        ema: use_ema,
    })
}
