//! A dense `N×D` f64 matrix of per-sample feature vectors, and batched extraction.

use super::error::{FeatureError, Result};
use super::linalg::accumulate_product;
use super::FeatureExtractor;
use candle_core::{DType, Tensor};

/// `N` feature vectors of dimension `D`, row-major, all finite.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl FeatureMatrix {
    /// Wrap row-major data; fails on a length mismatch or a non-finite value.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(FeatureError::Shape(format!(
                "{rows}x{cols} feature matrix needs {} values, got {}",
                rows * cols,
                data.len()
            )));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(FeatureError::NonFinite("feature matrix"));
        }
        Ok(Self { rows, cols, data })
    }

    /// From a rank-2 tensor `[N, D]` of any float dtype.
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let (rows, cols) = t
            .dims2()
            .map_err(|_| FeatureError::Shape(format!("expected a [N, D] tensor, got {:?}", t.dims())))?;
        let data = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        Self::new(rows, cols, data)
    }

    /// Stack the rows of several matrices of equal width.
    pub fn concat(parts: &[FeatureMatrix]) -> Result<Self> {
        let cols = parts.first().map(|p| p.cols).unwrap_or(0);
        if let Some(bad) = parts.iter().find(|p| p.cols != cols) {
            return Err(FeatureError::Shape(format!("cannot stack widths {cols} and {}", bad.cols)));
        }
        let data: Vec<f64> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        Ok(Self { rows: data.len() / cols.max(1), cols, data })
    }

    /// Number of samples `N`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Feature dimension `D`.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row-major values.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// Feature vector of sample `i` (panics if `i >= rows`, like slice indexing).
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows listed in `idx` (each must be `< rows`).
    pub fn select_rows(&self, idx: &[usize]) -> Result<Self> {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            if i >= self.rows {
                return Err(FeatureError::Shape(format!("row {i} out of range 0..{}", self.rows)));
            }
            data.extend_from_slice(self.row(i));
        }
        Ok(Self { rows: idx.len(), cols: self.cols, data })
    }

    /// Sample mean `μ = (1/N) Σ_i x_i` (length `D`).
    pub fn mean(&self) -> Vec<f64> {
        let mut mu = vec![0.0; self.cols];
        for i in 0..self.rows {
            for (m, x) in mu.iter_mut().zip(self.row(i)) {
                *m += x;
            }
        }
        let inv = 1.0 / self.rows.max(1) as f64;
        mu.iter_mut().for_each(|m| *m *= inv);
        mu
    }

    /// Unbiased sample covariance `Σ = (1/(N−1)) Σ_i (x_i − μ)(x_i − μ)ᵀ` (row-major `D×D`),
    /// as `numpy.cov(rowvar=False)` used by pytorch-fid. Needs `N >= 2`.
    pub fn covariance(&self) -> Result<Vec<f64>> {
        if self.rows < 2 {
            return Err(FeatureError::TooFewSamples(format!(
                "covariance needs >= 2 samples, got {}",
                self.rows
            )));
        }
        let d = self.cols;
        let mu = self.mean();
        let mut sigma = vec![0.0; d * d];
        const CHUNK: usize = 2048;
        let mut centred = Vec::with_capacity(CHUNK.min(self.rows) * d);
        let mut first = true;
        for start in (0..self.rows).step_by(CHUNK) {
            let count = CHUNK.min(self.rows - start);
            centred.clear();
            for i in start..start + count {
                centred.extend(self.row(i).iter().zip(&mu).map(|(x, m)| x - m));
            }
            // Σ += Xcᵀ Xc: lhs(i, l) = Xc[l, i], rhs(l, j) = Xc[l, j].
            accumulate_product(&mut sigma, d, d, count, &centred, 1, d, &centred, d, 1, !first);
            first = false;
        }
        let inv = 1.0 / (self.rows - 1) as f64;
        sigma.iter_mut().for_each(|s| *s *= inv);
        // Exact symmetry.
        for i in 0..d {
            for j in 0..i {
                let s = 0.5 * (sigma[i * d + j] + sigma[j * d + i]);
                sigma[i * d + j] = s;
                sigma[j * d + i] = s;
            }
        }
        Ok(sigma)
    }
}

fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(FeatureError::invalid("batch_size", "must be >= 1"));
    }
    Ok(())
}

/// Features of `images` (`[N, C, H, W]`, values in [−1, 1]) computed in batches of
/// `batch_size`, as an `N×dim` f64 matrix.
pub fn extract_features(
    extractor: &dyn FeatureExtractor,
    images: &Tensor,
    batch_size: usize,
) -> Result<FeatureMatrix> {
    check_batch_size(batch_size)?;
    let n = images.dims().first().copied().unwrap_or(0);
    let mut parts = Vec::new();
    for start in (0..n).step_by(batch_size) {
        let batch = images.narrow(0, start, batch_size.min(n - start))?;
        let f = FeatureMatrix::from_tensor(&extractor.features(&batch)?)?;
        if f.cols() != extractor.dim() {
            return Err(FeatureError::Shape(format!(
                "extractor returned {} features, dim() is {}",
                f.cols(),
                extractor.dim()
            )));
        }
        parts.push(f);
    }
    if parts.is_empty() {
        return FeatureMatrix::new(0, extractor.dim(), Vec::new());
    }
    FeatureMatrix::concat(&parts)
}

/// Class logits of `images` in batches (for the Inception Score); `Ok(None)` if the
/// extractor has no classifier head.
pub fn extract_logits(
    extractor: &dyn FeatureExtractor,
    images: &Tensor,
    batch_size: usize,
) -> Result<Option<FeatureMatrix>> {
    check_batch_size(batch_size)?;
    let n = images.dims().first().copied().unwrap_or(0);
    let mut parts = Vec::new();
    for start in (0..n).step_by(batch_size) {
        let batch = images.narrow(0, start, batch_size.min(n - start))?;
        match extractor.logits(&batch) {
            None => return Ok(None),
            Some(l) => parts.push(FeatureMatrix::from_tensor(&l?)?),
        }
    }
    Ok(Some(FeatureMatrix::concat(&parts)?))
}
