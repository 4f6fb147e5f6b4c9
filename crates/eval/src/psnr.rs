//! Peak signal-to-noise ratio of reconstructions against their ground truth.

use crate::error::{EvalError, Result};

/// PSNR of row-aligned images.
#[derive(Debug, Clone, PartialEq)]
pub struct Psnr {
    /// Mean over rows of 10·log10(peak² / MSE_row) (rows with MSE 0 count as +∞ and are
    /// reported in `exact_rows`, left out of the mean).
    pub mean_db: f64,
    /// 10·log10(peak² / MSE) of the MSE pooled over every pixel of every row.
    pub pooled_db: f64,
    /// The pooled mean squared error.
    pub mse: f64,
    /// Rows reproduced exactly.
    pub exact_rows: usize,
}

/// PSNR of the rows of `x` against the rows of `y` (`n·d` row-major values each, dimension `d`)
/// for a signal of peak-to-peak range `peak` (2 for images in [−1, 1]).
pub fn psnr(x: &[f64], y: &[f64], d: usize, peak: f64) -> Result<Psnr> {
    if d == 0 || x.len() != y.len() || !x.len().is_multiple_of(d) || x.is_empty() {
        return Err(EvalError::Shape(format!(
            "PSNR needs two arrays of the same n×{d} shape, got {} and {} values",
            x.len(),
            y.len()
        )));
    }
    if !(peak.is_finite() && peak > 0.0) {
        return Err(EvalError::InvalidParameter { name: "peak", reason: format!("must be > 0, got {peak}") });
    }
    for (which, v) in [("samples", x), ("reference", y)] {
        if let Some(i) = v.iter().position(|a| !a.is_finite()) {
            return Err(EvalError::NonFinite { which, row: i / d });
        }
    }
    let db = |mse: f64| 10.0 * (peak * peak / mse).log10();
    let (mut sum_db, mut finite_rows, mut exact_rows, mut total) = (0.0, 0usize, 0usize, 0.0);
    for (a, b) in x.chunks(d).zip(y.chunks(d)) {
        let se: f64 = a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
        total += se;
        if se == 0.0 {
            exact_rows += 1;
        } else {
            sum_db += db(se / d as f64);
            finite_rows += 1;
        }
    }
    let mse = total / x.len() as f64;
    Ok(Psnr {
        mean_db: if finite_rows > 0 { sum_db / finite_rows as f64 } else { f64::INFINITY },
        pooled_db: db(mse),
        mse,
        exact_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_values() {
        // one row off by 0.2 everywhere: MSE 0.04, PSNR = 10·log10(4 / 0.04) = 20 dB
        let y = vec![0.5; 8];
        let x: Vec<f64> = y.iter().map(|v| v + 0.2).collect();
        let p = psnr(&x, &y, 4, 2.0).unwrap();
        assert!((p.mean_db - 20.0).abs() < 1e-9 && (p.pooled_db - 20.0).abs() < 1e-9);
        // rows with MSE 0.04 (20 dB) and 0.0004 (40 dB): the mean of the dB values is 30
        let x2 = [0.7, 0.7, 0.52, 0.52];
        let p2 = psnr(&x2, &[0.5; 4], 2, 2.0).unwrap();
        assert!((p2.mean_db - 30.0).abs() < 1e-9, "{}", p2.mean_db);
        let p3 = psnr(&[0.7, 0.7, 0.5, 0.5], &[0.5; 4], 2, 2.0).unwrap();
        assert_eq!(p3.exact_rows, 1);
        assert!(
            (p3.mean_db - 20.0).abs() < 1e-9 && (p3.pooled_db - 10.0 * (4.0f64 / 0.02).log10()).abs() < 1e-9
        );
        assert!(psnr(&[1.0], &[1.0, 2.0], 1, 2.0).is_err());
        assert!(psnr(&[f64::NAN], &[1.0], 1, 2.0).is_err());
        assert!(psnr(&[1.0], &[1.0], 1, 0.0).is_err());
    }
}
