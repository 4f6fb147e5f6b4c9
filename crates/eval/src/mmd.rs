//! Maximum mean discrepancy with Gaussian (RBF) kernels (Gretton et al. 2012, JMLR 13).
//!
//! Kernel `k(a, b) = exp(−|a − b|² / (2 h²))` with bandwidth `h`. The unbiased
//! estimator (Gretton et al., Lemma 6) is
//!
//! `MMD²_u = 1/(n(n−1)) Σ_{i≠j} k(x_i, x_j) + 1/(m(m−1)) Σ_{i≠j} k(y_i, y_j) − 2/(nm) Σ_{i,j} k(x_i, y_j)`;
//! it can be slightly negative when the distributions are equal.

use crate::error::{EvalError, Result};
use crate::pairwise::{cross_sum, half_self_sum};
use crate::samples::{check_rows, tensor_pair};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// Largest number of pooled points used by the median heuristic (a strided subset beyond that).
pub const MEDIAN_HEURISTIC_MAX_POINTS: usize = 1000;

/// Result of [`mmd_rbf`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MmdResult {
    /// Unbiased MMD² estimate.
    pub value: f64,
    /// Kernel bandwidth `h` used (given, or from the median heuristic).
    pub bandwidth: f64,
}

/// Median heuristic: the median Euclidean distance between distinct points of the pooled
/// sample (`x` and `y`, each thinned by a fixed stride to at most
/// [`MEDIAN_HEURISTIC_MAX_POINTS`]/2 rows).
pub fn median_heuristic(x: &[f64], y: &[f64], d: usize) -> Result<f64> {
    let n = check_rows("x", x, d, 1)?;
    let m = check_rows("y", y, d, 1)?;
    let half = MEDIAN_HEURISTIC_MAX_POINTS / 2;
    let mut pooled: Vec<&[f64]> = Vec::with_capacity(2 * half);
    for (s, rows) in [(x, n), (y, m)] {
        let stride = rows.div_ceil(half).max(1);
        pooled.extend(s.chunks_exact(d).step_by(stride));
    }
    let mut dists = Vec::with_capacity(pooled.len() * (pooled.len() - 1) / 2);
    for i in 0..pooled.len() {
        for j in i + 1..pooled.len() {
            dists.push(pooled[i].iter().zip(pooled[j]).map(|(a, b)| (a - b) * (a - b)).sum::<f64>());
        }
    }
    if dists.is_empty() {
        return Err(EvalError::DegenerateBandwidth);
    }
    let mid = dists.len() / 2;
    let (_, median, _) = dists.select_nth_unstable_by(mid, f64::total_cmp);
    let h = median.sqrt();
    if h > 0.0 {
        Ok(h)
    } else {
        Err(EvalError::DegenerateBandwidth)
    }
}

/// Unbiased MMD² with the sum of RBF kernels of the given bandwidths
/// (`k = Σ_b exp(−r²/(2h_b²))`, a characteristic kernel robust to the choice of scale).
/// Needs at least two rows in each sample.
pub fn mmd_rbf_multi(x: &[f64], y: &[f64], d: usize, bandwidths: &[f64]) -> Result<f64> {
    let n = check_rows("x", x, d, 2)? as f64;
    let m = check_rows("y", y, d, 2)? as f64;
    if bandwidths.is_empty() {
        return Err(EvalError::invalid("bandwidths", "need at least one bandwidth"));
    }
    if let Some(h) = bandwidths.iter().find(|h| !h.is_finite() || **h <= 0.0) {
        return Err(EvalError::invalid("bandwidth", format!("must be a finite number > 0, got {h}")));
    }
    let gammas: Vec<f64> = bandwidths.iter().map(|h| 1.0 / (2.0 * h * h)).collect();
    let k = |r2: f64| gammas.iter().map(|g| (-g * r2).exp()).sum::<f64>();
    let kxx = 2.0 * half_self_sum(x, d, k) / (n * (n - 1.0));
    let kyy = 2.0 * half_self_sum(y, d, k) / (m * (m - 1.0));
    let kxy = cross_sum(x, y, d, k) / (n * m);
    Ok(kxx + kyy - 2.0 * kxy)
}

/// Unbiased MMD² between `x` (n×d) and `y` (m×d) with one RBF kernel of bandwidth
/// `bandwidth`, or the [`median_heuristic`] bandwidth when `None`.
pub fn mmd_rbf(x: &[f64], y: &[f64], d: usize, bandwidth: Option<f64>) -> Result<MmdResult> {
    let h = match bandwidth {
        Some(h) => h,
        None => median_heuristic(x, y, d)?,
    };
    Ok(MmdResult { value: mmd_rbf_multi(x, y, d, &[h])?, bandwidth: h })
}

/// [`mmd_rbf`] for tensors `[N, ...]` and `[M, ...]` (rows flattened).
pub fn mmd_rbf_tensor(x: &Tensor, y: &Tensor, bandwidth: Option<f64>) -> Result<MmdResult> {
    let (xv, yv, d) = tensor_pair(x, y)?;
    mmd_rbf(&xv, &yv, d, bandwidth)
}
