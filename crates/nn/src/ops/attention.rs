//! Fused multi-head self-attention core on packed projections: `qkv [B, N, 3D]` (q, k, v
//! side by side, each `heads` heads of `d = D / heads`) → `softmax(q kᵀ/√d) v` `[B, N, D]`
//! with the heads side by side. One task per (sample, head), GEMMs straight on strided views
//! of `qkv`, so no head split/merge copies are made. The backward recomputes the attention
//! weights `P` and, with `dP = dO·vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, gives
//! `dq = dS·k/√d`, `dk = dSᵀ·q/√d`, `dv = Pᵀ·dO`.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::{output, slice};
use super::sgemm::{sgemm, Mat};
use super::simd::{exp_f32, multiversion};
use super::threads::{par_for, SyncPtr};

#[derive(Clone, Copy)]
struct Geom {
    b: usize,
    n: usize,
    /// Model width D.
    c: usize,
    heads: usize,
}

impl Geom {
    fn new(dims: &[usize], heads: usize) -> Result<Self> {
        match dims {
            &[b, n, c3] if heads > 0 && c3 % (3 * heads) == 0 => Ok(Geom { b, n, c: c3 / 3, heads }),
            _ => bail!("attention: qkv must be [B, N, 3D] with D divisible by {heads} heads, got {dims:?}"),
        }
    }
    fn d(&self) -> usize {
        self.c / self.heads
    }
    fn scale(&self) -> f32 {
        1.0 / (self.d() as f32).sqrt()
    }
}

/// `P = softmax(scale · q kᵀ)` of sample `bi`, head `h`, into `p` (`N × N`).
fn probs(qkv: &[f32], g: Geom, bi: usize, h: usize, p: &mut [f32]) {
    let (n, c, d) = (g.n, g.c, g.d());
    let base = bi * n * 3 * c;
    let q = &qkv[base + h * d..];
    let k = &qkv[base + c + h * d..];
    let none = gemm::Parallelism::None;
    sgemm(n, n, d, p, n, false, Mat { data: q, rs: 3 * c, cs: 1 }, Mat { data: k, rs: 1, cs: 3 * c }, none);
    softmax_scaled(p, n, g.scale());
}

