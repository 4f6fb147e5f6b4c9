//! Validation of row-major sample arrays and conversion from tensors.

use crate::error::{EvalError, Result};
use candle_core::{DType, Tensor};

/// Check that `x` holds `n >= min_rows` finite rows of dimension `d`; returns `n`.
pub fn check_rows(which: &'static str, x: &[f64], d: usize, min_rows: usize) -> Result<usize> {
    if d == 0 {
        return Err(EvalError::invalid("d", "dimension must be at least 1"));
    }
    if !x.len().is_multiple_of(d) {
        return Err(EvalError::Shape(format!(
            "sample `{which}` has {} values, not a multiple of the dimension {d}",
            x.len()
        )));
    }
    let n = x.len() / d;
    if n < min_rows {
        return Err(EvalError::Shape(format!("sample `{which}` has {n} rows; need at least {min_rows}")));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite { which, row: i / d });
    }
    Ok(n)
}

/// A tensor `[N, ...]` as row-major f64 rows `(values, D)` with `D = prod(dims[1..])`.
pub fn tensor_rows(t: &Tensor) -> Result<(Vec<f64>, usize)> {
    let dims = t.dims();
    if dims.is_empty() {
        return Err(EvalError::Shape("expected a tensor [N, ...], got a scalar".into()));
    }
    let d: usize = dims[1..].iter().product();
    let v = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    Ok((v, d))
}

/// Rows of two tensors with equal per-row dimension.
pub(crate) fn tensor_pair(x: &Tensor, y: &Tensor) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let (xv, dx) = tensor_rows(x)?;
    let (yv, dy) = tensor_rows(y)?;
    if x.dims()[1..] != y.dims()[1..] {
        return Err(EvalError::Shape(format!("sample shapes differ: {:?} vs {:?}", x.dims(), y.dims())));
    }
    debug_assert_eq!(dx, dy);
    Ok((xv, yv, dx))
}
