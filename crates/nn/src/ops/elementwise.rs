//! Element-wise and small structured ops with their backward passes: activations (SiLU; the
//! shared [`Activation`] op), softmax over
//! the last dimension, nearest ×2 upsampling and a per-(sample, channel) bias add.

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::{output, slice};
use super::simd::{exp_f32, multiversion, sigmoid_f32};
use super::threads::{par_ranges, SyncPtr};

/// Elements per parallel chunk of the purely element-wise loops.
const CHUNK: usize = 1 << 14;

/// Runs `f(range)` over `0..n` in parallel chunks, giving each its output sub-slice.
pub(super) fn par_chunks(out: &mut [f32], f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync) {
    let n = out.len();
    let chunks = n.div_ceil(CHUNK);
    let p = SyncPtr(out.as_mut_ptr());
    par_ranges(chunks, |_, cr| {
        let r = (cr.start * CHUNK)..(cr.end * CHUNK).min(n);
        // SAFETY: chunk ranges are disjoint.
        let o = unsafe { p.slice(r.start, r.len()) };
        f(r, o)
    });
}

multiversion! {
    fn silu_fwd(x: &[f32], y: &mut [f32]) {
        for (yv, xv) in y.iter_mut().zip(x) {
            *yv = xv * sigmoid_f32(*xv);
        }
    }
}

multiversion! {
    /// `dx = dy · s(1 + x(1 − s))`, `s = sigmoid(x)`.
    fn silu_bwd(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((d, xv), g) in dx.iter_mut().zip(x).zip(dy) {
            let s = sigmoid_f32(*xv);
            *d = g * s * (1.0 + xv * (1.0 - s));
        }
    }
}

/// An element-wise activation `y = f(x)`: its forward kernel, the kernel of its backward
/// `dx = dy·f′(x)`, and the op names the profiler reports.
#[derive(Clone, Copy)]
pub(crate) struct Activation {
    pub forward_op: &'static str,
    pub backward_op: &'static str,
    pub fwd: fn(&[f32], &mut [f32]),
    pub bwd: fn(&[f32], &[f32], &mut [f32]),
}

/// SiLU `x·sigmoid(x)` (Hendrycks & Gimpel 2016; Elfwing et al. 2018).
pub(crate) const SILU: Activation = Activation {
    forward_op: "rediffuse-silu",
    backward_op: "rediffuse-silu-backward",
    fwd: silu_fwd,
    bwd: silu_bwd,
};

struct ActivationBackward(Activation);

impl CustomOp1 for Activation {
    fn name(&self) -> &'static str {
        self.forward_op
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        super::profile::timed(self.forward_op, || {
            let x = slice(s, l, self.forward_op)?;
            let mut y = vec![0f32; x.len()];
            par_chunks(&mut y, |r, o| (self.fwd)(&x[r], o));
            Ok(output(y, l.shape().clone()))
        })
    }
    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.contiguous()?.apply_op2_no_bwd(&dy.contiguous()?, &ActivationBackward(*self))?))
    }
}

impl CustomOp2 for ActivationBackward {
    fn name(&self) -> &'static str {
        self.0.backward_op
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.0.backward_op;
        super::profile::timed(name, || {
            if l1.dims() != l2.dims() {
                bail!("{name}: shape mismatch {:?} vs {:?}", l1.dims(), l2.dims());
            }
            let (x, dy) = (slice(s1, l1, name)?, slice(s2, l2, name)?);
            let mut dx = vec![0f32; x.len()];
            par_chunks(&mut dx, |r, o| (self.0.bwd)(&x[r.clone()], &dy[r], o));
            Ok(output(dx, l1.shape().clone()))
        })
    }
}

multiversion! {
    /// Softmax of each row of length `d` (max-subtracted).
    fn softmax_rows(x: &[f32], y: &mut [f32], d: usize) {
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            let max = xr.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0f32;
            for (yv, xv) in yr.iter_mut().zip(xr) {
                *yv = exp_f32(xv - max);
                sum += *yv;
            }
            let inv = 1.0 / sum;
            for yv in yr.iter_mut() {
                *yv *= inv;
            }
        }
    }
}

multiversion! {
    /// `dx = y ⊙ (dy − Σ dy·y)` per row.
    fn softmax_bwd_rows(y: &[f32], dy: &[f32], dx: &mut [f32], d: usize) {
        for ((yr, gr), dr) in y.chunks_exact(d).zip(dy.chunks_exact(d)).zip(dx.chunks_exact_mut(d)) {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((dv, yv), gv) in dr.iter_mut().zip(yr).zip(gr) {
                *dv = yv * (gv - dot);
            }
        }
    }
}

/// Runs a row kernel over rows of length `d` in parallel.
fn par_rows(out: &mut [f32], d: usize, f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync) {
    let rows = out.len() / d.max(1);
    let p = SyncPtr(out.as_mut_ptr());
    par_ranges(rows, |_, rr| {
        let r = rr.start * d..rr.end * d;
        // SAFETY: row ranges are disjoint.
        let o = unsafe { p.slice(r.start, r.len()) };
        f(r, o)
    });
}

