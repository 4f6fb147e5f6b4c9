//! Dense f64 linear algebra for the feature metrics (no LAPACK).
//!
//! Matrices are row-major `Vec<f64>`. Products go through the `gemm` crate; the symmetric
//! eigenvalue problem is solved by Householder tridiagonalisation (Golub & Van Loan,
//! *Matrix Computations* 4th ed., Alg. 8.3.1) followed by the implicit symmetric QR
//! algorithm with Wilkinson shift (ibid. Alg. 8.3.3), accurate to `O(eps·‖A‖)`.

use super::error::{FeatureError, Result};

/// `C = A·B` for an `m×k` matrix `A` and a `k×n` matrix `B` given by their strides
/// (`a[i*a_rs + l*a_cs]`, `b[l*b_rs + j*b_cs]`); `C` is row-major `m×n`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_strided(
    m: usize,
    n: usize,
    k: usize,
    a: &[f64],
    a_rs: usize,
    a_cs: usize,
    b: &[f64],
    b_rs: usize,
    b_cs: usize,
) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    accumulate_product(&mut c, m, n, k, a, a_rs, a_cs, b, b_rs, b_cs, false);
    c
}

/// `C (+)= A·B` (row-major `C`, `m×n`); with `accumulate == false` `C` is overwritten.
#[allow(clippy::too_many_arguments)]
pub(crate) fn accumulate_product(
    c: &mut [f64],
    m: usize,
    n: usize,
    k: usize,
    a: &[f64],
    a_rs: usize,
    a_cs: usize,
    b: &[f64],
    b_rs: usize,
    b_cs: usize,
    accumulate: bool,
) {
    assert_eq!(c.len(), m * n, "output buffer size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let a_last = (m - 1) * a_rs + (k - 1) * a_cs;
    let b_last = (k - 1) * b_rs + (n - 1) * b_cs;
    assert!(a_last < a.len() && b_last < b.len(), "operand too small for its strides");
    // SAFETY: the asserts above guarantee every index `i*rs + l*cs` that gemm reads lies
    // inside `a` and `b`; `c` is exactly `m*n` long with row stride `n` and column stride 1,
    // and is not aliased by the inputs (shared vs. exclusive borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// `Σ a_i b_i` with eight independent partial sums (lets the compiler vectorise the
/// reduction, which a single running sum forbids).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = a[chunks * 8..].iter().zip(&b[chunks * 8..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f64>() + tail
}

/// Check that `a` is an `n×n` symmetric matrix with finite entries (relative tolerance 1e-8).
pub fn check_symmetric(a: &[f64], n: usize, what: &'static str) -> Result<()> {
    if a.len() != n * n {
        return Err(FeatureError::Shape(format!(
            "{what}: expected {n}x{n} = {} values, got {}",
            n * n,
            a.len()
        )));
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(FeatureError::NonFinite(what));
    }
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    for i in 0..n {
        for j in 0..i {
            if (a[i * n + j] - a[j * n + i]).abs() > 1e-8 * scale {
                return Err(FeatureError::Shape(format!("{what} is not symmetric at ({i}, {j})")));
            }
        }
    }
    Ok(())
}

/// Householder reduction of a symmetric `n×n` matrix to tridiagonal form
/// `Qᵀ A Q = T` (Golub & Van Loan Alg. 8.3.1). Only the lower triangle of `a` is read;
/// `a` is overwritten. Returns the diagonal (length `n`) and sub-diagonal (length `n-1`).
pub fn tridiagonalize(a: &mut [f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "matrix size");
    let mut diag = vec![0.0; n];
    let mut off = vec![0.0; n.saturating_sub(1)];
    if n == 0 {
        return (diag, off);
    }
    let mut v = vec![0.0; n];
    let mut p = vec![0.0; n];
    for k in 0..n.saturating_sub(2) {
        diag[k] = a[k * n + k];
        let s = k + 1; // first row/column of the trailing block
        let m = n - s;
        for t in 0..m {
            v[t] = a[(s + t) * n + k];
        }
        let norm = v[..m].iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            off[k] = 0.0;
            continue;
        }
        // H x = alpha e1 with v = x - alpha e1; the sign avoids cancellation.
        let alpha = if v[0] > 0.0 { -norm } else { norm };
        v[0] -= alpha;
        let vtv = v[..m].iter().map(|x| x * x).sum::<f64>();
        let beta = 2.0 / vtv;
        // p = beta * A22 v using the lower triangle only.
        p[..m].fill(0.0);
        for i in 0..m {
            let row = &a[(s + i) * n + s..(s + i) * n + s + i];
            let vi = v[i];
            for (&aij, pj) in row.iter().zip(p[..i].iter_mut()) {
                *pj += aij * vi;
            }
            p[i] += dot(row, &v[..i]) + a[(s + i) * n + s + i] * vi;
        }
        for x in p[..m].iter_mut() {
            *x *= beta;
        }
        let kappa = 0.5 * beta * p[..m].iter().zip(&v[..m]).map(|(x, y)| x * y).sum::<f64>();
        // w = p - kappa v, stored in p.
        for t in 0..m {
            p[t] -= kappa * v[t];
        }
        // A22 -= v wᵀ + w vᵀ on the lower triangle.
        for i in 0..m {
            let (vi, wi) = (v[i], p[i]);
            let row = &mut a[(s + i) * n + s..(s + i) * n + s + i + 1];
            for ((aij, &vj), &wj) in row.iter_mut().zip(&v[..=i]).zip(&p[..=i]) {
                *aij -= vi * wj + wi * vj;
            }
        }
        off[k] = alpha;
    }
    if n >= 2 {
        diag[n - 2] = a[(n - 2) * n + n - 2];
        off[n - 2] = a[(n - 1) * n + n - 2];
    }
    diag[n - 1] = a[(n - 1) * n + n - 1];
    (diag, off)
}

