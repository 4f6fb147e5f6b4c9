//! Reference statistics `(μ, Σ, n, extractor id)` and their file format.
//!
//! File format (`--save-stats FILE` / `--stats FILE`): a safetensors file holding two F64
//! tensors, `mu` of shape `[D]` and `sigma` of shape `[D, D]`, and the string metadata
//! `format = "rediffuse-feature-stats"`, `version = "1"`, `extractor = <FeatureExtractor::id>`
//! and `n = <number of samples>`. It can be read from Python with
//! `safetensors.numpy.load_file` (tensors) and `safetensors.safe_open(...).metadata()`.

use super::error::{FeatureError, Result};
use super::linalg::check_symmetric;
use super::matrix::FeatureMatrix;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "rediffuse-feature-stats";
const VERSION: &str = "1";

/// First and second moments of a feature set, with the extractor that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// Mean feature vector `μ` (length `D`).
    pub mu: Vec<f64>,
    /// Unbiased covariance `Σ` (row-major `D×D`).
    pub sigma: Vec<f64>,
    /// Number of samples the moments were computed from.
    pub n: usize,
    /// `FeatureExtractor::id()` of the extractor (statistics of different ids never mix).
    pub extractor: String,
}

impl FeatureStats {
    /// Moments of a feature matrix (needs at least two rows).
    pub fn from_features(features: &FeatureMatrix, extractor: impl Into<String>) -> Result<Self> {
        Ok(Self {
            mu: features.mean(),
            sigma: features.covariance()?,
            n: features.rows(),
            extractor: extractor.into(),
        })
    }

    /// Build from given moments (validated: finite, symmetric `Σ` of matching size).
    pub fn from_moments(
        mu: Vec<f64>,
        sigma: Vec<f64>,
        n: usize,
        extractor: impl Into<String>,
    ) -> Result<Self> {
        let s = Self { mu, sigma, n, extractor: extractor.into() };
        s.validate()?;
        Ok(s)
    }

    /// Feature dimension `D`.
    pub fn dim(&self) -> usize {
        self.mu.len()
    }

    fn validate(&self) -> Result<()> {
        if self.mu.iter().any(|v| !v.is_finite()) {
            return Err(FeatureError::NonFinite("mean vector"));
        }
        check_symmetric(&self.sigma, self.mu.len(), "covariance")
    }

    /// Write the statistics file described in the module documentation.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.validate()?;
        let d = self.dim();
        let mu_bytes: Vec<u8> = self.mu.iter().flat_map(|v| v.to_le_bytes()).collect();
        let sigma_bytes: Vec<u8> = self.sigma.iter().flat_map(|v| v.to_le_bytes()).collect();
        let file_err = |reason: String| FeatureError::StatsFile { path: path.to_path_buf(), reason };
        let mu = TensorView::new(Dtype::F64, vec![d], &mu_bytes).map_err(|e| file_err(e.to_string()))?;
        let sigma =
            TensorView::new(Dtype::F64, vec![d, d], &sigma_bytes).map_err(|e| file_err(e.to_string()))?;
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), VERSION.to_string()),
            ("extractor".to_string(), self.extractor.clone()),
            ("n".to_string(), self.n.to_string()),
        ]);
        safetensors::serialize_to_file([("mu", mu), ("sigma", sigma)], Some(meta), path)
            .map_err(|e| file_err(e.to_string()))
    }

    /// Read a statistics file written by [`FeatureStats::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|source| FeatureError::Io { path: path.to_path_buf(), source })?;
        let file_err = |reason: String| FeatureError::StatsFile { path: path.to_path_buf(), reason };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| file_err(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get =
            |key: &str| meta.get(key).cloned().ok_or_else(|| file_err(format!("missing metadata `{key}`")));
        if get("format")? != FORMAT {
            return Err(file_err(format!("not a {FORMAT} file")));
        }
        let version = get("version")?;
        if version != VERSION {
            return Err(file_err(format!("unsupported version {version}")));
        }
        let extractor = get("extractor")?;
        let n: usize = get("n")?.parse().map_err(|e| file_err(format!("metadata `n`: {e}")))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| file_err(e.to_string()))?;
        let read = |name: &str| -> Result<(Vec<usize>, Vec<f64>)> {
            let t = st.tensor(name).map_err(|e| file_err(e.to_string()))?;
            if t.dtype() != Dtype::F64 {
                return Err(file_err(format!("tensor `{name}` must be F64, is {:?}", t.dtype())));
            }
            let vals = t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            Ok((t.shape().to_vec(), vals))
        };
        let (mu_shape, mu) = read("mu")?;
        let (sigma_shape, sigma) = read("sigma")?;
        let d = mu.len();
        if mu_shape != [d] || sigma_shape != [d, d] {
            return Err(file_err(format!(
                "shapes mu {mu_shape:?}, sigma {sigma_shape:?} are not [D], [D, D]"
            )));
        }
        let stats = Self { mu, sigma, n, extractor };
        stats.validate().map_err(|e| file_err(e.to_string()))?;
        Ok(stats)
    }
}
