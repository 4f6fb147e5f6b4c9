//! Tiny dense symmetric linear algebra in f64 (for the analytic Gaussian).

use super::error::{ContinuousError, Result};

/// Eigen-decomposition A = Q·diag(λ)·Qᵀ of a symmetric `n×n` row-major matrix by cyclic Jacobi
/// rotations. Returns (λ, Q) with Q row-major, column k the k-th eigenvector.
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if a.len() != n * n || n == 0 {
        return Err(ContinuousError::Shape(format!("matrix of {} entries is not {n}×{n}", a.len())));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(ContinuousError::invalid("matrix", "contains non-finite entries"));
    }
    for i in 0..n {
        for j in 0..i {
            let (x, y) = (a[i * n + j], a[j * n + i]);
            if (x - y).abs() > 1e-9 * (1.0 + x.abs().max(y.abs())) {
                return Err(ContinuousError::invalid("matrix", "is not symmetric"));
            }
        }
    }
    let mut m = a.to_vec();
    let mut q = vec![0.0; n * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j].powi(2))
            .sum();
        let diag: f64 = (0..n).map(|i| m[i * n + i].powi(2)).sum();
        if off <= 1e-30 * diag.max(1e-300) {
            break;
        }
        for p in 0..n {
            for r in (p + 1)..n {
                let apr = m[p * n + r];
                if apr == 0.0 {
                    continue;
                }
                let theta = (m[r * n + r] - m[p * n + p]) / (2.0 * apr);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkr) = (m[k * n + p], m[k * n + r]);
                    m[k * n + p] = c * mkp - s * mkr;
                    m[k * n + r] = s * mkp + c * mkr;
                }
                for k in 0..n {
                    let (mpk, mrk) = (m[p * n + k], m[r * n + k]);
                    m[p * n + k] = c * mpk - s * mrk;
                    m[r * n + k] = s * mpk + c * mrk;
                }
                for k in 0..n {
                    let (qkp, qkr) = (q[k * n + p], q[k * n + r]);
                    q[k * n + p] = c * qkp - s * qkr;
                    q[k * n + r] = s * qkp + c * qkr;
                }
            }
        }
    }
    Ok(((0..n).map(|i| m[i * n + i]).collect(), q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstructs_matrix() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, -0.2, 0.5, -0.2, 2.0];
        let (l, q) = symmetric_eigen(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| q[i * 3 + k] * l[k] * q[j * 3 + k]).sum();
                assert!((v - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        assert!(symmetric_eigen(&[1.0, 2.0, 0.0, 1.0], 2).is_err());
    }
}
