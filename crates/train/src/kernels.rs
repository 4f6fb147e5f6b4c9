//! Fused in-place CPU updates for the optimiser and EMA (one pass, no allocation).
//! Each has a tensor-op reference used on other devices/dtypes and in the tests.

use candle_core::{bail, CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Storage, Tensor};

fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => bail!("{op}: expected a contiguous f32 tensor"),
    }
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, op: &str) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => bail!("{op}: expected a contiguous f32 tensor"),
    }
}

/// Whether the fused CPU kernels apply to `t`.
pub(crate) fn fusable(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous()
}

/// Exponential moving average of a (scaled, optionally squared) gradient:
/// `m ← β·m + (1 − β)·(c·g)` or `v ← β·v + (1 − β)·(c·g)²` (Adam, Kingma & Ba Alg. 1).
pub(crate) struct MomentUpdate {
    pub beta: f32,
    pub scale: f32,
    pub square: bool,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "moment-update"
    }
    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let m = slice_mut(s1, l1, self.name())?;
        let g = slice(s2, l2, self.name())?;
        if m.len() != g.len() {
            bail!("moment-update: length mismatch {} vs {}", m.len(), g.len());
        }
        let (b, c) = (self.beta, 1.0 - self.beta);
        if self.square {
            for (m, &g) in m.iter_mut().zip(g) {
                let g = g * self.scale;
                *m = b * *m + c * (g * g);
            }
        } else {
            for (m, &g) in m.iter_mut().zip(g) {
                *m = b * *m + c * (g * self.scale);
            }
        }
        Ok(())
    }
}

/// AdamW parameter update (Loshchilov & Hutter, Alg. 2):
/// `θ ← θ·(1 − lr·λ) − lr·(m/bc1)/(√(v/bc2) + ε)` with bias corrections bc_i = 1 − β_i^k.
pub(crate) struct AdamWUpdate {
    pub lr: f64,
    pub weight_decay: f64,
    pub bias_correction1: f64,
    pub bias_correction2: f64,
    pub eps: f64,
}

impl InplaceOp3 for AdamWUpdate {
    fn name(&self) -> &'static str {
        "adamw-update"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let p = slice_mut(s1, l1, self.name())?;
        let m = slice(s2, l2, self.name())?;
        let v = slice(s3, l3, self.name())?;
        if p.len() != m.len() || p.len() != v.len() {
            bail!("adamw-update: length mismatch");
        }
        let decay = (1.0 - self.lr * self.weight_decay) as f32;
        let step = (self.lr / self.bias_correction1) as f32;
        let inv_bc2 = (1.0 / self.bias_correction2) as f32;
        let eps = self.eps as f32;
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            *p = *p * decay - step * m / ((v * inv_bc2).sqrt() + eps);
        }
        Ok(())
    }
}

/// `s ← d·s + (1 − d)·θ` (EMA of weights).
pub(crate) struct Lerp {
    pub decay: f32,
}

impl InplaceOp2 for Lerp {
    fn name(&self) -> &'static str {
        "ema-lerp"
    }
    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let s = slice_mut(s1, l1, self.name())?;
        let p = slice(s2, l2, self.name())?;
        if s.len() != p.len() {
            bail!("ema-lerp: length mismatch");
        }
        let (d, c) = (self.decay, 1.0 - self.decay);
        for (s, &p) in s.iter_mut().zip(p) {
            *s = d * *s + c * p;
        }
        Ok(())
    }
}

/// Σ x² in f64, without allocating on the CPU fast path.
pub(crate) fn sum_squares(t: &Tensor) -> Result<f64> {
    if fusable(t) {
        let (st, l) = t.storage_and_layout();
        if let Storage::Cpu(cpu) = &*st {
            let x = slice(cpu, l, "sum-squares")?;
            return Ok(x.iter().map(|&v| (v as f64) * (v as f64)).sum());
        }
    }
    t.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn kernels_match_formulas() {
        let d = Device::Cpu;
        let m = Tensor::new(&[0.5f32, -1.0, 2.0], &d).unwrap().copy().unwrap();
        let g = Tensor::new(&[1.0f32, 2.0, -3.0], &d).unwrap();
        m.inplace_op2(&g, &MomentUpdate { beta: 0.9, scale: 0.5, square: false }).unwrap();
        let want = [0.9 * 0.5 + 0.1 * 0.5, -0.9 + 0.1 * 1.0, 1.8 - 0.1 * 1.5];
        for (a, b) in m.to_vec1::<f32>().unwrap().iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
        let v = Tensor::new(&[1.0f32, 0.0, 4.0], &d).unwrap().copy().unwrap();
        v.inplace_op2(&g, &MomentUpdate { beta: 0.99, scale: 2.0, square: true }).unwrap();
        let want = [0.99 + 0.01 * 4.0, 0.01 * 16.0, 3.96 + 0.01 * 36.0];
        for (a, b) in v.to_vec1::<f32>().unwrap().iter().zip(want) {
            assert!((a - b).abs() < 1e-5);
        }
        let s = Tensor::new(&[1.0f32, 1.0, 1.0], &d).unwrap().copy().unwrap();
        s.inplace_op2(&g, &Lerp { decay: 0.75 }).unwrap();
        assert_eq!(s.to_vec1::<f32>().unwrap(), vec![1.0, 1.25, 0.0]);
        assert!((sum_squares(&g).unwrap() - 14.0).abs() < 1e-12);
        // the reference path (non-contiguous input) agrees
        let gt = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &d).unwrap().t().unwrap();
        assert!((sum_squares(&gt).unwrap() - 30.0).abs() < 1e-12);
    }
}
