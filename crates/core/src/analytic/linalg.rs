//! Dense symmetric eigen-decomposition in f64 (Householder tridiagonalisation
//! followed by the implicit-shift QL iteration), used to diagonalise a
//! covariance once so that every timestep's posterior solve is diagonal.

use super::error::{AnalyticError, AnalyticResult};

/// Eigen-decomposition `A = V diag(λ) Vᵀ` of a symmetric matrix.
#[derive(Debug, Clone)]
pub struct SymmetricEigen {
    /// Eigenvalues λ, ascending.
    pub values: Vec<f64>,
    /// Eigenvectors, row-major `n × n`: column `k` (entries `vectors[i * n + k]`) belongs to `values[k]`.
    pub vectors: Vec<f64>,
    pub n: usize,
}

/// Diagonalise the symmetric `n × n` matrix `a` (row-major). Only symmetry is assumed.
pub fn symmetric_eigen(a: &[f64], n: usize) -> AnalyticResult<SymmetricEigen> {
    if a.len() != n * n {
        return Err(AnalyticError::Dimension(format!("matrix has {} entries, expected {n}²", a.len())));
    }
    if n == 0 {
        return Ok(SymmetricEigen { values: vec![], vectors: vec![], n });
    }
    let mut work = a.to_vec();
    let q = tridiagonalize(&mut work, n);
    let mut d: Vec<f64> = (0..n).map(|i| work[i * n + i]).collect();
    let mut e: Vec<f64> = (0..n).map(|i| if i + 1 < n { work[(i + 1) * n + i] } else { 0.0 }).collect();
    // Columns of Q stored contiguously (zt[k*n + r] = Q[r][k]) so the QL rotations stream memory.
    let mut zt = vec![0.0; n * n];
    for r in 0..n {
        for k in 0..n {
            zt[k * n + r] = q[r * n + k];
        }
    }
    tridiagonal_ql(&mut d, &mut e, &mut zt, n)?;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| d[i].total_cmp(&d[j]));
    let values = order.iter().map(|&k| d[k]).collect();
    let mut vectors = vec![0.0; n * n];
    for (col, &k) in order.iter().enumerate() {
        for r in 0..n {
            vectors[r * n + col] = zt[k * n + r];
        }
    }
    Ok(SymmetricEigen { values, vectors, n })
}

