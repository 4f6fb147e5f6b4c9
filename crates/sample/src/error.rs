//! Typed errors of the samplers.

use rediffuse_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A sampler option is out of range (NaN/negative η, steps 0 or > T, ...).
    #[error("invalid sampler option `{name}`: {reason}")]
    InvalidOption { name: &'static str, reason: String },
    /// The initial sample, the noise source or the model output disagree in shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Error from the core layer (schedule, model forward, prediction conversion).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Error raised by the tensor engine.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl SampleError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        SampleError::InvalidOption { name, reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, SampleError>;
