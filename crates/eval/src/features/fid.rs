//! Fréchet Inception Distance (Heusel et al. 2017, "GANs trained by a two time-scale update
//! rule converge to a local Nash equilibrium", Eq. (6)):
//! `FID = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})`, the squared 2-Wasserstein distance
//! between the Gaussians `N(μ1, Σ1)` and `N(μ2, Σ2)`.

use super::error::{FeatureError, Result};
use super::linalg::{check_symmetric, trace_sqrt_product};
use super::stats::FeatureStats;

/// FID between two Gaussians given by their moments (`Σ` row-major `D×D`, symmetric PSD).
///
/// The trace term uses [`trace_sqrt_product`] (pivoted Cholesky + symmetric eigenvalues),
/// so no `ε·I` offset is needed for singular covariances. Values that round slightly
/// below zero are clamped to 0.
pub fn fid_from_moments(mu1: &[f64], sigma1: &[f64], mu2: &[f64], sigma2: &[f64]) -> Result<f64> {
    let d = mu1.len();
    if mu2.len() != d {
        return Err(FeatureError::Shape(format!("mean dimensions {d} and {} differ", mu2.len())));
    }
    if mu1.iter().chain(mu2).any(|v| !v.is_finite()) {
        return Err(FeatureError::NonFinite("mean vector"));
    }
    check_symmetric(sigma1, d, "sigma1")?;
    check_symmetric(sigma2, d, "sigma2")?;
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let trace1: f64 = (0..d).map(|i| sigma1[i * d + i]).sum();
    let trace2: f64 = (0..d).map(|i| sigma2[i * d + i]).sum();
    let cross = trace_sqrt_product(sigma1, sigma2, d)?;
    Ok((mean_term + trace1 + trace2 - 2.0 * cross).max(0.0))
}

/// FID between two sets of statistics; they must come from the same feature extractor.
pub fn fid(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    if a.extractor != b.extractor {
        return Err(FeatureError::IncompatibleStats {
            left: a.extractor.clone(),
            right: b.extractor.clone(),
        });
    }
    fid_from_moments(&a.mu, &a.sigma, &b.mu, &b.sigma)
}
