//! Fused adaptive LayerNorm (DiT's adaLN): LayerNorm without affine parameters over the last
//! dimension of `x [B, N, D]`, modulated per sample by `shift`, `scale` `[B, D]`:
//! `y[b, n, :] = x̂[b, n, :]·(1 + scale[b, :]) + shift[b, :]`, `x̂ = (x − μ)/√(σ² + ε)`.
//!
//! Backward, with `g = dy·(1 + scale[b])`: `dshift[b] = Σ_n dy`, `dscale[b] = Σ_n dy·x̂`,
//! `dx = (g − mean_D(g) − x̂·mean_D(g·x̂)) / √(σ² + ε)`.
//! Work is split over samples, so each task owns its `dshift`/`dscale` rows.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{output, slice, unpack};
use super::group_norm::stats;
use super::simd::multiversion;
use super::threads::{par_for, SyncPtr};

/// `(b, n, d)` of an adaLN call on `x` dims with `[B, D]` modulation dims `m`.
fn geom(x: &[usize], m: &[usize]) -> Result<(usize, usize, usize)> {
    match x {
        &[b, n, d] if m == [b, d] => Ok((b, n, d)),
        _ => bail!("adaln_modulate: x must be [B, N, D] and shift/scale [B, D], got {x:?} and {m:?}"),
    }
}

multiversion! {
    /// `y = (x − mean)·rstd·(1 + scale) + shift` over one row.
    fn forward_row(x: &[f32], y: &mut [f32], shift: &[f32], scale: &[f32], mean: f32, rstd: f32) {
        for (((yv, xv), s), c) in y.iter_mut().zip(x).zip(shift).zip(scale) {
            *yv = (xv - mean) * rstd * (1.0 + c) + s;
        }
    }
}

multiversion! {
    /// One row of the backward pass: accumulates `dshift += dy`, `dscale += dy·x̂`, writes
    /// `g = dy·(1 + scale)` into `dx` and returns `(Σ g, Σ g·x̂)`.
    fn backward_row(
        x: &[f32], dy: &[f32], dx: &mut [f32], scale: &[f32], dshift: &mut [f32], dscale: &mut [f32],
        mean: f32, rstd: f32,
    ) -> (f32, f32) {
        let (mut s1, mut s2) = (0f32, 0f32);
        for (((((d, xv), g), c), ds), dc) in
            dx.iter_mut().zip(x).zip(dy).zip(scale).zip(dshift.iter_mut()).zip(dscale.iter_mut())
        {
            let xh = (xv - mean) * rstd;
            *ds += g;
            *dc += g * xh;
            let gv = g * (1.0 + c);
            *d = gv;
            s1 += gv;
            s2 += gv * xh;
        }
        (s1, s2)
    }
}

multiversion! {
    /// `dx = rstd·(g − m1 − x̂·m2)`, `g` read from (and overwritten in) `dx`.
    fn dx_row(x: &[f32], dx: &mut [f32], mean: f32, rstd: f32, m1: f32, m2: f32) {
        for (d, xv) in dx.iter_mut().zip(x) {
            let xh = (xv - mean) * rstd;
            *d = rstd * (*d - m1 - xh * m2);
        }
    }
}

fn adaln_forward(
    x: &[f32],
    shift: &[f32],
    scale: &[f32],
    (b, n, d): (usize, usize, usize),
    eps: f32,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    let yp = SyncPtr(y.as_mut_ptr());
    par_for(b * n, |row| {
        let bi = row / n.max(1);
        let r = row * d..(row + 1) * d;
        let xs = &x[r.clone()];
        let (mean, rstd) = stats(xs, eps);
        // SAFETY: every row is written by one task.
        let ys = unsafe { yp.slice(r.start, d) };
        forward_row(xs, ys, &shift[bi * d..(bi + 1) * d], &scale[bi * d..(bi + 1) * d], mean, rstd);
    });
    y
}

