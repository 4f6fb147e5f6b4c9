//! Training loop, optimiser, EMA, checkpoints.
//!
//! The caller loads the data (a tensor `[N, …]`) and hands it to a [`Trainer`]; this crate does
//! not know where data come from. See [`checkpoint`] for the run-folder layout.

pub mod autoencoder;
pub mod batcher;
pub mod checkpoint;
pub mod classifier;
pub mod classifier_guidance;
pub mod config;
pub mod consistency;
pub mod diffusers_run;
pub mod distill;
pub mod ema;
pub mod error;
pub mod fsutil;
pub mod iddpm;
pub mod init;
mod kernels;
pub mod latent;
pub mod lr;
pub mod metrics;
pub mod objective;
pub mod optim;
pub mod periodic;
pub mod rng;
pub mod run;
pub mod superres;
pub mod trainer;

pub use config::{Method, TrainConfig};
pub use ema::Ema;
pub use error::{Result, TrainError};
pub use metrics::{read_metrics, MetricRecord};
pub use objective::Objective;
pub use optim::{AdamW, AdamWConfig};
pub use periodic::{EvalFeatures, PeriodicEval, PeriodicEvalConfig};
pub use run::{load_run, LoadedRun, NetDenoiser};
pub use superres::SuperResConfig;
pub use trainer::{
    NoObserver, StepOutcome, StepReport, TrainObserver, TrainSummary, Trainer, MAX_NONFINITE_STREAK,
};
