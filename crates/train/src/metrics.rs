//! `metrics.jsonl`: one JSON object per logged step.

use crate::error::{Result, TrainError};
use crate::fsutil::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    /// Optimiser steps completed.
    pub step: u64,
    /// Mean training loss over the steps since the previous record.
    pub loss: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Training time in seconds since the run started (summed over resumed sessions), without
    /// the time spent in evaluations.
    pub time_s: f64,
    /// Sample-quality metrics of an evaluation step (`fid`, `kid`, `kid_std`, `eval_s`, …),
    /// written as further top-level fields of the JSON line; empty on other steps.
    #[serde(flatten)]
    pub eval: BTreeMap<String, f64>,
}

/// Append-only writer for `metrics.jsonl`.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Create a new, empty log (fails if the file exists).
    pub fn create(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    /// Reopen for a run resumed at `step`: records with a larger step (written after the
    /// checkpoint) and unreadable lines (a torn last write) are dropped, atomically.
    pub fn resume(path: &Path, step: u64) -> Result<Self> {
        let kept: Vec<MetricRecord> = if path.exists() {
            read_metrics_lenient(path)?.into_iter().filter(|r| r.step <= step).collect()
        } else {
            Vec::new()
        };
        let mut text = String::new();
        for r in &kept {
            text.push_str(&serde_json::to_string(r).map_err(|e| TrainError::corrupt(path, e))?);
            text.push('\n');
        }
        write_atomic(path, text.as_bytes())?;
        let file = OpenOptions::new().append(true).open(path).map_err(|e| TrainError::io(path, e))?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    pub fn append(&mut self, r: &MetricRecord) -> Result<()> {
        let mut line = serde_json::to_string(r).map_err(|e| TrainError::corrupt(&self.path, e))?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(|e| TrainError::io(&self.path, e))?;
        self.file.flush().map_err(|e| TrainError::io(&self.path, e))
    }

    /// Make appended records durable.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| TrainError::io(&self.path, e))
    }
}

fn read_metrics_lenient(path: &Path) -> Result<Vec<MetricRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

/// Read every record of a `metrics.jsonl`; a malformed line is a `Corrupt` error.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TrainError::MissingFile(path.into()))
        }
        Err(e) => return Err(TrainError::io(path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TrainError::corrupt(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}