multiversion! {
    /// Row softmax of `scale · s` in place (rows of length `n`, `scale > 0`).
    fn softmax_scaled(s: &mut [f32], n: usize, scale: f32) {
        for row in s.chunks_exact_mut(n) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
            let mut sum = 0f32;
            for v in row.iter_mut() {
                *v = exp_f32(*v * scale - max);
                sum += *v;
            }
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}

multiversion! {
    /// `dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale`, written over `dp`.
    fn softmax_back(p: &[f32], dp: &mut [f32], n: usize, scale: f32) {
        for (pr, dr) in p.chunks_exact(n).zip(dp.chunks_exact_mut(n)) {
            let dot: f32 = pr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
            for (dv, pv) in dr.iter_mut().zip(pr) {
                *dv = pv * (*dv - dot) * scale;
            }
        }
    }
}

/// Copies the rows of `src` (`width` wide) to `dst + start + r·stride`.
///
/// # Safety
/// Every destination element must be in bounds and written by no other task.
unsafe fn write_cols(dst: SyncPtr, start: usize, stride: usize, src: &[f32], width: usize) {
    for (r, row) in src.chunks_exact(width).enumerate() {
        std::ptr::copy_nonoverlapping(row.as_ptr(), dst.0.add(start + r * stride), width);
    }
}

fn forward(qkv: &[f32], g: Geom) -> Vec<f32> {
    let (n, c, d) = (g.n, g.c, g.d());
    let mut out = vec![0f32; g.b * n * c];
    let op = SyncPtr(out.as_mut_ptr());
    par_for(g.b * g.heads, |task| {
        let (bi, h) = (task / g.heads, task % g.heads);
        let mut p = vec![0f32; n * n];
        probs(qkv, g, bi, h, &mut p);
        let v = &qkv[bi * n * 3 * c + 2 * c + h * d..];
        let mut o = vec![0f32; n * d];
        sgemm(
            n,
            d,
            n,
            &mut o,
            d,
            false,
            Mat::rows(&p, n),
            Mat { data: v, rs: 3 * c, cs: 1 },
            gemm::Parallelism::None,
        );
        // SAFETY: task (bi, h) writes only columns h·d..(h+1)·d of sample bi's rows.
        unsafe { write_cols(op, bi * n * c + h * d, c, &o, d) };
    });
    out
}

fn backward(qkv: &[f32], dout: &[f32], g: Geom) -> Vec<f32> {
    let (n, c, d) = (g.n, g.c, g.d());
    let mut dqkv = vec![0f32; qkv.len()];
    let op = SyncPtr(dqkv.as_mut_ptr());
    let none = gemm::Parallelism::None;
    par_for(g.b * g.heads, |task| {
        let (bi, h) = (task / g.heads, task % g.heads);
        let base = bi * n * 3 * c;
        let mut p = vec![0f32; n * n];
        let mut dp = vec![0f32; n * n];
        probs(qkv, g, bi, h, &mut p);
        let q = Mat { data: &qkv[base + h * d..], rs: 3 * c, cs: 1 };
        let k = Mat { data: &qkv[base + c + h * d..], rs: 3 * c, cs: 1 };
        let v_t = Mat { data: &qkv[base + 2 * c + h * d..], rs: 1, cs: 3 * c };
        let dout_h = Mat { data: &dout[bi * n * c + h * d..], rs: c, cs: 1 };
        // dP = dO·vᵀ
        sgemm(n, n, d, &mut dp, n, false, dout_h, v_t, none);
        // dS = P ⊙ (dP − rowsum(dP ⊙ P)), times the scale
        softmax_back(&p, &mut dp, n, g.scale());
        let p_t = Mat { data: &p, rs: 1, cs: n };
        let (mut dq, mut dk, mut dv) = (vec![0f32; n * d], vec![0f32; n * d], vec![0f32; n * d]);
        // dv = Pᵀ·dO, dq = dS·k, dk = dSᵀ·q
        sgemm(n, d, n, &mut dv, d, false, p_t, dout_h, none);
        sgemm(n, d, n, &mut dq, d, false, Mat::rows(&dp, n), k, none);
        sgemm(n, d, n, &mut dk, d, false, Mat { data: &dp, rs: 1, cs: n }, q, none);
        // SAFETY: task (bi, h) writes only its head's q/k/v columns of sample bi's rows.
        unsafe {
            write_cols(op, base + h * d, 3 * c, &dq, d);
            write_cols(op, base + c + h * d, 3 * c, &dk, d);
            write_cols(op, base + 2 * c + h * d, 3 * c, &dv, d);
        }
    });
    dqkv
}

/// The attention core on `qkv`.
pub(crate) struct Attention {
    pub heads: usize,
}
/// Backward on (qkv, dout) → dqkv.
struct AttentionBackward {
    heads: usize,
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "rediffuse-attention"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-attention", || {
            let g = Geom::new(l.dims(), self.heads)?;
            let qkv = slice(s, l, "attention")?;
            let out = if g.n == 0 || g.b == 0 { Vec::new() } else { forward(qkv, g) };
            Ok(output(out, (g.b, g.n, g.c)))
        })
    }
    fn bwd(&self, qkv: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            qkv.contiguous()?
                .apply_op2_no_bwd(&dy.contiguous()?, &AttentionBackward { heads: self.heads })?,
        ))
    }
}

impl CustomOp2 for AttentionBackward {
    fn name(&self) -> &'static str {
        "rediffuse-attention-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-attention-backward", || {
            let g = Geom::new(l1.dims(), self.heads)?;
            if l2.dims() != [g.b, g.n, g.c] {
                bail!(
                    "attention backward: gradient {:?} does not match [{}, {}, {}]",
                    l2.dims(),
                    g.b,
                    g.n,
                    g.c
                );
            }
            let (qkv, dy) = (slice(s1, l1, "attention")?, slice(s2, l2, "attention")?);
            let out = if g.n == 0 || g.b == 0 { vec![0f32; qkv.len()] } else { backward(qkv, dy, g) };
            Ok(output(out, l1.shape().clone()))
        })
    }
}
