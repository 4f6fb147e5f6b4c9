//! Deterministic degradations D(x₀, t) of cold diffusion (Bansal et al. 2022; seed 002 "Cold
//! Diffusion"), for images `[B, C, H, W]` and levels t ∈ {0, …, T} (D(x, 0) = x):
//! * blur: a Gaussian blur of standard deviation `size`·t/T pixels (replicated borders);
//! * mask: the first ⌈(t/T)·H·W⌉ pixels of a fixed seeded order set to 0;
//! * pixelate: block means on a ⌈H·(1 − t/T)⌉-sized grid (≥ 1 pixel), nearest-upsampled back.
//!
//! Every one is linear in x: blur and pixelate are separable, D(X, t) = A_t·X·B_tᵀ per channel,
//! masking is elementwise, so batches with one level per example are two batched products.

use crate::error::{CoreError, Result};
use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Which degradation (`[method.degradation]` of a cold run).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Degradation {
    /// Gaussian blur with standard deviation growing linearly to `size` pixels at t = T.
    Blur { size: f64 },
    /// Pixels removed one by one in the order of a permutation seeded by `seed`.
    Mask { seed: u64 },
    /// Down- then up-sampling to ever coarser grids.
    Pixelate,
}

impl Degradation {
    pub fn validate(&self) -> Result<()> {
        if let Degradation::Blur { size } = self {
            if !(size.is_finite() && *size > 0.0) {
                return Err(CoreError::invalid("blur size", format!("must be > 0 pixels, got {size}")));
            }
        }
        Ok(())
    }

    /// D(x, t) for one level per row of `x` (`levels[b]` ∈ 0..=`total`).
    pub fn apply(&self, x: &Tensor, levels: &[usize], total: usize) -> Result<Tensor> {
        self.validate()?;
        let (b, _, h, w) = x.dims4()?;
        if levels.len() != b {
            return Err(CoreError::Shape(format!("{} levels for a batch of {b}", levels.len())));
        }
        if total == 0 || levels.iter().any(|&t| t > total) {
            return Err(CoreError::invalid("level", format!("levels must lie in 0..={total} (T >= 1)")));
        }
        let dev = x.device();
        match self {
            Degradation::Mask { seed } => {
                let order = mask_order(*seed, h * w);
                let mut m = Vec::with_capacity(b * h * w);
                for &t in levels {
                    let hidden = (t * h * w).div_ceil(total);
                    let mut row = vec![1f32; h * w];
                    for &p in &order[..hidden] {
                        row[p] = 0.0;
                    }
                    m.extend(row);
                }
                let m = Tensor::from_vec(m, (b, 1, h, w), dev)?;
                Ok(x.broadcast_mul(&m.to_dtype(x.dtype())?)?)
            }
            _ => {
                let (mut a, mut bm) = (Vec::new(), Vec::new());
                for &t in levels {
                    a.extend(self.axis_matrix(h, t, total));
                    bm.extend(self.axis_matrix(w, t, total));
                }
                let a = Tensor::from_vec(a, (b, 1, h, h), dev)?.to_dtype(x.dtype())?;
                let bt = Tensor::from_vec(bm, (b, 1, w, w), dev)?.to_dtype(x.dtype())?.transpose(2, 3)?;
                Ok(a.broadcast_matmul(&x.contiguous()?)?.broadcast_matmul(&bt.contiguous()?)?)
            }
        }
    }

