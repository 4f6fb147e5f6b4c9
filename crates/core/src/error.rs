//! Typed errors of the core layer.

/// Errors raised by core math and the `Denoiser` plumbing.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A hyper-parameter is out of its valid range (negative, NaN, ...).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// Shapes of inputs disagree.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Error raised by the tensor engine.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        CoreError::InvalidParameter { name, reason: reason.into() }
    }
}

/// Check that `v` is finite and strictly positive.
pub fn check_positive(name: &'static str, v: f64) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        return Err(CoreError::invalid(name, format!("must be a finite number > 0, got {v}")));
    }
    Ok(())
}

/// Check that `v` is finite and >= 0.
pub fn check_non_negative(name: &'static str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(CoreError::invalid(name, format!("must be a finite number >= 0, got {v}")));
    }
    Ok(())
}
