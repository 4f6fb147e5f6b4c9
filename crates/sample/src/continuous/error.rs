//! Typed errors of the continuous-time samplers.

use rediffuse_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum ContinuousError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A sampler or loss option is out of range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// Inputs of inconsistent shape.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The adaptive ODE solver could not meet its tolerance.
    #[error("ODE solver failed: {0}")]
    Solver(String),
}

pub type Result<T> = std::result::Result<T, ContinuousError>;

impl ContinuousError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        ContinuousError::InvalidParameter { name, reason: reason.into() }
    }
}

/// `v` must be finite and > 0.
pub fn positive(name: &'static str, v: f64) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        return Err(ContinuousError::invalid(name, format!("must be a finite number > 0, got {v}")));
    }
    Ok(())
}

/// `v` must be finite and >= 0.
pub fn non_negative(name: &'static str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(ContinuousError::invalid(name, format!("must be a finite number >= 0, got {v}")));
    }
    Ok(())
}

/// A noise-level schedule must be finite, non-negative, strictly decreasing, with ≥ 2 entries.
pub fn check_sigmas(sigmas: &[f64]) -> Result<()> {
    if sigmas.len() < 2 {
        return Err(ContinuousError::invalid("sigmas", "need at least 2 noise levels"));
    }
    for (i, w) in sigmas.windows(2).enumerate() {
        if !(w[0].is_finite() && w[1].is_finite() && w[1] >= 0.0 && w[1] < w[0]) {
            return Err(ContinuousError::invalid(
                "sigmas",
                format!("must be finite, >= 0 and strictly decreasing (entries {i}, {})", i + 1),
            ));
        }
    }
    Ok(())
}
