//! Sliced 2-Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015).
//!
//! `SW₂²(μ, ν) = E_θ[ W₂²(θ#μ, θ#ν) ]`, θ uniform on the unit sphere, estimated
//! with `n_projections` random directions. Each 1-D `W₂²` between empirical
//! measures is computed exactly from the quantile functions:
//! `W₂² = ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du`.

use crate::error::{EvalError, Result};
use crate::samples::{check_rows, tensor_pair};
use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Exact squared 2-Wasserstein distance between two 1-D empirical measures with
/// uniform weights (`1/n` and `1/m`; `n ≠ m` allowed). Inputs need not be sorted.
///
/// The quantile functions are step functions with jumps at `i/n` and `j/m`; the
/// integral of their squared difference is summed exactly over the merged steps.
pub fn wasserstein2_sq_1d(a: &[f64], b: &[f64]) -> Result<f64> {
    check_rows("a", a, 1, 1)?;
    check_rows("b", b, 1, 1)?;
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    Ok(w2_sq_sorted(&a, &b))
}

/// Same as [`wasserstein2_sq_1d`] for sorted, finite, non-empty inputs.
fn w2_sq_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as u128, b.len() as u128);
    // Positions along u ∈ [0, 1] are measured in units of 1/(n·m), exactly, as integers.
    let (mut i, mut j) = (0usize, 0usize);
    let mut u: u128 = 0;
    let mut total = 0.0;
    while i < a.len() && j < b.len() {
        let next_a = (i as u128 + 1) * m;
        let next_b = (j as u128 + 1) * n;
        let next = next_a.min(next_b);
        let diff = a[i] - b[j];
        total += diff * diff * (next - u) as f64;
        u = next;
        if next_a == next {
            i += 1;
        }
        if next_b == next {
            j += 1;
        }
    }
    total / (n * m) as f64
}

/// Squared sliced 2-Wasserstein distance `SW₂²` between samples `x` (n×d) and `y` (m×d),
/// row-major, with `n_projections` directions drawn from a ChaCha8 stream seeded with `seed`
/// (uniform on the sphere: normalised standard normal vectors). For `d = 1` the single
/// direction is used, giving the exact `W₂²`. `n ≠ m` is allowed.
pub fn sliced_wasserstein(x: &[f64], y: &[f64], d: usize, n_projections: usize, seed: u64) -> Result<f64> {
    let n = check_rows("x", x, d, 1)?;
    let m = check_rows("y", y, d, 1)?;
    if n_projections == 0 {
        return Err(EvalError::invalid("n_projections", "must be at least 1"));
    }
    if d == 1 {
        return wasserstein2_sq_1d(x, y);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut theta = vec![0.0; d];
    let mut px = vec![0.0; n];
    let mut py = vec![0.0; m];
    let mut total = 0.0;
    for _ in 0..n_projections {
        let norm = loop {
            theta.iter_mut().for_each(|t| *t = rng.sample::<f64, _>(StandardNormal));
            let norm = theta.iter().map(|t| t * t).sum::<f64>().sqrt();
            if norm > 1e-12 {
                break norm;
            }
        };
        theta.iter_mut().for_each(|t| *t /= norm);
        project(x, &theta, &mut px);
        project(y, &theta, &mut py);
        px.sort_unstable_by(f64::total_cmp);
        py.sort_unstable_by(f64::total_cmp);
        total += w2_sq_sorted(&px, &py);
    }
    Ok(total / n_projections as f64)
}

fn project(x: &[f64], theta: &[f64], out: &mut [f64]) {
    for (o, row) in out.iter_mut().zip(x.chunks_exact(theta.len())) {
        *o = row.iter().zip(theta).map(|(a, b)| a * b).sum();
    }
}

/// [`sliced_wasserstein`] for tensors `[N, ...]` and `[M, ...]` (rows flattened).
pub fn sliced_wasserstein_tensor(x: &Tensor, y: &Tensor, n_projections: usize, seed: u64) -> Result<f64> {
    let (xv, yv, d) = tensor_pair(x, y)?;
    sliced_wasserstein(&xv, &yv, d, n_projections, seed)
}