/// Softmax over the last dimension.
pub(crate) struct Softmax;
struct SoftmaxBackward;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "rediffuse-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-softmax", || {
            let x = slice(s, l, "softmax")?;
            let d = *l.dims().last().unwrap_or(&1);
            let mut y = vec![0f32; x.len()];
            if d > 0 {
                par_rows(&mut y, d, |r, o| softmax_rows(&x[r], o, d));
            }
            Ok(output(y, l.shape().clone()))
        })
    }
    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.contiguous()?.apply_op2_no_bwd(&dy.contiguous()?, &SoftmaxBackward)?))
    }
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "rediffuse-softmax-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-softmax-backward", || {
            if l1.dims() != l2.dims() {
                bail!("softmax backward: shape mismatch {:?} vs {:?}", l1.dims(), l2.dims());
            }
            let (y, dy) = (slice(s1, l1, "softmax")?, slice(s2, l2, "softmax")?);
            let d = *l1.dims().last().unwrap_or(&1);
            let mut dx = vec![0f32; y.len()];
            if d > 0 {
                par_rows(&mut dx, d, |r, o| softmax_bwd_rows(&y[r.clone()], &dy[r], o, d));
            }
            Ok(output(dx, l1.shape().clone()))
        })
    }
}

fn dims4(l: &Layout, op: &str) -> Result<(usize, usize, usize, usize)> {
    match l.dims() {
        &[b, c, h, w] => Ok((b, c, h, w)),
        d => bail!("{op} expects [B, C, H, W], got {d:?}"),
    }
}

/// Nearest-neighbour ×2 upsampling of `[B, C, H, W]`.
pub(crate) struct Upsample2x;
struct Upsample2xBackward;

impl CustomOp1 for Upsample2x {
    fn name(&self) -> &'static str {
        "rediffuse-upsample2x"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-upsample2x", || {
            let (b, c, h, w) = dims4(l, "upsample_nearest2x")?;
            let x = slice(s, l, "upsample_nearest2x")?;
            let mut y = vec![0f32; 4 * x.len()];
            // One "row" per input image-row: produces two output rows of width 2w.
            par_rows(&mut y, 4 * w, |r, o| {
                let first = r.start / (4 * w);
                for (i, out2) in o.chunks_exact_mut(4 * w).enumerate() {
                    let src = &x[(first + i) * w..(first + i + 1) * w];
                    let (top, bottom) = out2.split_at_mut(2 * w);
                    for (pair, v) in top.chunks_exact_mut(2).zip(src) {
                        pair[0] = *v;
                        pair[1] = *v;
                    }
                    bottom.copy_from_slice(top);
                }
            });
            Ok(output(y, (b, c, 2 * h, 2 * w)))
        })
    }
    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&Upsample2xBackward)?))
    }
}

impl CustomOp1 for Upsample2xBackward {
    fn name(&self) -> &'static str {
        "rediffuse-upsample2x-backward"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-upsample2x-backward", || {
            let (b, c, h2, w2) = dims4(l, "upsample_nearest2x backward")?;
            if h2 % 2 != 0 || w2 % 2 != 0 {
                bail!("upsample_nearest2x backward: odd gradient size {h2}×{w2}");
            }
            let (h, w) = (h2 / 2, w2 / 2);
            let dy = slice(s, l, "upsample_nearest2x")?;
            let mut dx = vec![0f32; b * c * h * w];
            par_rows(&mut dx, w, |r, o| {
                let first = r.start / w.max(1);
                for (i, row) in o.chunks_exact_mut(w).enumerate() {
                    let src = &dy[(first + i) * 4 * w..(first + i + 1) * 4 * w];
                    let (top, bottom) = src.split_at(2 * w);
                    for (j, d) in row.iter_mut().enumerate() {
                        *d = top[2 * j] + top[2 * j + 1] + bottom[2 * j] + bottom[2 * j + 1];
                    }
                }
            });
            Ok(output(dx, (b, c, h, w)))
        })
    }
}

/// `y[b, c, …] = x[b, c, …] + t[b, c]` (time-embedding injection).
pub(crate) struct AddChannelBias;
/// `dt[b, c] = Σ_… dy[b, c, …]`.
struct SumSpatial;

impl CustomOp2 for AddChannelBias {
    fn name(&self) -> &'static str {
        "rediffuse-add-channel-bias"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-add-channel-bias", || {
            let dims = l1.dims();
            if dims.len() < 2 || l2.dims() != &dims[..2] {
                bail!("add_channel_bias: x {:?} needs t of shape [B, C], got {:?}", dims, l2.dims());
            }
            let hw: usize = dims[2..].iter().product();
            let (x, t) = (slice(s1, l1, "add_channel_bias")?, slice(s2, l2, "add_channel_bias")?);
            let mut y = vec![0f32; x.len()];
            if hw > 0 {
                par_rows(&mut y, hw, |r, o| {
                    let first = r.start / hw;
                    for (i, row) in o.chunks_exact_mut(hw).enumerate() {
                        let bias = t[first + i];
                        for (yv, xv) in row.iter_mut().zip(&x[(first + i) * hw..(first + i + 1) * hw]) {
                            *yv = xv + bias;
                        }
                    }
                });
            }
            Ok(output(y, l1.shape().clone()))
        })
    }
    fn bwd(
        &self,
        x: &Tensor,
        t: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.track_op().then(|| dy.clone());
        let dt = if t.track_op() { Some(dy.contiguous()?.apply_op1_no_bwd(&SumSpatial)?) } else { None };
        Ok((dx, dt))
    }
}

impl CustomOp1 for SumSpatial {
    fn name(&self) -> &'static str {
        "rediffuse-sum-spatial"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-sum-spatial", || {
            let dims = l.dims();
            if dims.len() < 2 {
                bail!("sum over spatial dims needs [B, C, …], got {dims:?}");
            }
            let hw: usize = dims[2..].iter().product();
            let dy = slice(s, l, "add_channel_bias")?;
            let mut dt = vec![0f32; dims[0] * dims[1]];
            par_rows(&mut dt, 1, |r, o| {
                for (i, d) in o.iter_mut().enumerate() {
                    let row = r.start + i;
                    *d = super::simd::sum(&dy[row * hw..(row + 1) * hw]);
                }
            });
            Ok(output(dt, (dims[0], dims[1])))
        })
    }
}
