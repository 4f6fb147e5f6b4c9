//! Typed errors of the feature-based metrics.

use std::path::PathBuf;

/// Errors raised by feature extraction and the feature-based metrics.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// A hyper-parameter is out of its valid range (negative, NaN, too large for the data, ...).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// Shapes of inputs disagree or are not what the operation needs.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Not enough samples for the requested estimator.
    #[error("not enough samples: {0}")]
    TooFewSamples(String),
    /// A feature or probability value is NaN or infinite.
    #[error("non-finite value in {0}")]
    NonFinite(&'static str),
    /// Statistics computed with different feature extractors cannot be compared.
    #[error("incompatible statistics: `{left}` vs `{right}`")]
    IncompatibleStats { left: String, right: String },
    /// A weights file lacks a tensor or holds one of the wrong shape.
    #[error("weights {path}: {reason}")]
    Weights { path: PathBuf, reason: String },
    /// A statistics file is malformed.
    #[error("statistics file {path}: {reason}")]
    StatsFile { path: PathBuf, reason: String },
    /// File system error.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Error raised by the tensor engine.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, FeatureError>;

impl FeatureError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        FeatureError::InvalidParameter { name, reason: reason.into() }
    }
}
