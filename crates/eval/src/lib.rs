//! Metrics for samples (low-dimensional distances; later feature-based metrics) and plots.
//!
//! Metrics take row-major `&[f64]` samples with an explicit dimension `d`
//! (`x.len() = n·d`), with `*_tensor` wrappers for `[N, ...]` tensors.

pub mod energy;
pub mod error;
pub mod features;
pub mod grid;
pub mod mmd;
mod pairwise;
pub mod plot;
pub mod psnr;
pub mod samples;
pub mod sliced;

pub use energy::{energy_distance, energy_distance_tensor};
pub use error::{EvalError, Result};
pub use mmd::{median_heuristic, mmd_rbf, mmd_rbf_multi, mmd_rbf_tensor, MmdResult};
pub use plot::{line_plot_png, scatter_png, scatter_png_in, PlotBounds};
pub use sliced::{sliced_wasserstein, sliced_wasserstein_tensor, wasserstein2_sq_1d};
