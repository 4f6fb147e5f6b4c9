//! Shared helpers of the integration tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rediffuse_core::{BetaSchedule, Prediction};
use rediffuse_nn::{MlpConfig, ModelConfig};
use rediffuse_train::{Method, StepReport, TrainConfig, TrainObserver};
use std::path::PathBuf;

/// `n` points of an equal-weight mixture of 4 isotropic Gaussians (σ = 0.15) at (±1, ±1).
pub fn gaussian_mixture(n: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let k: u32 = rng.random_range(0..4);
        let (cx, cy) = (if k & 1 == 0 { -1.0 } else { 1.0 }, if k & 2 == 0 { -1.0 } else { 1.0 });
        v.push(cx + 0.15 * rng.sample::<f32, _>(StandardNormal));
        v.push(cy + 0.15 * rng.sample::<f32, _>(StandardNormal));
    }
    Tensor::from_vec(v, (n, 2), &Device::Cpu).unwrap()
}

/// A fresh, non-existing directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn small_config(steps: usize) -> TrainConfig {
    let model =
        ModelConfig::Mlp(MlpConfig { hidden: 64, layers: 2, time_embed_dim: 16, ..MlpConfig::new(2) });
    let method = Method::Ddpm {
        schedule: BetaSchedule::linear(),
        timesteps: 100,
        prediction: Prediction::Epsilon,
        zero_terminal_snr: false,
    };
    let mut c = TrainConfig::new("gaussian-mixture", model, method);
    c.steps = steps;
    c.batch_size = 64;
    c.lr = 2e-3;
    c.seed = 11;
    c
}

/// Records every report; asks to stop once `stop_at` steps are done.
#[derive(Default)]
pub struct Recorder {
    pub reports: Vec<StepReport>,
    pub checkpoints: Vec<u64>,
    pub stop_at: Option<u64>,
}

impl TrainObserver for Recorder {
    fn on_step(&mut self, r: &StepReport) {
        self.reports.push(*r);
    }
    fn on_checkpoint(&mut self, step: u64) {
        self.checkpoints.push(step);
    }
    fn should_stop(&mut self) -> bool {
        matches!((self.stop_at, self.reports.last()), (Some(s), Some(r)) if r.step >= s)
    }
}
