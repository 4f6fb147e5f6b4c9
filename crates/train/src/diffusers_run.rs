//! diffusers pipeline or model folders as runs: `load_run` on a folder with a diffusers
//! `UNet2DModel` (`DIR/config.json`, or `DIR/unet/config.json` in a pipeline) and, when present,
//! its `DDPMScheduler`/`DDIMScheduler` config (`DIR/scheduler/scheduler_config.json` or
//! `DIR/scheduler_config.json`) gives a DDPM run whose network is the loaded U-Net, so every
//! sampler and metric works on it. Nothing is written into the folder.

use crate::config::{Method, TrainConfig};
use crate::error::{Result, TrainError};
use crate::run::LoadedRun;
use candle_core::Device;
use rediffuse_core::{BetaSchedule, Prediction};
use rediffuse_nn::diffusers::{DiffusersFolder, CONFIG_FILE};
use rediffuse_nn::ModelConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The model folder of a diffusers model or pipeline folder `dir`, if it is one.
pub fn diffusers_model_dir(dir: &Path) -> Option<PathBuf> {
    [dir.join("unet"), dir.to_path_buf()].into_iter().find(|d| d.join(CONFIG_FILE).is_file())
}

/// The scheduler keys that define the forward process (diffusers' defaults where absent).
#[derive(Debug, Deserialize)]
#[serde(default)]
struct SchedulerConfig {
    num_train_timesteps: usize,
    beta_start: f64,
    beta_end: f64,
    beta_schedule: String,
    trained_betas: Option<serde_json::Value>,
    prediction_type: String,
    rescale_betas_zero_snr: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
            beta_schedule: "linear".into(),
            trained_betas: None,
            prediction_type: "epsilon".into(),
            rescale_betas_zero_snr: false,
        }
    }
}

fn scheduler_method(dir: &Path) -> Result<Method> {
    let path = [dir.join("scheduler").join("scheduler_config.json"), dir.join("scheduler_config.json")]
        .into_iter()
        .find(|p| p.is_file());
    let s: SchedulerConfig = match &path {
        None => SchedulerConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| TrainError::io(p, e))?;
            serde_json::from_str(&text).map_err(|e| TrainError::corrupt(p, e))?
        }
    };
    let origin = path.unwrap_or_else(|| dir.join("scheduler_config.json"));
    let bad = |what: String| TrainError::corrupt(&origin, what);
    if s.trained_betas.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(bad("`trained_betas` is not supported".into()));
    }
    let schedule = match s.beta_schedule.as_str() {
        "linear" => BetaSchedule::Linear { beta_start: s.beta_start, beta_end: s.beta_end },
        "scaled_linear" => BetaSchedule::Quadratic { beta_start: s.beta_start, beta_end: s.beta_end },
        "squaredcos_cap_v2" => BetaSchedule::cosine(),
        other => return Err(bad(format!("beta_schedule `{other}` is not supported"))),
    };
    let prediction = match s.prediction_type.as_str() {
        "epsilon" => Prediction::Epsilon,
        "sample" => Prediction::Sample,
        "v_prediction" => Prediction::V,
        other => return Err(bad(format!("prediction_type `{other}` is not supported"))),
    };
    let method = Method::Ddpm {
        schedule,
        timesteps: s.num_train_timesteps,
        prediction,
        zero_terminal_snr: s.rescale_betas_zero_snr,
    };
    method.validate().map_err(|e| bad(e.to_string()))?;
    Ok(method)
}

/// Load a diffusers `UNet2DModel` folder (or a pipeline folder holding one in `unet/`) as a
/// DDPM run (step 0; the weights serve as both the model and its EMA).
pub fn load_diffusers_run(dir: &Path, device: &Device) -> Result<LoadedRun> {
    let model_dir = diffusers_model_dir(dir).ok_or_else(|| TrainError::MissingFile(dir.join(CONFIG_FILE)))?;
    let folder = DiffusersFolder::read(&model_dir, device).map_err(|e| TrainError::corrupt(&model_dir, e))?;
    if folder.class_name != "UNet2DModel" {
        return Err(TrainError::corrupt(
            model_dir.join(CONFIG_FILE),
            format!(
                "a `{}` cannot be run as a diffusion run from the command line (UNet2DModel can; \
                 DiTTransformer2DModel and AutoencoderKL load through rediffuse_nn::diffusers)",
                folder.class_name
            ),
        ));
    }
    let (cfg, _, tensors) = folder.unet2d().map_err(|e| TrainError::corrupt(&model_dir, e))?;
    let method = scheduler_method(dir)?;
    let config = TrainConfig::new(format!("diffusers:{}", dir.display()), ModelConfig::Unet(cfg), method);
    LoadedRun::from_weights(config, tensors, 0, true, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method_of(json: &str) -> Result<Method> {
        let d = std::env::temp_dir().join(format!("rediffuse-sched-{}-{}", std::process::id(), json.len()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("scheduler_config.json"), json).unwrap();
        let m = scheduler_method(&d);
        std::fs::remove_dir_all(&d).unwrap();
        m
    }

    #[test]
    fn scheduler_configs_map_to_ddpm_methods() {
        let m = method_of(
            r#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
            "prediction_type": "v_prediction", "num_train_timesteps": 500}"#,
        )
        .unwrap();
        let Method::Ddpm { schedule, timesteps, prediction, zero_terminal_snr } = m else { panic!() };
        assert_eq!(schedule, BetaSchedule::Quadratic { beta_start: 0.00085, beta_end: 0.012 });
        assert_eq!((timesteps, prediction, zero_terminal_snr), (500, Prediction::V, false));
        let m =
            method_of(r#"{"beta_schedule": "squaredcos_cap_v2", "rescale_betas_zero_snr": true}"#).unwrap();
        assert!(
            matches!(m, Method::Ddpm { schedule, zero_terminal_snr: true, .. } if schedule == BetaSchedule::cosine())
        );
        assert!(method_of(r#"{"trained_betas": [0.1, 0.2]}"#).is_err());
        assert!(method_of(r#"{"num_train_timesteps": 0}"#).is_err());
        assert!(method_of(r#"{"beta_start": -1.0}"#).is_err());
    }
}
