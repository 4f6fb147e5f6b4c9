//! Patch size per noise level of the ELS machine (seed 002, Analytic Theory, "Detail 1": the
//! receptive field a trained network uses changes with t, so the patch size P does too).

use crate::analytic::error::{AnalyticError, AnalyticResult};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest patch side accepted (a 63×63 window already covers a 32×32 image from any pixel).
pub const MAX_PATCH: usize = 127;

/// One calibration point: patch side `patch` (odd) at noise level `sigma` (σ = √((1 − ᾱ)/ᾱ)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PatchKnot {
    pub sigma: f64,
    pub patch: usize,
}

/// Patch side as a function of σ: the knot nearest in ln σ (a single knot is a constant P).
/// Serialised as `{"knots": [{"sigma": …, "patch": …}, …]}`; other fields of a JSON file (a
/// calibration report) are ignored when reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchSchedule {
    knots: Vec<PatchKnot>,
}

fn check_patch(patch: usize) -> AnalyticResult<()> {
    if patch == 0 || patch % 2 == 0 || patch > MAX_PATCH {
        return Err(AnalyticError::invalid(
            "patch",
            format!(
                "patch side must be odd, in 1..={MAX_PATCH} (a window centred on its pixel), got {patch}"
            ),
        ));
    }
    Ok(())
}

impl PatchSchedule {
    /// The same odd patch side at every noise level.
    pub fn constant(patch: usize) -> AnalyticResult<Self> {
        Self::new(vec![PatchKnot { sigma: 1.0, patch }])
    }

    /// Knots in any order (sorted by σ here); σ finite and > 0, distinct; patch sides odd.
    pub fn new(mut knots: Vec<PatchKnot>) -> AnalyticResult<Self> {
        if knots.is_empty() {
            return Err(AnalyticError::invalid("knots", "need at least one (sigma, patch) knot"));
        }
        for k in &knots {
            if !(k.sigma.is_finite() && k.sigma > 0.0) {
                return Err(AnalyticError::invalid(
                    "sigma",
                    format!("must be finite and > 0, got {}", k.sigma),
                ));
            }
            check_patch(k.patch)?;
        }
        knots.sort_by(|a, b| a.sigma.total_cmp(&b.sigma));
        if knots.windows(2).any(|w| w[0].sigma == w[1].sigma) {
            return Err(AnalyticError::invalid("sigma", "two knots at the same noise level"));
        }
        Ok(Self { knots })
    }

    /// Parse JSON text (`{"knots": [...]}`, possibly inside a calibration report).
    pub fn from_json(text: &str) -> AnalyticResult<Self> {
        let raw: PatchSchedule = serde_json::from_str(text)?;
        Self::new(raw.knots)
    }

    /// Read a JSON file written by `rediffuse els-calibrate` (or by hand).
    pub fn from_path(path: impl AsRef<Path>) -> AnalyticResult<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| AnalyticError::Io { path: path.to_path_buf(), source })?;
        Self::from_json(&text)
    }

    pub fn knots(&self) -> &[PatchKnot] {
        &self.knots
    }

    /// The patch side used at noise level σ: the knot nearest in ln σ (ties to the smaller σ;
    /// σ ≤ 0 uses the first knot, σ = ∞ the last).
    pub fn patch_at(&self, sigma: f64) -> usize {
        if sigma.is_nan() || sigma <= 0.0 {
            return self.knots[0].patch;
        }
        if sigma.is_infinite() {
            return self.knots[self.knots.len() - 1].patch;
        }
        let ls = sigma.ln();
        let mut best = self.knots[0];
        for k in &self.knots[1..] {
            if (k.sigma.ln() - ls).abs() < (best.sigma.ln() - ls).abs() {
                best = *k;
            }
        }
        best.patch
    }

    /// The distinct patch sides, ascending.
    pub fn patch_sizes(&self) -> Vec<usize> {
        let mut p: Vec<usize> = self.knots.iter().map(|k| k.patch).collect();
        p.sort_unstable();
        p.dedup();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_knot_in_log_sigma() {
        let s = PatchSchedule::new(vec![
            PatchKnot { sigma: 10.0, patch: 9 },
            PatchKnot { sigma: 0.1, patch: 3 },
            PatchKnot { sigma: 1.0, patch: 5 },
        ])
        .unwrap();
        assert_eq!(s.knots()[0].sigma, 0.1);
        assert_eq!(s.patch_at(0.01), 3);
        assert_eq!(s.patch_at(0.3), 3); // ln 0.3 is nearer ln 0.1 than ln 1
        assert_eq!(s.patch_at(0.35), 5);
        assert_eq!(s.patch_at(3.0), 5);
        assert_eq!(s.patch_at(3.5), 9);
        assert_eq!(s.patch_at(f64::INFINITY), 9);
        assert_eq!(s.patch_at(0.0), 3);
        assert_eq!(s.patch_sizes(), vec![3, 5, 9]);
        assert_eq!(PatchSchedule::constant(7).unwrap().patch_at(123.0), 7);
    }

    #[test]
    fn bad_schedules_are_errors() {
        for p in [0usize, 2, 4, MAX_PATCH + 2] {
            assert!(PatchSchedule::constant(p).is_err(), "{p}");
        }
        assert!(PatchSchedule::new(vec![]).is_err());
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(PatchSchedule::new(vec![PatchKnot { sigma: s, patch: 3 }]).is_err(), "{s}");
        }
        let dup = vec![PatchKnot { sigma: 1.0, patch: 3 }, PatchKnot { sigma: 1.0, patch: 5 }];
        assert!(PatchSchedule::new(dup).is_err());
        assert!(PatchSchedule::from_json("{\"knots\": [{\"sigma\": 1.0}]}").is_err());
        assert!(PatchSchedule::from_json("[").is_err());
    }

    #[test]
    fn json_round_trip_ignores_report_fields() {
        let s =
            PatchSchedule::new(vec![PatchKnot { sigma: 0.5, patch: 3 }, PatchKnot { sigma: 5.0, patch: 7 }])
                .unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(PatchSchedule::from_json(&text).unwrap(), s);
        let report = format!("{{\"rows\": [1, 2], {}", &text[1..]);
        assert_eq!(PatchSchedule::from_json(&report).unwrap(), s);
    }
}
