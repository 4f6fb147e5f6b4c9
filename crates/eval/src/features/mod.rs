//! Feature-based sample-quality metrics: FID, KID, Inception Score, precision/recall and a
//! memorisation check, computed from the features of a [`FeatureExtractor`].
//!
//! Extractors: [`RawFeatures`] (flattened values), [`InceptionV3Fid`] (pytorch-fid's
//! Inception-v3, pool3 features and fc logits) and [`ClassifierFeatures`] (the small CNN
//! classifier rediffuse trains for grey-scale data sets: penultimate features and logits).
//! Any other network plugs in by implementing [`FeatureExtractor`]: return its penultimate
//! activations from `features` and its class logits from `logits`, and give it a stable `id`
//! so saved statistics are never compared across networks.
//!
//! All metrics work on f64 [`FeatureMatrix`] values with their own linear algebra
//! ([`linalg`]): no LAPACK.

pub mod classifier;
pub mod error;
pub mod fid;
pub mod inception;
pub mod inception_score;
pub mod kid;
pub mod knn;
pub mod linalg;
pub mod matrix;
pub mod memorization;
pub mod prd;
pub mod raw;
pub mod stats;

pub use classifier::ClassifierFeatures;
pub use error::{FeatureError, Result};
pub use fid::{fid, fid_from_moments};
pub use inception::InceptionV3Fid;
pub use inception_score::{inception_score_from_logits, inception_score_from_probs, InceptionScore};
pub use kid::{kid, mmd2_unbiased, KidConfig, KidResult};
pub use matrix::{extract_features, extract_logits, FeatureMatrix};
pub use memorization::{memorization, MemorizationReport};
pub use prd::{precision_recall, PrecisionRecall};
pub use raw::RawFeatures;
pub use stats::FeatureStats;

use candle_core::Tensor;

/// A network (or identity map) turning images into feature vectors.
pub trait FeatureExtractor {
    /// Stable identifier stored with reference statistics, e.g. `raw:1x28x28` or
    /// `inception-v3-fid/pool3/<weights fingerprint>`.
    fn id(&self) -> String;
    /// Feature dimension `D`.
    fn dim(&self) -> usize;
    /// Features `[N, D]` of images `[N, C, H, W]` with values in [−1, 1].
    fn features(&self, images: &Tensor) -> Result<Tensor>;
    /// Class logits `[N, classes]` for the Inception Score, if the extractor has a classifier.
    fn logits(&self, _images: &Tensor) -> Option<Result<Tensor>> {
        None
    }
}
