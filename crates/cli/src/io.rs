//! File-safety helpers for the CLI: never overwrite a user's file unless asked.

use anyhow::{bail, Result};
use std::path::Path;

/// Refuse to write `path` if it exists and `force` is false; create its parent folder.
pub fn prepare_output(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!("{} already exists (use --force to replace it)", path.display());
    }
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                anyhow::anyhow!("cannot create the folder {} for {}: {e}", parent.display(), path.display())
            })?;
        }
    }
    Ok(())
}

/// A count given on the command line: must be ≥ 1.
pub fn positive(name: &str, v: i64) -> Result<usize> {
    if v < 1 {
        bail!("--{name} must be a positive integer, got {v}");
    }
    Ok(v as usize)
}

/// A count given on the command line: must be ≥ 0.
pub fn non_negative(name: &str, v: i64) -> Result<usize> {
    if v < 0 {
        bail!("--{name} must be >= 0, got {v}");
    }
    Ok(v as usize)
}

/// A real hyper-parameter: must be finite and ≥ 0 (or > 0 when `strict`).
pub fn finite(name: &str, v: f64, strict: bool) -> Result<f64> {
    if !v.is_finite() || v < 0.0 || (strict && v == 0.0) {
        let need = if strict { "> 0" } else { ">= 0" };
        bail!("--{name} must be a finite number {need}, got {v}");
    }
    Ok(v)
}

/// The optimiser settings a command line may override.
pub struct OptimTargets<'a> {
    pub steps: &'a mut usize,
    pub batch_size: &'a mut usize,
    pub lr: &'a mut f64,
    pub weight_decay: &'a mut f64,
    pub warmup_steps: &'a mut usize,
}

impl crate::args::OptimArgs {
    /// [`OptimArgs::apply`] to a run configuration's optimiser settings.
    pub fn apply_to_run(&self, cfg: &mut rediffuse_train::TrainConfig) -> Result<()> {
        self.apply(OptimTargets {
            steps: &mut cfg.steps,
            batch_size: &mut cfg.batch_size,
            lr: &mut cfg.lr,
            weight_decay: &mut cfg.weight_decay,
            warmup_steps: &mut cfg.warmup_steps,
        })
    }

    /// Validate the given flags and write them into `t`.
    pub fn apply(&self, t: OptimTargets<'_>) -> Result<()> {
        if let Some(v) = self.steps {
            *t.steps = positive("steps", v)?;
        }
        if let Some(v) = self.batch_size {
            *t.batch_size = positive("batch-size", v)?;
        }
        if let Some(v) = self.lr {
            *t.lr = finite("lr", v, true)?;
        }
        if let Some(v) = self.weight_decay {
            *t.weight_decay = finite("weight-decay", v, false)?;
        }
        if let Some(v) = self.warmup_steps {
            *t.warmup_steps = non_negative("warmup-steps", v)?;
        }
        Ok(())
    }
}
