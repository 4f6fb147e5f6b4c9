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
            std::fs::create_dir_all(parent)?;
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
