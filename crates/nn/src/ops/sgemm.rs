//! Thin safe wrapper over `gemm::gemm` for f32 row-major operands with arbitrary strides.
//!
//! The `gemm` crate picks its AVX-512 / AVX2 micro-kernels at run time (the workspace
//! enables its `x86-v4` feature).

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols` matrix (row stride `cols`).
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn rows_t(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: 1, cs: cols }
    }
    fn check(&self, r: usize, c: usize) {
        if r > 0 && c > 0 {
            let last = (r - 1) * self.rs + (c - 1) * self.cs;
            assert!(last < self.data.len(), "sgemm operand out of bounds");
        }
    }
}

/// `dst (m×n, row-major, row stride dst_rs) = [dst +] a (m×k) · b (k×n)`; `accumulate` keeps `dst`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    par: gemm::Parallelism,
) {
    assert!(dst_rs >= n, "sgemm destination row stride too small");
    if m > 0 && n > 0 {
        assert!(dst.len() >= (m - 1) * dst_rs + n, "sgemm destination too small");
    }
    a.check(m, k);
    b.check(k, n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the bounds of every operand were checked above; dst is exclusively borrowed.
    super::threads::run_gemm(par, move || unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    })
}
