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
    /// Error raised by the tensor engine.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl NnError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        NnError::InvalidConfig { field, reason: reason.into() }
    }
}
