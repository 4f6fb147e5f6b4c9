//! Typed errors of the training layer.

use std::path::PathBuf;

/// Everything that can go wrong configuring, running, saving or loading a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration value is out of range; `field` is its path (e.g. `lr`, `model.hidden`).
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig { field: String, reason: String },
    /// A configuration file could not be parsed.
    #[error("cannot parse config {path}: {reason}")]
    ConfigParse { path: PathBuf, reason: String },
    /// The training data tensor is unusable (empty, non-finite, wrong shape for the model).
    #[error("invalid training data: {0}")]
    Data(String),
    /// A new run was asked to start in a directory that already holds files.
    #[error("run directory {0} exists and is not empty (resume it, or choose a new directory)")]
    RunDirNotEmpty(PathBuf),
    /// A file a run needs is absent.
    #[error("missing file {0}")]
    MissingFile(PathBuf),
    /// A run file exists but its content is unreadable or inconsistent with the run.
    #[error("corrupt file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The sample-quality evaluation during training failed.
    #[error("evaluation at step {step} failed: {reason}")]
    Eval { step: u64, reason: String },
    /// The loss (or its gradient norm) stayed NaN or infinite for `streak` steps in a row; the
    /// run's files hold the last good checkpoint, of step `checkpoint` (`None`: none written).
    #[error("training diverged: non-finite loss {loss} at step {step} ({streak} step(s) in a row){}", kept(*.checkpoint))]
    NonFiniteLoss { step: u64, loss: f64, streak: u64, checkpoint: Option<u64> },
    /// A weight became NaN or infinite (it is not written to a checkpoint).
    #[error("training diverged: parameter {param} is NaN or infinite at step {step}; the last good checkpoint is kept")]
    NonFiniteWeights { step: u64, param: String },
    /// File-system failure.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Core(#[from] rediffuse_core::CoreError),
    #[error(transparent)]
    Nn(#[from] rediffuse_nn::NnError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Error of the continuous-time adapters and losses.
    #[error(transparent)]
    Continuous(#[from] rediffuse_sample::continuous::ContinuousError),
    /// Error building a sampling model.
    #[error(transparent)]
    Dispatch(#[from] rediffuse_sample::dispatch::DispatchError),
}

pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TrainError::InvalidConfig { field: field.into(), reason: reason.into() }
    }
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        TrainError::Corrupt { path: path.into(), reason: reason.to_string() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io { path: path.into(), source }
    }
}

fn kept(checkpoint: Option<u64>) -> String {
    match checkpoint {
        Some(c) => format!("; the last good checkpoint, of step {c}, is kept"),
        None => String::new(),
    }
}
