//! The run folder and its `checkpoint/` directory.
//!
//! ```text
//! run/
//!   config.toml          the run's TrainConfig
//!   metrics.jsonl        one MetricRecord per log step
//!   checkpoint/
//!     model.safetensors  network weights (stable parameter names)
//!     ema.safetensors    EMA weights (same names)
//!     optimizer.safetensors  AdamW state: m.<name>, v.<name>, step
//!     target.safetensors consistency runs: the target network θ⁻
//!     state.json         TrainState: step, RNG, data order, EMA count, loss accumulator
//!                        (and iDDPM's importance-sampler history)
//! ```
//! A checkpoint is staged in `checkpoint.tmp/` and swapped in with [`replace_dir`]; after a crash
//! in the middle of the swap the complete previous checkpoint is found in `checkpoint.old/`.

use crate::batcher::BatcherState;
use crate::error::{Result, TrainError};
use crate::fsutil::{replace_dir, save_safetensors_synced, sync_dir, write_atomic};
use crate::iddpm::ImportanceSampler;
use candle_core::{Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CHECKPOINT_DIR: &str = "checkpoint";
const CHECKPOINT_TMP: &str = "checkpoint.tmp";
const CHECKPOINT_OLD: &str = "checkpoint.old";
pub const MODEL_FILE: &str = "model.safetensors";
pub const EMA_FILE: &str = "ema.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";
/// Consistency runs: the target network θ⁻.
pub const TARGET_FILE: &str = "target.safetensors";

/// Version of the `state.json` layout.
pub const STATE_FORMAT: u32 = 1;

/// Everything besides tensors needed to continue a run exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    pub format: u32,
    /// Optimiser steps completed.
    pub step: u64,
    /// Generator of timesteps and noise.
    pub rng: ChaCha8Rng,
    pub batcher: BatcherState,
    /// Number of training examples N (resuming on other data would not be exact).
    pub data_len: usize,
    pub ema_updates: u64,
    /// Sum of the per-step losses since the last metrics record, and their count.
    pub loss_sum: f64,
    pub loss_count: u64,
    /// Training seconds spent so far, over all sessions.
    pub elapsed_s: f64,
    /// iDDPM's importance sampler (per-timestep loss history), when the run samples t by
    /// importance; absent otherwise (and in checkpoints of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance_sampler: Option<ImportanceSampler>,
    /// Steps skipped for a non-finite loss or gradient, in all (the optimiser is at
    /// `step − skipped_steps`), and since the last metrics record.
    #[serde(default)]
    pub skipped_steps: u64,
    #[serde(default)]
    pub skipped_since_log: u64,
}

/// Tensors of one checkpoint.
pub struct CheckpointTensors {
    pub model: HashMap<String, Tensor>,
    pub ema: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
    /// Consistency runs: the target network's weights.
    pub target: Option<HashMap<String, Tensor>>,
}

/// Write a complete checkpoint into `run_dir/checkpoint/`, replacing the previous one.
pub fn write_checkpoint(run_dir: &Path, tensors: &CheckpointTensors, state: &TrainState) -> Result<()> {
    let staged = run_dir.join(CHECKPOINT_TMP);
    if staged.exists() {
        fs::remove_dir_all(&staged).map_err(|e| TrainError::io(&staged, e))?;
    }
    fs::create_dir(&staged).map_err(|e| TrainError::io(&staged, e))?;
    let staged_ok = (|| {
        save_safetensors_synced(&tensors.model, &staged.join(MODEL_FILE))?;
        save_safetensors_synced(&tensors.ema, &staged.join(EMA_FILE))?;
        save_safetensors_synced(&tensors.optimizer, &staged.join(OPTIMIZER_FILE))?;
        if let Some(t) = &tensors.target {
            save_safetensors_synced(t, &staged.join(TARGET_FILE))?;
        }
        let json =
            serde_json::to_vec_pretty(state).map_err(|e| TrainError::corrupt(staged.join(STATE_FILE), e))?;
        write_atomic(&staged.join(STATE_FILE), &json)?;
        sync_dir(&staged)
    })();
    if let Err(e) = staged_ok {
        // a failed write (full disk, file-size limit) leaves the previous checkpoint as it was
        let _ = fs::remove_dir_all(&staged);
        return Err(e);
    }
    replace_dir(&staged, &run_dir.join(CHECKPOINT_DIR), &run_dir.join(CHECKPOINT_OLD))
}

/// The directory holding the latest complete checkpoint of a run.
pub fn find_checkpoint(run_dir: &Path) -> Result<PathBuf> {
    for name in [CHECKPOINT_DIR, CHECKPOINT_OLD] {
        let d = run_dir.join(name);
        if d.join(STATE_FILE).is_file() {
            return Ok(d);
        }
    }
    Err(TrainError::MissingFile(run_dir.join(CHECKPOINT_DIR).join(STATE_FILE)))
}

/// Load a safetensors file; absent -> `MissingFile`, unreadable -> `Corrupt`.
pub fn read_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TrainError::MissingFile(path.into()))
        }
        Err(e) => return Err(TrainError::io(path, e)),
    };
    candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| TrainError::corrupt(path, e))
}

/// Load and check `state.json`.
pub fn read_state(path: &Path) -> Result<TrainState> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TrainError::MissingFile(path.into()))
        }
        Err(e) => return Err(TrainError::io(path, e)),
    };
    let st: TrainState = serde_json::from_slice(&bytes).map_err(|e| TrainError::corrupt(path, e))?;
    if st.format != STATE_FORMAT {
        return Err(TrainError::corrupt(
            path,
            format!("state format {} (expected {STATE_FORMAT})", st.format),
        ));
    }
    if !st.loss_sum.is_finite() || !st.elapsed_s.is_finite() || st.elapsed_s < 0.0 {
        return Err(TrainError::corrupt(path, "non-finite loss_sum or elapsed_s"));
    }
    if st.skipped_steps > st.step || st.skipped_since_log > st.skipped_steps {
        return Err(TrainError::corrupt(path, "more skipped steps than steps"));
    }
    Ok(st)
}

/// Copy `map` into the parameters: every parameter must be present with its shape, and no
/// other tensor may be present.
pub fn assign_params(
    params: &[(String, Var)],
    mut map: HashMap<String, Tensor>,
    origin: &Path,
) -> Result<()> {
    for (name, p) in params {
        let t = map
            .remove(name)
            .ok_or_else(|| TrainError::corrupt(origin, format!("missing tensor `{name}`")))?;
        if t.dims() != p.dims() {
            return Err(TrainError::corrupt(
                origin,
                format!("`{name}` has shape {:?}, the model expects {:?}", t.dims(), p.dims()),
            ));
        }
        p.set(&t.to_dtype(p.dtype())?.to_device(p.device())?)?;
    }
    if let Some(extra) = map.keys().next() {
        return Err(TrainError::corrupt(origin, format!("unexpected tensor `{extra}` (different model?)")));
    }
    Ok(())
}

/// Named tensors of the parameters (shared storage; written out immediately).
pub fn param_tensors(params: &[(String, Var)]) -> HashMap<String, Tensor> {
    params.iter().map(|(n, p)| (n.clone(), p.as_tensor().clone())).collect()
}