/// All eigenvalues (ascending) of the symmetric tridiagonal matrix with diagonal `diag` and
/// sub-diagonal `off`, by the implicit symmetric QR algorithm with Wilkinson shift and
/// deflation (Golub & Van Loan Alg. 8.3.2 / 8.3.3), eigenvalues only: `O(n²)` work.
pub fn tridiagonal_eigenvalues(diag: &[f64], off: &[f64]) -> Result<Vec<f64>> {
    let n = diag.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    if off.len() + 1 != n {
        return Err(FeatureError::Shape(format!(
            "tridiagonal: {} diagonal vs {} off-diagonal",
            n,
            off.len()
        )));
    }
    if diag.iter().chain(off).any(|v| !v.is_finite()) {
        return Err(FeatureError::NonFinite("tridiagonal matrix"));
    }
    let mut d = diag.to_vec();
    let mut e = off.to_vec();
    let negligible = |e: f64, a: f64, b: f64| e.abs() <= f64::EPSILON * (a.abs() + b.abs()) || e == 0.0;
    let mut hi = n - 1;
    let mut iterations = 0usize;
    while hi > 0 {
        if negligible(e[hi - 1], d[hi - 1], d[hi]) {
            e[hi - 1] = 0.0;
            hi -= 1;
            continue;
        }
        iterations += 1;
        if iterations > 50 * n {
            return Err(FeatureError::NonFinite("tridiagonal QR did not converge"));
        }
        // Unreduced block lo..=hi.
        let mut lo = hi - 1;
        while lo > 0 && !negligible(e[lo - 1], d[lo - 1], d[lo]) {
            lo -= 1;
        }
        // Wilkinson shift: eigenvalue of the trailing 2×2 block closer to d[hi].
        let delta = 0.5 * (d[hi - 1] - d[hi]);
        let e2 = e[hi - 1] * e[hi - 1];
        let sign = if delta >= 0.0 { 1.0 } else { -1.0 };
        let mu = d[hi] - e2 / (delta + sign * delta.hypot(e[hi - 1]));
        // Chase the bulge: rotation J_k in the (k, k+1) plane maps (x, z) to (r, 0).
        let (mut x, mut z) = (d[lo] - mu, e[lo]);
        for k in lo..hi {
            let r = x.hypot(z);
            let (c, s) = if r == 0.0 { (1.0, 0.0) } else { (x / r, z / r) };
            if k > lo {
                e[k - 1] = r;
            }
            let (a, b, f) = (d[k], d[k + 1], e[k]);
            d[k] = c * c * a + 2.0 * c * s * f + s * s * b;
            d[k + 1] = s * s * a - 2.0 * c * s * f + c * c * b;
            e[k] = c * s * (b - a) + (c * c - s * s) * f;
            if k + 1 < hi {
                let q = e[k + 1];
                z = s * q; // new bulge at (k, k+2)
                e[k + 1] = c * q;
                x = e[k];
            }
        }
    }
    d.sort_by(|a, b| a.total_cmp(b));
    Ok(d)
}

/// All eigenvalues (ascending) of a symmetric `n×n` matrix (only the lower triangle is read).
pub fn symmetric_eigenvalues(a: &[f64], n: usize) -> Result<Vec<f64>> {
    if a.len() != n * n {
        return Err(FeatureError::Shape(format!("expected {n}x{n} matrix, got {} values", a.len())));
    }
    let mut work = a.to_vec();
    let (d, e) = tridiagonalize(&mut work, n);
    tridiagonal_eigenvalues(&d, &e)
}

