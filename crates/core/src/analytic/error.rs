//! Typed errors raised while building analytic denoisers.

use crate::error::CoreError;
use std::path::PathBuf;

/// Why an analytic denoiser (or its specification) could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticError {
    /// The JSON text of a specification is malformed or has missing/extra fields.
    #[error("malformed specification: {0}")]
    Json(#[from] serde_json::Error),
    /// A specification file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A value is NaN/infinite or outside its valid range.
    #[error("invalid `{name}`: {reason}")]
    Invalid { name: &'static str, reason: String },
    /// Dimensions of the inputs disagree.
    #[error("dimension mismatch: {0}")]
    Dimension(String),
    /// The covariance is not symmetric.
    #[error("covariance is not symmetric: cov[{i}][{j}] = {a} but cov[{j}][{i}] = {b}")]
    NotSymmetric { i: usize, j: usize, a: f64, b: f64 },
    /// The covariance has a clearly negative eigenvalue.
    #[error("covariance is not positive semi-definite: smallest eigenvalue {min_eigenvalue}")]
    NotPositiveSemiDefinite { min_eigenvalue: f64 },
    /// The symmetric eigen-solver did not converge.
    #[error("eigen-decomposition did not converge")]
    NoConvergence,
    /// Error from the schedule or tensor layer.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<candle_core::Error> for AnalyticError {
    fn from(e: candle_core::Error) -> Self {
        AnalyticError::Core(CoreError::Candle(e))
    }
}

impl From<AnalyticError> for CoreError {
    fn from(e: AnalyticError) -> Self {
        match e {
            AnalyticError::Core(c) => c,
            AnalyticError::Dimension(m) => CoreError::Shape(m),
            other => CoreError::invalid("analytic denoiser", other.to_string()),
        }
    }
}

impl AnalyticError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        AnalyticError::Invalid { name, reason: reason.into() }
    }
}

pub type AnalyticResult<T> = std::result::Result<T, AnalyticError>;
