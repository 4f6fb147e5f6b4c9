//! Inception Score (Salimans et al. 2016, "Improved techniques for training GANs", §4):
//! `IS = exp(E_x KL(p(y|x) ‖ p(y)))` with `p(y)` the marginal over the evaluated samples.
//! As in the reference implementation (and torch-fidelity), the samples are cut into
//! `splits` parts; the score is computed per part and reported as mean ± population std.
//! Parts are contiguous in sample order (shuffle beforehand if the order is structured).

use super::error::{FeatureError, Result};
use super::kid::mean_std;
use super::matrix::FeatureMatrix;
use serde::{Deserialize, Serialize};

/// Inception Score over `splits` parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InceptionScore {
    pub mean: f64,
    pub std: f64,
    pub splits: usize,
}

/// Row-wise softmax of class logits (numerically stable).
pub fn softmax_rows(logits: &FeatureMatrix) -> Result<FeatureMatrix> {
    let c = logits.cols();
    let mut out = Vec::with_capacity(logits.data().len());
    for i in 0..logits.rows() {
        let row = logits.row(i);
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let exp: Vec<f64> = row.iter().map(|&v| (v - max).exp()).collect();
        let z: f64 = exp.iter().sum();
        out.extend(exp.iter().map(|e| e / z));
    }
    FeatureMatrix::new(logits.rows(), c, out)
}

/// IS from class logits `[N, classes]` (softmax applied here).
pub fn inception_score_from_logits(logits: &FeatureMatrix, splits: usize) -> Result<InceptionScore> {
    inception_score_from_probs(&softmax_rows(logits)?, splits)
}

/// IS from class probabilities `[N, classes]` (rows non-negative, summing to 1 within 1e-6).
pub fn inception_score_from_probs(probs: &FeatureMatrix, splits: usize) -> Result<InceptionScore> {
    let (n, c) = (probs.rows(), probs.cols());
    if splits == 0 {
        return Err(FeatureError::invalid("splits", "must be >= 1"));
    }
    if n < splits {
        return Err(FeatureError::TooFewSamples(format!("{n} samples for {splits} splits")));
    }
    if c == 0 {
        return Err(FeatureError::Shape("zero classes".into()));
    }
    for i in 0..n {
        let row = probs.row(i);
        if row.iter().any(|&p| p < 0.0) || (row.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
            return Err(FeatureError::invalid("probs", format!("row {i} is not a probability vector")));
        }
    }
    let mut scores = Vec::with_capacity(splits);
    for s in 0..splits {
        let (lo, hi) = (s * n / splits, (s + 1) * n / splits);
        let count = (hi - lo) as f64;
        let mut marginal = vec![0.0; c];
        for i in lo..hi {
            for (m, p) in marginal.iter_mut().zip(probs.row(i)) {
                *m += p / count;
            }
        }
        let mut kl_sum = 0.0;
        for i in lo..hi {
            // KL(p ‖ q) = Σ_y p log(p / q), with 0·log 0 = 0.
            kl_sum += probs
                .row(i)
                .iter()
                .zip(&marginal)
                .filter(|(&p, _)| p > 0.0)
                .map(|(&p, &q)| p * (p.ln() - q.ln()))
                .sum::<f64>();
        }
        scores.push((kl_sum / count).exp());
    }
    let (mean, std) = mean_std(&scores);
    Ok(InceptionScore { mean, std, splits })
}
