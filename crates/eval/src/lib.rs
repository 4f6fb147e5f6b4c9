//! Metrics for samples (low-dimensional distances; later feature-based metrics) and plots.
pub mod grid;
