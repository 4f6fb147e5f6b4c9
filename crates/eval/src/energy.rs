//! Energy distance (Székely & Rizzo 2013, "Energy statistics").
//!
//! `D²(X, Y) = 2E|X − Y| − E|X − X'| − E|Y − Y'|`, estimated with the cross mean
//! over all pairs and U-statistics (`i ≠ j`) for the within-sample terms. For 1-D
//! data it equals `2 ∫ (F(t) − G(t))² dt`.

use crate::error::Result;
use crate::pairwise::{cross_sum, half_self_sum};
use crate::samples::{check_rows, tensor_pair};
use candle_core::Tensor;

/// Energy distance `D²` between `x` (n×d) and `y` (m×d), row-major; needs two rows in each.
pub fn energy_distance(x: &[f64], y: &[f64], d: usize) -> Result<f64> {
    let n = check_rows("x", x, d, 2)? as f64;
    let m = check_rows("y", y, d, 2)? as f64;
    let exy = cross_sum(x, y, d, f64::sqrt) / (n * m);
    let exx = 2.0 * half_self_sum(x, d, f64::sqrt) / (n * (n - 1.0));
    let eyy = 2.0 * half_self_sum(y, d, f64::sqrt) / (m * (m - 1.0));
    Ok(2.0 * exy - exx - eyy)
}

/// [`energy_distance`] for tensors `[N, ...]` and `[M, ...]` (rows flattened).
pub fn energy_distance_tensor(x: &Tensor, y: &Tensor) -> Result<f64> {
    let (xv, yv, d) = tensor_pair(x, y)?;
    energy_distance(&xv, &yv, d)
}
