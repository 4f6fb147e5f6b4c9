//! Typed errors of the evaluation layer.

/// Errors raised by metrics and plots.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A hyper-parameter is out of its valid range (negative, NaN, zero count, ...).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// Sample arrays have inconsistent shapes.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A sample contains NaN or infinity.
    #[error("sample `{which}` has a non-finite value at row {row}")]
    NonFinite { which: &'static str, row: usize },
    /// The median heuristic found no spread (all pairwise distances zero).
    #[error("median heuristic bandwidth is zero (all points coincide); pass a bandwidth explicitly")]
    DegenerateBandwidth,
    /// The plotting backend failed.
    #[error("plot error: {0}")]
    Plot(String),
    /// PNG encoding failed.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// Writing output files failed.
    #[error(transparent)]
    Data(#[from] rediffuse_data::DataError),
    /// Error raised by the tensor engine.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, EvalError>;

impl EvalError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        EvalError::InvalidParameter { name, reason: reason.into() }
    }
}
