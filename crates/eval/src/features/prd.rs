//! Improved precision and recall (Kynkäänniemi et al. 2019, "Improved precision and recall
//! metric for assessing generative models", Eqs. (1)–(3)).
//!
//! The manifold of a feature set `Φ` is the union of balls centred at each `φ ∈ Φ` with radius
//! the distance to its k-th nearest neighbour in `Φ` (itself excluded). Precision is the
//! fraction of generated features inside the real manifold, recall the fraction of real
//! features inside the generated manifold. The paper uses `k = 3`.

use super::error::Result;
use super::knn::{for_each_sq_distance_block, k_nearest};
use super::matrix::FeatureMatrix;
use serde::{Deserialize, Serialize};

/// Default neighbourhood size of the paper.
pub const DEFAULT_K: usize = 3;

/// Precision and recall in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecall {
    pub precision: f64,
    pub recall: f64,
    pub k: usize,
}

/// Squared k-NN radii of each row of `x` within `x` (Eq. (1): `NN_k(φ', Φ)`).
fn manifold_radii_sq(x: &FeatureMatrix, k: usize) -> Result<Vec<f64>> {
    Ok(k_nearest(x, x, k, true)?.into_iter().map(|nn| nn[k - 1].0 * nn[k - 1].0).collect())
}

/// Fraction of rows of `queries` inside the manifold of `support` (Eq. (2)).
fn coverage(queries: &FeatureMatrix, support: &FeatureMatrix, radii_sq: &[f64]) -> Result<f64> {
    let ns = support.rows();
    let mut inside = 0usize;
    for_each_sq_distance_block(queries, support, |_, block| {
        inside +=
            block.chunks_exact(ns).filter(|row| row.iter().zip(radii_sq).any(|(&d2, &r2)| d2 <= r2)).count();
        Ok(())
    })?;
    Ok(inside as f64 / queries.rows() as f64)
}

/// Precision and recall of `fake` against `real` features with `k`-NN manifolds.
/// Both sets need more than `k` rows.
pub fn precision_recall(real: &FeatureMatrix, fake: &FeatureMatrix, k: usize) -> Result<PrecisionRecall> {
    let real_radii = manifold_radii_sq(real, k)?;
    let fake_radii = manifold_radii_sq(fake, k)?;
    Ok(PrecisionRecall {
        precision: coverage(fake, real, &real_radii)?,
        recall: coverage(real, fake, &fake_radii)?,
        k,
    })
}
