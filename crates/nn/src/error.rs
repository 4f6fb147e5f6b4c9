//! Typed errors of the network layer.

/// Errors raised when a model configuration or its input data is invalid.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A model hyper-parameter is out of range; `field` names it (e.g. `hidden`).
    #[error("invalid model config `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// The per-sample data shape does not fit the model.
    #[error("data sample shape {got:?} does not fit the model: {reason}")]
    DataShape { got: Vec<usize>, reason: String },
    /// Invalid U-Net configuration.
    #[error(transparent)]
    Unet(#[from] crate::unet::UnetError),
    /// A weights file does not fit the network built on it ([`crate::checkpoint`]).
    #[error("weights do not fit the model: {0}")]
    Weights(crate::checkpoint::WeightReport),
    /// A checkpoint file or folder is missing, unreadable or malformed.
    #[error("{}: {reason}", path.display())]
    Checkpoint { path: std::path::PathBuf, reason: String },
    /// A diffusers config option this crate does not implement.
    #[error("unsupported diffusers config `{field}` = {value} ({reason})")]
    Unsupported { field: String, value: String, reason: String },
    /// Error raised by the tensor engine.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl NnError {
    pub fn checkpoint(path: impl Into<std::path::PathBuf>, reason: impl std::fmt::Display) -> Self {
        NnError::Checkpoint { path: path.into(), reason: reason.to_string() }
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        NnError::InvalidConfig { field, reason: reason.into() }
    }
}
