//! Exponential moving average of the weights.

use crate::error::{Result, TrainError};
use crate::kernels::{fusable, Lerp};
use candle_core::{Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// Shadow weights θ̄ ← d·θ̄ + (1 − d)·θ after every optimiser step (Polyak averaging as used by DDPM,
/// App. B). With `warmup`, the n-th update (n = 0, 1, …) uses d_n = min(decay, (1 + n)/(10 + n)).
pub struct Ema {
    decay: f64,
    warmup: bool,
    updates: u64,
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    /// Start from a copy of the current parameters.
    pub fn new(params: &[(String, Var)], decay: f64, warmup: bool) -> Result<Self> {
        let shadow =
            params.iter().map(|(n, p)| Ok((n.clone(), p.as_tensor().copy()?))).collect::<Result<Vec<_>>>()?;
        Ok(Self { decay, warmup, updates: 0, shadow })
    }

    /// Number of updates applied so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The decay the next update will use.
    pub fn current_decay(&self) -> f64 {
        decay_at(self.decay, self.warmup, self.updates)
    }

    /// Fold the current parameters (same order as at construction) into the average.
    pub fn update(&mut self, params: &[(String, Var)]) -> Result<()> {
        let d = self.current_decay();
        self.update_with_decay(params, d)
    }

    /// [`Ema::update`] with an explicit decay `d` (e.g. a consistency model's μ(k)).
    pub fn update_with_decay(&mut self, params: &[(String, Var)], d: f64) -> Result<()> {
        for ((_, s), (_, p)) in self.shadow.iter_mut().zip(params) {
            let pt = p.as_tensor();
            if fusable(s) && fusable(pt) {
                s.inplace_op2(pt, &Lerp { decay: d as f32 })?;
            } else {
                *s = ((&*s * d)? + (pt * (1.0 - d))?)?;
            }
        }
        self.updates += 1;
        Ok(())
    }

    /// The averaged weights by parameter name. The tensors share storage with the average,
    /// which later updates overwrite in place: copy them to keep a snapshot.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.shadow.iter().map(|(n, t)| (n.clone(), t.clone())).collect()
    }

    /// Replace the shadow weights and update count (resume). Names and shapes must match.
    pub fn load(&mut self, mut map: HashMap<String, Tensor>, updates: u64, origin: &Path) -> Result<()> {
        let mut new = Vec::with_capacity(self.shadow.len());
        for (name, s) in &self.shadow {
            let t =
                map.remove(name).ok_or_else(|| TrainError::corrupt(origin, format!("missing `{name}`")))?;
            if t.dims() != s.dims() || t.dtype() != s.dtype() {
                return Err(TrainError::corrupt(
                    origin,
                    format!("`{name}` has shape {:?}, expected {:?}", t.dims(), s.dims()),
                ));
            }
            new.push((name.clone(), t.to_device(s.device())?.copy()?));
        }
        if let Some(extra) = map.keys().next() {
            return Err(TrainError::corrupt(origin, format!("unexpected tensor `{extra}`")));
        }
        self.shadow = new;
        self.updates = updates;
        Ok(())
    }
}

/// d_n = min(decay, (1 + n)/(10 + n)) with warm-up, `decay` without.
pub fn decay_at(decay: f64, warmup: bool, n: u64) -> f64 {
    if warmup {
        decay.min((1.0 + n as f64) / (10.0 + n as f64))
    } else {
        decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn warmup_decay_values() {
        assert_eq!(decay_at(0.999, true, 0), 0.1);
        assert!((decay_at(0.999, true, 90) - 91.0 / 100.0).abs() < 1e-15);
        assert_eq!(decay_at(0.999, true, 1_000_000), 0.999);
        assert_eq!(decay_at(0.9, false, 0), 0.9);
    }

    /// After k updates toward a constant target c from θ̄₀: θ̄ = c + (θ̄₀ − c)·∏ d_n.
    #[test]
    fn average_follows_closed_form() {
        for warmup in [false, true] {
            let dev = Device::Cpu;
            let p = Var::new(&[2.0f32, -4.0], &dev).unwrap();
            let params = vec![("w".to_string(), p.clone())];
            let mut ema = Ema::new(&params, 0.9, warmup).unwrap();
            p.set(&Tensor::new(&[1.0f32, 1.0], &dev).unwrap()).unwrap();
            let mut prod = 1.0;
            for n in 0..5 {
                prod *= decay_at(0.9, warmup, n);
                ema.update(&params).unwrap();
            }
            let got = ema.tensors()["w"].to_vec1::<f32>().unwrap();
            let want = [1.0 + (2.0 - 1.0) * prod, 1.0 + (-4.0 - 1.0) * prod];
            for i in 0..2 {
                assert!((got[i] as f64 - want[i]).abs() < 1e-6, "warmup={warmup}: {got:?} vs {want:?}");
            }
            assert_eq!(ema.updates(), 5);
        }
    }
}