/// Reduce symmetric `a` (row-major, overwritten) to tridiagonal form `T = Qᵀ A Q`
/// with Householder reflections; returns `Q` (row-major).
fn tridiagonalize(a: &mut [f64], n: usize) -> Vec<f64> {
    let mut q = vec![0.0; n * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    let mut v = vec![0.0; n];
    let mut p = vec![0.0; n];
    for k in 0..n.saturating_sub(2) {
        let m = n - k - 1;
        let x = |i: usize, a: &[f64]| a[(k + 1 + i) * n + k];
        let norm = (0..m).map(|i| x(i, a).powi(2)).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let sign = if x(0, a) >= 0.0 { 1.0 } else { -1.0 };
        for (i, vi) in v[..m].iter_mut().enumerate() {
            *vi = x(i, a);
        }
        v[0] += sign * norm;
        let vtv: f64 = v[..m].iter().map(|t| t * t).sum();
        let beta = 2.0 / vtv;
        // p = β B v with B the trailing block.
        for i in 0..m {
            let row = &a[(k + 1 + i) * n + k + 1..(k + 1 + i) * n + n];
            p[i] = beta * row.iter().zip(&v[..m]).map(|(b, vj)| b * vj).sum::<f64>();
        }
        let kk = 0.5 * beta * (0..m).map(|i| v[i] * p[i]).sum::<f64>();
        for i in 0..m {
            p[i] -= kk * v[i]; // p now holds w = p − K v
        }
        for i in 0..m {
            let (vi, wi) = (v[i], p[i]);
            let row = &mut a[(k + 1 + i) * n + k + 1..(k + 1 + i) * n + n];
            for j in 0..m {
                row[j] -= vi * p[j] + wi * v[j];
            }
        }
        a[(k + 1) * n + k] = -sign * norm;
        a[k * n + k + 1] = -sign * norm;
        for i in 1..m {
            a[(k + 1 + i) * n + k] = 0.0;
            a[k * n + k + 1 + i] = 0.0;
        }
        // Q ← Q H
        for r in 0..n {
            let row = &mut q[r * n + k + 1..r * n + n];
            let qv: f64 = row.iter().zip(&v[..m]).map(|(a, b)| a * b).sum();
            let f = beta * qv;
            for (qi, vi) in row.iter_mut().zip(&v[..m]) {
                *qi -= f * vi;
            }
        }
    }
    q
}

/// Eigenvalues of the symmetric tridiagonal matrix with diagonal `d` and
/// off-diagonal `e` (`e[i]` couples `i` and `i+1`, `e[n−1]` unused) by QL with
/// implicit Wilkinson shifts. Rotations are applied to the columns of the
/// basis whose columns are stored as the rows of `zt`.
fn tridiagonal_ql(d: &mut [f64], e: &mut [f64], zt: &mut [f64], n: usize) -> AnalyticResult<()> {
    for l in 0..n {
        let mut iterations = 0;
        loop {
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > 100 {
                return Err(AnalyticError::NoConvergence);
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            let mut deflated = false;
            let mut i = m;
            while i > l {
                i -= 1;
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    deflated = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                let (lo, hi) = zt.split_at_mut((i + 1) * n);
                let zi = &mut lo[i * n..i * n + n];
                let zi1 = &mut hi[..n];
                for (a, b) in zi.iter_mut().zip(zi1.iter_mut()) {
                    let (x, y) = (*a, *b);
                    *b = s * x + c * y;
                    *a = c * x - s * y;
                }
            }
            if deflated {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn check(a: &[f64], n: usize) {
        let eig = symmetric_eigen(a, n).unwrap();
        let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for k in 0..n {
            for r in 0..n {
                let av: f64 = (0..n).map(|j| a[r * n + j] * eig.vectors[j * n + k]).sum();
                let err = (av - eig.values[k] * eig.vectors[r * n + k]).abs();
                assert!(err < 1e-10 * scale * n as f64, "A v ≠ λ v (n={n}, err={err})");
            }
            for k2 in 0..n {
                let dot: f64 = (0..n).map(|r| eig.vectors[r * n + k] * eig.vectors[r * n + k2]).sum();
                let want = if k == k2 { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-10 * n as f64, "VᵀV ≠ I (n={n})");
            }
        }
        for w in eig.values.windows(2) {
            assert!(w[0] <= w[1]);
        }
    }

    #[test]
    fn two_by_two_closed_form() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let eig = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
        assert!((eig.values[0] - 1.0).abs() < 1e-14 && (eig.values[1] - 3.0).abs() < 1e-14);
    }

    #[test]
    fn random_symmetric_matrices() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for n in [1usize, 2, 3, 5, 17, 64] {
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..=i {
                    let v: f64 = rng.random_range(-1.0..1.0);
                    a[i * n + j] = v;
                    a[j * n + i] = v;
                }
            }
            check(&a, n);
        }
    }

    #[test]
    fn degenerate_and_diagonal() {
        check(&[0.0; 9], 3);
        check(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], 3);
        // rank-one matrix u uᵀ: eigenvalues 0, 0, |u|².
        let u = [1.0, 2.0, -2.0];
        let a: Vec<f64> = (0..9).map(|k| u[k / 3] * u[k % 3]).collect();
        let eig = symmetric_eigen(&a, 3).unwrap();
        assert!((eig.values[2] - 9.0).abs() < 1e-12 && eig.values[0].abs() < 1e-12);
        check(&a, 3);
    }
}