    /// The n × n row-major matrix of the separable factor along an axis of length `n` at level t.
    fn axis_matrix(&self, n: usize, t: usize, total: usize) -> Vec<f32> {
        let mut m = vec![0f32; n * n];
        match self {
            Degradation::Blur { size } => {
                let s = size * t as f64 / total as f64;
                if s == 0.0 {
                    (0..n).for_each(|i| m[i * n + i] = 1.0);
                    return m;
                }
                let r = (3.0 * s).ceil() as i64;
                let k: Vec<f64> = (-r..=r).map(|d| (-(d * d) as f64 / (2.0 * s * s)).exp()).collect();
                let z: f64 = k.iter().sum();
                for i in 0..n as i64 {
                    for (j, kv) in (-r..=r).zip(&k) {
                        let c = (i + j).clamp(0, n as i64 - 1) as usize;
                        m[i as usize * n + c] += (kv / z) as f32;
                    }
                }
            }
            Degradation::Pixelate => {
                let size = ((n as f64 * (1.0 - t as f64 / total as f64)).ceil() as usize).max(1);
                // adaptive average pooling to `size` bins, then nearest upsampling back to n
                for o in 0..n {
                    let bin = o * size / n;
                    let (start, end) = (bin * n / size, ((bin + 1) * n).div_ceil(size));
                    for c in start..end {
                        m[o * n + c] = 1.0 / (end - start) as f32;
                    }
                }
            }
            Degradation::Mask { .. } => (0..n).for_each(|i| m[i * n + i] = 1.0),
        }
        m
    }
}

/// The seeded order in which the mask removes the `p` pixels.
fn mask_order(seed: u64, p: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    order
}

/// `D(x, t)` for the same level for every row.
pub fn degrade_all(d: &Degradation, x: &Tensor, t: usize, total: usize) -> Result<Tensor> {
    d.apply(x, &vec![t; x.dim(0)?], total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn img(dev: &Device) -> Tensor {
        Tensor::arange(0f32, 32.0, dev)
            .unwrap()
            .reshape((2, 1, 4, 4))
            .unwrap()
            .affine(1.0 / 16.0, -1.0)
            .unwrap()
    }

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        a.sub(b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn level_zero_is_identity_and_levels_are_checked() {
        let dev = Device::Cpu;
        let x = img(&dev);
        for d in [Degradation::Blur { size: 2.0 }, Degradation::Mask { seed: 3 }, Degradation::Pixelate] {
            assert_eq!(max_abs(&d.apply(&x, &[0, 0], 5).unwrap(), &x), 0.0, "{d:?}");
            assert!(d.apply(&x, &[0, 6], 5).is_err());
            assert!(d.apply(&x, &[0], 5).is_err());
        }
        assert!(Degradation::Blur { size: 0.0 }.apply(&x, &[1, 1], 5).is_err());
    }

    #[test]
    fn final_levels_have_closed_forms() {
        let dev = Device::Cpu;
        let x = img(&dev);
        // mask at T: everything 0; half way: half the pixels
        let shifted = x.affine(1.0, 5.0).unwrap(); // no pixel is 0 by itself
        let m = Degradation::Mask { seed: 1 }.apply(&shifted, &[4, 2], 4).unwrap();
        let v: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v[..16].iter().all(|&a| a == 0.0));
        assert_eq!(v[16..].iter().filter(|&&a| a == 0.0).count(), 8);
        // pixelate at T: every pixel the image mean; block means in between (4 → 2 at t = T/2)
        let p = Degradation::Pixelate.apply(&x, &[4, 2], 4).unwrap();
        let pv: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
        let mean0: f32 = (0..16).map(|i| i as f32 / 16.0 - 1.0).sum::<f32>() / 16.0;
        assert!(pv[..16].iter().all(|&a| (a - mean0).abs() < 1e-6));
        let block = ((16 + 17 + 20 + 21) as f32 / 4.0) / 16.0 - 1.0;
        assert!((pv[16] - block).abs() < 1e-6 && (pv[16 + 5] - block).abs() < 1e-6);
        // blur keeps constants (its rows sum to one)
        let c = Tensor::full(0.3f32, (1, 1, 5, 5), &dev).unwrap();
        let b = Degradation::Blur { size: 1.5 }.apply(&c, &[3], 4).unwrap();
        assert!(max_abs(&b, &c) < 1e-6);
    }
}
