//! Explicit, seeded randomness.
//!
//! Sample `i` of a generation run with seed `s` draws all its noise from its
//! own ChaCha8 stream (`seed = s`, `stream = i`), so a sample does not depend
//! on the batch it is computed in, nor on the thread count.

use crate::error::Result;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// One independent random stream per sample of a batch.
#[derive(Debug, Clone)]
pub struct NoiseSource {
    rngs: Vec<ChaCha8Rng>,
    first_index: u64,
}

impl NoiseSource {
    /// Streams for samples `first_index .. first_index + count` of a run seeded with `seed`.
    pub fn new(seed: u64, first_index: u64, count: usize) -> Self {
        let rngs = (0..count as u64)
            .map(|i| {
                let mut r = ChaCha8Rng::seed_from_u64(seed);
                r.set_stream(first_index + i);
                r
            })
            .collect();
        Self { rngs, first_index }
    }

    /// Number of samples (batch size) this source serves.
    pub fn len(&self) -> usize {
        self.rngs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rngs.is_empty()
    }

    /// Global index of the first sample.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Standard normal values, `count × prod(sample_shape)`, sample-major, f32.
    pub fn randn_vec(&mut self, sample_shape: &[usize]) -> Vec<f32> {
        let per: usize = sample_shape.iter().product();
        let mut out = Vec::with_capacity(per * self.rngs.len());
        for r in self.rngs.iter_mut() {
            for _ in 0..per {
                out.push(r.sample::<f32, _>(StandardNormal));
            }
        }
        out
    }

    /// A `[count, sample_shape...]` tensor of N(0, 1) noise (f32).
    pub fn randn(&mut self, sample_shape: &[usize], device: &Device) -> Result<Tensor> {
        let data = self.randn_vec(sample_shape);
        let mut shape = vec![self.rngs.len()];
        shape.extend_from_slice(sample_shape);
        Ok(Tensor::from_vec(data, shape, device)?)
    }

    /// A `[count, sample_shape...]` tensor of Rademacher (±1) values (f32).
    pub fn rademacher(&mut self, sample_shape: &[usize], device: &Device) -> Result<Tensor> {
        let per: usize = sample_shape.iter().product();
        let mut data = Vec::with_capacity(per * self.rngs.len());
        for r in self.rngs.iter_mut() {
            for _ in 0..per {
                data.push(if r.random::<bool>() { 1.0f32 } else { -1.0 });
            }
        }
        let mut shape = vec![self.rngs.len()];
        shape.extend_from_slice(sample_shape);
        Ok(Tensor::from_vec(data, shape, device)?)
    }

    /// One U[0, 1) value per sample.
    pub fn uniform(&mut self) -> Vec<f64> {
        self.rngs.iter_mut().map(|r| r.random::<f64>()).collect()
    }

    /// Mutable access to the stream of sample `i` (relative to this batch).
    pub fn rng(&mut self, i: usize) -> &mut ChaCha8Rng {
        &mut self.rngs[i]
    }
}

/// Split `n` samples into batches of at most `batch` (start, count) pairs.
pub fn batches(n: usize, batch: usize) -> Vec<(usize, usize)> {
    let batch = batch.max(1);
    (0..n).step_by(batch).map(|s| (s, batch.min(n - s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_of_batching() {
        let mut whole = NoiseSource::new(7, 0, 6);
        let a = whole.randn_vec(&[3]);
        let mut b = Vec::new();
        for (s, c) in batches(6, 4) {
            b.extend(NoiseSource::new(7, s as u64, c).randn_vec(&[3]));
        }
        assert_eq!(a, b);
        let mut other = NoiseSource::new(8, 0, 6);
        assert_ne!(a, other.randn_vec(&[3]));
    }

    #[test]
    fn moments() {
        let mut n = NoiseSource::new(1, 0, 100);
        let v = n.randn_vec(&[1000]);
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(m.abs() < 0.01 && (var - 1.0).abs() < 0.02, "m={m} var={var}");
    }
}
