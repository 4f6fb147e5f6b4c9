//! Sample-quality metrics during training (issue: "every N steps, a small-sample FID/KID on the
//! EMA model logged to metrics.jsonl").
//!
//! The trainer does not know how to compute FID (that is the evaluation layer's job): it calls a
//! [`PeriodicEval`] with the EMA weights as a [`LoadedRun`] every [`PeriodicEvalConfig::every`]
//! steps and at the last step, and appends the returned values to that step's `metrics.jsonl`
//! record. The settings live in the run's `config.toml`, so a resumed run keeps evaluating.

use crate::error::{Result, TrainError};
use crate::run::LoadedRun;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The feature network the metrics use (resolved by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EvalFeatures {
    /// The flattened values themselves ("pixel FID").
    Raw,
    /// A classifier folder written by `rediffuse train-classifier`.
    Classifier { dir: PathBuf },
    /// pytorch-fid's Inception-v3 weights (safetensors).
    Inception { weights: PathBuf },
}

/// When and how to measure sample quality during training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodicEvalConfig {
    /// Evaluate after every this many optimiser steps (and after the last step).
    pub every: usize,
    /// Number of generated samples (and of reference training examples).
    pub n: usize,
    pub features: EvalFeatures,
    /// Sampler steps: DDIM for DDPM/iDDPM runs, the EDM Heun sampler (σ-space) for the others.
    /// `None`: 50 (DDIM) or 18 (Heun).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler_steps: Option<usize>,
}

impl PeriodicEvalConfig {
    pub fn validate(&self) -> Result<()> {
        if self.every == 0 {
            return Err(TrainError::invalid("eval.every", "must be >= 1"));
        }
        if self.n < 2 {
            return Err(TrainError::invalid("eval.n", "must be >= 2 (FID needs a covariance)"));
        }
        if self.sampler_steps == Some(0) {
            return Err(TrainError::invalid("eval.sampler_steps", "must be >= 1"));
        }
        Ok(())
    }

    /// Whether step `step` (1-based) of a run of `total` steps is an evaluation step.
    pub fn is_eval_step(&self, step: u64, total: u64) -> bool {
        step > 0 && (step.is_multiple_of(self.every as u64) || step == total)
    }
}

/// Computes named metrics of a model; the trainer calls it with the EMA weights.
pub trait PeriodicEval {
    /// Metrics of `model` (e.g. `fid`, `kid`, `kid_std`). Non-finite values are not logged.
    fn evaluate(&mut self, model: &LoadedRun) -> std::result::Result<BTreeMap<String, f64>, String>;
}

/// Map an evaluator failure to the trainer's error type.
pub(crate) fn eval_error(step: u64, reason: String) -> TrainError {
    TrainError::Eval { step, reason }
}