/// Packed `[dx (B·N·D), dshift (B·D), dscale (B·D)]`.
fn adaln_backward(x: &[f32], ss: &[f32], dy: &[f32], (b, n, d): (usize, usize, usize), eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len() + 2 * b * d];
    let op = SyncPtr(out.as_mut_ptr());
    let nx = x.len();
    par_for(b, |bi| {
        let scale = &ss[(2 * bi + 1) * d..(2 * bi + 2) * d];
        // SAFETY: sample `bi`'s rows of dx and its dshift/dscale rows belong to this task only.
        let (dshift, dscale) = unsafe { (op.slice(nx + bi * d, d), op.slice(nx + (b + bi) * d, d)) };
        for row in bi * n..(bi + 1) * n {
            let r = row * d..(row + 1) * d;
            let xs = &x[r.clone()];
            let dxs = unsafe { op.slice(r.start, d) };
            let (mean, rstd) = stats(xs, eps);
            let (s1, s2) = backward_row(xs, &dy[r], dxs, scale, dshift, dscale, mean, rstd);
            let inv = 1.0 / d.max(1) as f32;
            dx_row(xs, dxs, mean, rstd, s1 * inv, s2 * inv);
        }
    });
    out
}

/// adaLN on (x, shift, scale).
pub(crate) struct AdaLn {
    pub eps: f32,
}

/// Backward on (x, [shift | scale] per sample `[B, 2D]`, dy) → packed `[dx, dshift, dscale]`.
struct AdaLnBackward {
    eps: f32,
}

impl CustomOp3 for AdaLn {
    fn name(&self) -> &'static str {
        "rediffuse-adaln"
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
        super::profile::timed("rediffuse-adaln", || {
            let g = geom(l1.dims(), l2.dims())?;
            if l3.dims() != l2.dims() {
                bail!("adaln_modulate: shift {:?} and scale {:?} differ", l2.dims(), l3.dims());
            }
            let (x, shift, scale) =
                (slice(s1, l1, "adaln")?, slice(s2, l2, "adaln")?, slice(s3, l3, "adaln")?);
            Ok(output(adaln_forward(x, shift, scale, g, self.eps), l1.shape().clone()))
        })
    }
    fn bwd(
        &self,
        x: &Tensor,
        shift: &Tensor,
        scale: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let want = [x.track_op(), shift.track_op(), scale.track_op()];
        if !want.iter().any(|&w| w) {
            return Ok((None, None, None));
        }
        let ss = Tensor::cat(&[shift.detach(), scale.detach()], 1)?;
        let packed =
            x.contiguous()?.apply_op3_no_bwd(&ss, &dy.contiguous()?, &AdaLnBackward { eps: self.eps })?;
        let m = shift.dims();
        let mut g = unpack(&packed, &[Some(x.dims()), Some(m), Some(m)])?.into_iter();
        let mut pick = |w: bool| g.next().flatten().filter(|_| w);
        Ok((pick(want[0]), pick(want[1]), pick(want[2])))
    }
}

impl CustomOp3 for AdaLnBackward {
    fn name(&self) -> &'static str {
        "rediffuse-adaln-backward"
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
        super::profile::timed("rediffuse-adaln-backward", || {
            let (b, n, d) = match l1.dims() {
                &[b, n, d] => (b, n, d),
                other => bail!("adaln backward: x must be [B, N, D], got {other:?}"),
            };
            if l2.dims() != [b, 2 * d] || l3.dims() != l1.dims() {
                bail!("adaln backward: unexpected shapes {:?} {:?}", l2.dims(), l3.dims());
            }
            let (x, ss, dy) = (slice(s1, l1, "adaln")?, slice(s2, l2, "adaln")?, slice(s3, l3, "adaln")?);
            let packed = adaln_backward(x, ss, dy, (b, n, d), self.eps);
            let len = packed.len();
            Ok(output(packed, len))
        })
    }
}
