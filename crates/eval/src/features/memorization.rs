//! Memorisation check: for every generated sample, the distance to its nearest training
//! sample relative to the distance to the second nearest, `r = d(x, NN1) / d(x, NN2)`.
//!
//! A generated sample is flagged as a near-copy when `r < threshold`. The customary
//! threshold is `1/3` (Yoon et al. 2023, "Diffusion probabilistic models generalize when
//! they fail to memorize"; Gu et al. 2023, "On memorization in diffusion models"): the
//! sample is three times closer to one training image than to any other. Distances are
//! Euclidean in whatever feature space is passed (raw pixels with `RawFeatures`).
//! If both distances are 0 (an exact copy of a duplicated training image) `r = 0`.

use super::error::{FeatureError, Result};
use super::knn::k_nearest;
use super::matrix::FeatureMatrix;
use serde::{Deserialize, Serialize};

/// The customary near-copy threshold on `d(NN1) / d(NN2)`.
pub const DEFAULT_THRESHOLD: f64 = 1.0 / 3.0;

/// Per-sample nearest-neighbour ratios and the near-copy fraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorizationReport {
    /// `d(x, NN1) / d(x, NN2)` per generated sample.
    pub ratios: Vec<f64>,
    /// Index of the nearest training sample per generated sample.
    pub nearest_index: Vec<usize>,
    /// `d(x, NN1)` per generated sample.
    pub nearest_distance: Vec<f64>,
    pub threshold: f64,
    /// Fraction of generated samples with `ratio < threshold`.
    pub fraction_below: f64,
}

/// Nearest/second-nearest ratio of each generated sample against the training set
/// (needs >= 2 training samples and `threshold` in (0, 1]).
pub fn memorization(
    generated: &FeatureMatrix,
    training: &FeatureMatrix,
    threshold: f64,
) -> Result<MemorizationReport> {
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(FeatureError::invalid("threshold", format!("must lie in (0, 1], got {threshold}")));
    }
    if generated.rows() == 0 {
        return Err(FeatureError::TooFewSamples("no generated samples".into()));
    }
    if training.rows() < 2 {
        return Err(FeatureError::TooFewSamples(format!(
            "need >= 2 training samples, got {}",
            training.rows()
        )));
    }
    let nn = k_nearest(generated, training, 2, false)?;
    let mut ratios = Vec::with_capacity(nn.len());
    let mut nearest_index = Vec::with_capacity(nn.len());
    let mut nearest_distance = Vec::with_capacity(nn.len());
    for pair in &nn {
        let (d1, i1) = pair[0];
        let d2 = pair[1].0;
        ratios.push(if d2 > 0.0 { d1 / d2 } else { 0.0 });
        nearest_index.push(i1);
        nearest_distance.push(d1);
    }
    let below = ratios.iter().filter(|&&r| r < threshold).count();
    let fraction_below = below as f64 / ratios.len() as f64;
    Ok(MemorizationReport { ratios, nearest_index, nearest_distance, threshold, fraction_below })
}