/// Pivoted Cholesky factor of a symmetric positive semi-definite `n×n` matrix:
/// `A ≈ L Lᵀ` with `L` of size `n×r` (row-major), `r` = numerical rank. Pivots below
/// `n·eps·max diag(A)` are treated as zero (the stopping rule of LAPACK `dpstrf`), which
/// makes the factorisation exact for singular covariances. Returns `(L, r)`.
pub fn pivoted_cholesky(a: &[f64], n: usize) -> Result<(Vec<f64>, usize)> {
    if a.len() != n * n {
        return Err(FeatureError::Shape(format!("expected {n}x{n} matrix, got {} values", a.len())));
    }
    // Work on a copy of the lower triangle, permuting rows/columns symmetrically.
    let mut w = a.to_vec();
    let mut perm: Vec<usize> = (0..n).collect();
    let max_diag = (0..n).fold(0.0f64, |m, i| m.max(a[i * n + i]));
    let tol = n as f64 * f64::EPSILON * max_diag;
    let mut rank = 0;
    let mut col = Vec::with_capacity(n);
    for j in 0..n {
        let (mut p, mut best) = (j, f64::NEG_INFINITY);
        for i in j..n {
            if w[i * n + i] > best {
                best = w[i * n + i];
                p = i;
            }
        }
        if best <= tol || !best.is_finite() {
            if best.is_nan() {
                return Err(FeatureError::NonFinite("covariance"));
            }
            break;
        }
        if p != j {
            symmetric_swap_lower(&mut w, n, j, p);
            perm.swap(j, p);
        }
        let ljj = best.sqrt();
        w[j * n + j] = ljj;
        for i in j + 1..n {
            w[i * n + j] /= ljj;
        }
        // Trailing update of the lower triangle: A[i][k] -= l_i l_k, j < k <= i
        // (column j copied out so the row updates are contiguous).
        col.clear();
        col.extend((j + 1..n).map(|i| w[i * n + j]));
        for i in j + 1..n {
            let li = col[i - j - 1];
            if li == 0.0 {
                continue;
            }
            let row_i = &mut w[i * n + j + 1..=i * n + i];
            for (x, &lk) in row_i.iter_mut().zip(&col[..i - j]) {
                *x -= li * lk;
            }
        }
        rank = j + 1;
    }
    // Undo the permutation: row perm[i] of L is row i of the pivoted factor.
    let mut l = vec![0.0; n * rank];
    for i in 0..n {
        let src = &w[i * n..i * n + rank.min(i + 1)];
        l[perm[i] * rank..perm[i] * rank + src.len()].copy_from_slice(src);
    }
    Ok((l, rank))
}

/// Swap rows/columns `j < p` of a symmetric matrix stored in its lower triangle
/// (entries `(j, j)`..`(p, p)` of the trailing part only; columns `< j` are swapped in full).
fn symmetric_swap_lower(w: &mut [f64], n: usize, j: usize, p: usize) {
    debug_assert!(j < p);
    for k in 0..j {
        w.swap(j * n + k, p * n + k);
    }
    w.swap(j * n + j, p * n + p);
    for i in j + 1..p {
        // (i, j) with j < i < p  <->  (p, i)
        w.swap(i * n + j, p * n + i);
    }
    for i in p + 1..n {
        w.swap(i * n + j, i * n + p);
    }
}

/// `Tr((Σ1 Σ2)^{1/2})` for symmetric positive semi-definite `Σ1`, `Σ2` (`n×n`).
///
/// With `Σ1 = L Lᵀ` (pivoted Cholesky), `Σ1 Σ2` is similar to the symmetric PSD matrix
/// `M = Lᵀ Σ2 L` on the range of `Σ1`, so the trace of the principal square root is
/// `Σ_i sqrt(max(λ_i(M), 0))`. No inverse is formed, so singular covariances are fine.
pub fn trace_sqrt_product(sigma1: &[f64], sigma2: &[f64], n: usize) -> Result<f64> {
    check_symmetric(sigma1, n, "sigma1")?;
    check_symmetric(sigma2, n, "sigma2")?;
    let (l, r) = pivoted_cholesky(sigma1, n)?;
    if r == 0 {
        return Ok(0.0);
    }
    // T = Σ2 L  (n×r), then M = Lᵀ T (r×r).
    let t = matmul_strided(n, r, n, sigma2, n, 1, &l, r, 1);
    let mut m = matmul_strided(r, r, n, &l, 1, r, &t, r, 1);
    // Symmetrise against rounding.
    for i in 0..r {
        for j in 0..i {
            let s = 0.5 * (m[i * r + j] + m[j * r + i]);
            m[i * r + j] = s;
            m[j * r + i] = s;
        }
    }
    let eig = symmetric_eigenvalues(&m, r)?;
    Ok(eig.iter().map(|&x| x.max(0.0).sqrt()).sum())
}
