//! Element-wise ops of transformer blocks with their backward passes: GELU (tanh
//! approximation) and the gated residual `x + gate[b]·h` of adaLN-Zero blocks.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{output, slice, unpack};
use super::elementwise::Activation;
use super::simd::{exp_f32, multiversion};
use super::threads::{par_for, SyncPtr};

/// √(2/π).
const GELU_C: f32 = 0.797_884_6;
const GELU_A: f32 = 0.044_715;

/// `tanh(u) = 1 − 2/(e^{2u} + 1)` (branch-free, saturates cleanly).
#[inline(always)]
fn tanh_f32(u: f32) -> f32 {
    1.0 - 2.0 / (exp_f32(2.0 * u) + 1.0)
}

multiversion! {
    /// `y = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    fn gelu_fwd(x: &[f32], y: &mut [f32]) {
        for (yv, &xv) in y.iter_mut().zip(x) {
            let t = tanh_f32(GELU_C * (xv + GELU_A * xv * xv * xv));
            *yv = 0.5 * xv * (1.0 + t);
        }
    }
}

multiversion! {
    /// `dx = dy·(½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²))`.
    fn gelu_bwd(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((d, &xv), g) in dx.iter_mut().zip(x).zip(dy) {
            let t = tanh_f32(GELU_C * (xv + GELU_A * xv * xv * xv));
            let du = GELU_C * (1.0 + 3.0 * GELU_A * xv * xv);
            *d = g * (0.5 * (1.0 + t) + 0.5 * xv * (1.0 - t * t) * du);
        }
    }
}

/// GELU with the tanh approximation (Hendrycks & Gimpel 2016; PyTorch `approximate="tanh"`).
pub(crate) const GELU: Activation = Activation {
    forward_op: "rediffuse-gelu",
    backward_op: "rediffuse-gelu-backward",
    fwd: gelu_fwd,
    bwd: gelu_bwd,
};

/// `(b, n, d)` of a gated residual on `x`/`h` `[B, N, D]` and `gate` `[B, D]`.
fn gate_geom(x: &[usize], h: &[usize], g: &[usize]) -> Result<(usize, usize, usize)> {
    match x {
        &[b, n, d] if h == x && g == [b, d] => Ok((b, n, d)),
        _ => bail!("gated_residual: x, h must be [B, N, D] and gate [B, D], got {x:?}, {h:?}, {g:?}"),
    }
}

multiversion! {
    fn gate_row(x: &[f32], h: &[f32], g: &[f32], y: &mut [f32]) {
        for (((yv, xv), hv), gv) in y.iter_mut().zip(x).zip(h).zip(g) {
            *yv = xv + gv * hv;
        }
    }
}

multiversion! {
    /// `dh = dy·g`, `dg += dy·h` over one row.
    fn gate_bwd_row(h: &[f32], g: &[f32], dy: &[f32], dh: &mut [f32], dg: &mut [f32]) {
        for ((((d, hv), gv), dyv), dgv) in dh.iter_mut().zip(h).zip(g).zip(dy).zip(dg.iter_mut()) {
            *d = dyv * gv;
            *dgv += dyv * hv;
        }
    }
}

/// `y = x + gate[b]·h` on (x, h, gate).
pub(crate) struct GatedResidual;
/// Backward on (h, gate, dy) → packed `[dh, dgate]`.
struct GatedResidualBackward;

impl CustomOp3 for GatedResidual {
    fn name(&self) -> &'static str {
        "rediffuse-gated-residual"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-gated-residual", || {
            let (_, n, d) = gate_geom(l1.dims(), l2.dims(), l3.dims())?;
            let (x, h, g) = (slice(s1, l1, "gated")?, slice(s2, l2, "gated")?, slice(s3, l3, "gated")?);
            let mut y = vec![0f32; x.len()];
            let yp = SyncPtr(y.as_mut_ptr());
            par_for(x.len() / d.max(1), |row| {
                let bi = row / n.max(1);
                let r = row * d..(row + 1) * d;
                // SAFETY: every row is written by one task.
                let ys = unsafe { yp.slice(r.start, d) };
                gate_row(&x[r.clone()], &h[r], &g[bi * d..(bi + 1) * d], ys);
            });
            Ok(output(y, l1.shape().clone()))
        })
    }
    fn bwd(
        &self,
        x: &Tensor,
        h: &Tensor,
        gate: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = x.track_op().then(|| dy.clone());
        let (want_h, want_g) = (h.track_op(), gate.track_op());
        if !want_h && !want_g {
            return Ok((dx, None, None));
        }
        let packed = h.contiguous()?.apply_op3_no_bwd(
            &gate.contiguous()?,
            &dy.contiguous()?,
            &GatedResidualBackward,
        )?;
        let mut g = unpack(&packed, &[Some(h.dims()), Some(gate.dims())])?.into_iter();
        let dh = g.next().flatten().filter(|_| want_h);
        let dg = g.next().flatten().filter(|_| want_g);
        Ok((dx, dh, dg))
    }
}

impl CustomOp3 for GatedResidualBackward {
    fn name(&self) -> &'static str {
        "rediffuse-gated-residual-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-gated-residual-backward", || {
            let (b, n, d) = gate_geom(l1.dims(), l3.dims(), l2.dims())?;
            let (h, g, dy) = (slice(s1, l1, "gated")?, slice(s2, l2, "gated")?, slice(s3, l3, "gated")?);
            let nh = h.len();
            let mut out = vec![0f32; nh + b * d];
            let op = SyncPtr(out.as_mut_ptr());
            par_for(b, |bi| {
                let gb = &g[bi * d..(bi + 1) * d];
                // SAFETY: sample `bi`'s rows of dh and its dgate row belong to this task only.
                let dg = unsafe { op.slice(nh + bi * d, d) };
                for row in bi * n..(bi + 1) * n {
                    let r = row * d..(row + 1) * d;
                    let dh = unsafe { op.slice(r.start, d) };
                    gate_bwd_row(&h[r.clone()], gb, &dy[r], dh, dg);
                }
            });
            let len = out.len();
            Ok(output(out, len))
        })
    }
}
