//! Importance sampling of timesteps (iDDPM §3.3, Eq. 18): L_vlb = E_{t∼p_t}[L_t/p_t] with
//! p_t ∝ √E[L_t²], E[L_t²] estimated from the last `history_per_term` losses of each t. Until
//! every t has that many values, t is uniform. The sampler's state is plain data (serde), so a
//! checkpoint restores it exactly.

use super::config::IddpmConfig;
use crate::error::{Result, TrainError};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The history as decimal strings: Rust prints the shortest representation that parses back to
/// the same f64, and parses it exactly, so a checkpointed sampler resumes bit for bit (JSON number
/// parsing is not guaranteed to round-trip the last bit).
mod exact_f64 {
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(h: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<Vec<String>> = h.iter().map(|r| r.iter().map(|v| v.to_string()).collect()).collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        let text = Vec::<Vec<String>>::deserialize(d)?;
        text.iter().map(|r| r.iter().map(|v| v.parse::<f64>().map_err(D::Error::custom)).collect()).collect()
    }
}

/// The serialised form, validated on deserialisation.
#[derive(Debug, Clone, Deserialize)]
struct ImportanceSamplerState {
    timesteps: usize,
    history_per_term: usize,
    uniform_prob: f64,
    #[serde(with = "exact_f64")]
    history: Vec<Vec<f64>>,
}

/// Per-timestep loss history and the sampling distribution it implies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ImportanceSamplerState")]
pub struct ImportanceSampler {
    timesteps: usize,
    history_per_term: usize,
    uniform_prob: f64,
    /// `history[t]`: the last ≤ `history_per_term` losses seen at timestep index t, oldest first.
    #[serde(with = "exact_f64")]
    history: Vec<Vec<f64>>,
}

impl TryFrom<ImportanceSamplerState> for ImportanceSampler {
    type Error = TrainError;
    fn try_from(s: ImportanceSamplerState) -> Result<Self> {
        let mut me = Self::new(s.timesteps, s.history_per_term, s.uniform_prob)?;
        if s.history.len() != s.timesteps {
            return Err(TrainError::invalid(
                "importance_sampler.history",
                format!("has {} entries for {} timesteps", s.history.len(), s.timesteps),
            ));
        }
        for (t, h) in s.history.iter().enumerate() {
            if h.len() > s.history_per_term || h.iter().any(|v| !v.is_finite()) {
                return Err(TrainError::invalid(
                    "importance_sampler.history",
                    format!("timestep {t}: more than {} values or a non-finite one", s.history_per_term),
                ));
            }
        }
        me.history = s.history;
        Ok(me)
    }
}

impl ImportanceSampler {
    /// A sampler over `timesteps` indices with an empty history.
    pub fn new(timesteps: usize, history_per_term: usize, uniform_prob: f64) -> Result<Self> {
        if timesteps == 0 {
            return Err(TrainError::invalid("importance_sampler.timesteps", "must be >= 1"));
        }
        let cfg = IddpmConfig { history_per_term, uniform_prob, ..IddpmConfig::default() };
        cfg.validate()?;
        Ok(Self { timesteps, history_per_term, uniform_prob, history: vec![Vec::new(); timesteps] })
    }

    /// The sampler an [`IddpmConfig`] asks for.
    pub fn from_config(config: &IddpmConfig, timesteps: usize) -> Result<Self> {
        Self::new(timesteps, config.history_per_term, config.uniform_prob)
    }

    pub fn timesteps(&self) -> usize {
        self.timesteps
    }

    /// The remembered losses of timestep index `t`, oldest first.
    pub fn history(&self, t: usize) -> Option<&[f64]> {
        self.history.get(t).map(|h| h.as_slice())
    }

    /// Whether every timestep has `history_per_term` losses (importance sampling is active).
    pub fn is_warmed_up(&self) -> bool {
        self.history.iter().all(|h| h.len() == self.history_per_term)
    }

    /// p_t for every timestep index: uniform before warm-up; afterwards
    /// p_t = (1 − u)·w_t/Σw + u/T with w_t = √(mean of the remembered L_t²) and u = `uniform_prob`.
    pub fn probabilities(&self) -> Vec<f64> {
        let n = self.timesteps as f64;
        if !self.is_warmed_up() {
            return vec![1.0 / n; self.timesteps];
        }
        let w: Vec<f64> = self
            .history
            .iter()
            .map(|h| (h.iter().map(|l| l * l).sum::<f64>() / h.len() as f64).sqrt())
            .collect();
        let total: f64 = w.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            return vec![1.0 / n; self.timesteps];
        }
        w.iter().map(|wt| (1.0 - self.uniform_prob) * wt / total + self.uniform_prob / n).collect()
    }

    /// Draw `batch` timestep indices from p_t and their loss weights 1/(T·p_t), which keep the
    /// weighted loss an unbiased estimate of the uniform-t loss (all weights 1 before warm-up).
    pub fn sample_t<R: Rng + ?Sized>(&self, rng: &mut R, batch: usize) -> (Vec<usize>, Vec<f32>) {
        let p = self.probabilities();
        let mut cdf = Vec::with_capacity(p.len());
        let mut acc = 0.0;
        for &pt in &p {
            acc += pt;
            cdf.push(acc);
        }
        let n = self.timesteps;
        let mut ts = Vec::with_capacity(batch);
        let mut weights = Vec::with_capacity(batch);
        for _ in 0..batch {
            let u = rng.random::<f64>() * acc;
            let t = cdf.partition_point(|&c| c <= u).min(n - 1);
            ts.push(t);
            weights.push((1.0 / (n as f64 * p[t])) as f32);
        }
        (ts, weights)
    }

    /// Remember the per-sample losses `losses[b]` observed at timestep indices `t[b]`
    /// (keeping the newest `history_per_term` per timestep).
    pub fn update(&mut self, t: &[usize], losses: &[f64]) -> Result<()> {
        if t.len() != losses.len() {
            return Err(TrainError::invalid(
                "importance_sampler.update",
                format!("{} timesteps but {} losses", t.len(), losses.len()),
            ));
        }
        if let Some(&bad) = t.iter().find(|&&ti| ti >= self.timesteps) {
            return Err(TrainError::invalid(
                "importance_sampler.update",
                format!("timestep index {bad} out of range 0..{}", self.timesteps),
            ));
        }
        if let Some(bad) = losses.iter().find(|l| !l.is_finite()) {
            return Err(TrainError::invalid("importance_sampler.update", format!("non-finite loss {bad}")));
        }
        for (&ti, &l) in t.iter().zip(losses) {
            let h = &mut self.history[ti];
            if h.len() == self.history_per_term {
                h.remove(0);
            }
            h.push(l);
        }
        Ok(())
    }
}
