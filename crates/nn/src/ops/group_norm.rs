//! Fused GroupNorm (+ optional SiLU) forward and backward as candle custom ops.
//!
//! Forward (Wu & He 2018): for each sample and group, `x̂ = (x − μ)/√(σ² + ε)`,
//! `z = γ_c x̂ + β_c`, `y = z` or `y = z·sigmoid(z)`.
//! Backward: `dz = dy` (or `dy·s(1 + z(1 − s))`, `s = sigmoid(z)`), `dβ_c = Σ dz`,
//! `dγ_c = Σ dz·x̂`, `dx = (γ_c dz − mean(γ dz) − x̂·mean(γ dz x̂)) / √(σ² + ε)`,
//! the means taken over the group.

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{output, slice, unpack};
use super::simd::{multiversion, sigmoid_f32};
use super::threads::{par_for, SyncPtr};

/// Shape of one GroupNorm call: `b` samples, `c` channels of `hw` elements, `groups` groups.
#[derive(Clone, Copy, Debug)]
struct GnGeom {
    b: usize,
    c: usize,
    hw: usize,
    groups: usize,
}

impl GnGeom {
    fn new(dims: &[usize], groups: usize) -> Result<Self> {
        if dims.len() < 2 {
            bail!("group_norm expects at least [B, C], got {dims:?}");
        }
        let (b, c) = (dims[0], dims[1]);
        if groups == 0 || c % groups != 0 {
            bail!("group_norm: {c} channels cannot be split into {groups} groups");
        }
        Ok(GnGeom { b, c, hw: dims[2..].iter().product(), groups })
    }
    fn cg(&self) -> usize {
        self.c / self.groups
    }
}

multiversion! {
    /// Mean and 1/√(var + eps) of `x` (two passes, 16 accumulators each).
    pub(super) fn stats(x: &[f32], eps: f32) -> (f32, f32) {
        let n = x.len().max(1) as f32;
        let mut acc = [0f32; 16];
        let chunks = x.chunks_exact(16);
        let rem = chunks.remainder();
        for c in chunks {
            for i in 0..16 {
                acc[i] += c[i];
            }
        }
        let mean = (acc.iter().sum::<f32>() + rem.iter().sum::<f32>()) / n;
        let mut acc = [0f32; 16];
        let chunks = x.chunks_exact(16);
        for c in chunks {
            for i in 0..16 {
                let d = c[i] - mean;
                acc[i] += d * d;
            }
        }
        let var = (acc.iter().sum::<f32>() + rem.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>()) / n;
        (mean, 1.0 / (var + eps).sqrt())
    }
}

multiversion! {
    /// `y = x·scale + shift`, then SiLU if asked.
    fn affine_row(x: &[f32], y: &mut [f32], scale: f32, shift: f32, silu: bool) {
        if silu {
            for (yv, xv) in y.iter_mut().zip(x) {
                let z = xv * scale + shift;
                *yv = z * sigmoid_f32(z);
            }
        } else {
            for (yv, xv) in y.iter_mut().zip(x) {
                *yv = xv * scale + shift;
            }
        }
    }
}

multiversion! {
    /// First backward pass over one channel row: writes `dz` into `dz_out` and returns
    /// `(Σ dz, Σ dz·x̂)`.
    fn backward_row(
        x: &[f32], dy: &[f32], dz_out: &mut [f32], mean: f32, rstd: f32, gamma: f32, beta: f32, silu: bool,
    ) -> (f32, f32) {
        if silu {
            for ((d, xv), g) in dz_out.iter_mut().zip(x).zip(dy) {
                let z = (xv - mean) * (rstd * gamma) + beta;
                let s = sigmoid_f32(z);
                *d = g * s * (1.0 + z * (1.0 - s));
            }
        } else {
            dz_out.copy_from_slice(dy);
        }
        let mut s1 = [0f32; 16];
        let mut s2 = [0f32; 16];
        let n = x.len();
        let full = n - n % 16;
        for (xc, dc) in x[..full].chunks_exact(16).zip(dz_out[..full].chunks_exact(16)) {
            for l in 0..16 {
                s1[l] += dc[l];
                s2[l] += dc[l] * xc[l];
            }
        }
        let (mut t1, mut t2) = (s1.iter().sum::<f32>(), s2.iter().sum::<f32>());
        for j in full..n {
            t1 += dz_out[j];
            t2 += dz_out[j] * x[j];
        }
        // Σ dz·x̂ = rstd·(Σ dz·x − mean·Σ dz)
        (t1, rstd * (t2 - mean * t1))
    }
}

multiversion! {
    /// Second backward pass: `dx = rstd·(γ dz − m1 − x̂·m2)`, `dz` read from (and
    /// overwritten in) `dx`.
    fn dx_row(x: &[f32], dx: &mut [f32], mean: f32, rstd: f32, gamma: f32, m1: f32, m2: f32) {
        for (d, xv) in dx.iter_mut().zip(x) {
            let xh = (xv - mean) * rstd;
            *d = rstd * (gamma * *d - m1 - xh * m2);
        }
    }
}

fn gn_forward(x: &[f32], gamma: &[f32], beta: &[f32], g: GnGeom, eps: f32, silu: bool) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    let yp = SyncPtr(y.as_mut_ptr());
    let (cg, hw) = (g.cg(), g.hw);
    par_for(g.b * g.groups, |idx| {
        let (bi, gi) = (idx / g.groups, idx % g.groups);
        let start = (bi * g.c + gi * cg) * hw;
        let xs = &x[start..start + cg * hw];
        // SAFETY: every (sample, group) block is written by one task.
        let ys = unsafe { yp.slice(start, cg * hw) };
        let (mean, rstd) = stats(xs, eps);
        for cc in 0..cg {
            let ch = gi * cg + cc;
            let scale = rstd * gamma[ch];
            let shift = beta[ch] - mean * scale;
            affine_row(&xs[cc * hw..(cc + 1) * hw], &mut ys[cc * hw..(cc + 1) * hw], scale, shift, silu);
        }
    });
    y
}

/// Packed `[dx (B·C·HW), dγ (C), dβ (C)]`.
fn gn_backward(x: &[f32], gb: &[f32], dy: &[f32], g: GnGeom, eps: f32, silu: bool) -> Vec<f32> {
    let (gamma, beta) = gb.split_at(g.c);
    let mut out = vec![0f32; x.len() + 2 * g.c];
    // Per-(sample, channel) partial sums Σdz·x̂ (first half) and Σdz (second half).
    let mut part = vec![0f32; 2 * g.b * g.c];
    let op = SyncPtr(out.as_mut_ptr());
    let pp = SyncPtr(part.as_mut_ptr());
    let (cg, hw, bc) = (g.cg(), g.hw, g.b * g.c);
    par_for(g.b * g.groups, |idx| {
        let (bi, gi) = (idx / g.groups, idx % g.groups);
        let start = (bi * g.c + gi * cg) * hw;
        let xs = &x[start..start + cg * hw];
        let dys = &dy[start..start + cg * hw];
        // SAFETY: every (sample, group) block and its partial-sum entries belong to one task.
        let dxs = unsafe { op.slice(start, cg * hw) };
        let (mean, rstd) = stats(xs, eps);
        let (mut m1, mut m2) = (0f32, 0f32);
        for cc in 0..cg {
            let ch = gi * cg + cc;
            let r = cc * hw..(cc + 1) * hw;
            let (s1, s2) = backward_row(
                &xs[r.clone()],
                &dys[r.clone()],
                &mut dxs[r],
                mean,
                rstd,
                gamma[ch],
                beta[ch],
                silu,
            );
            unsafe {
                pp.slice(bi * g.c + ch, 1)[0] = s2;
                pp.slice(bc + bi * g.c + ch, 1)[0] = s1;
            }
            m1 += gamma[ch] * s1;
            m2 += gamma[ch] * s2;
        }
        let n = (cg * hw) as f32;
        let (m1, m2) = (m1 / n, m2 / n);
        for cc in 0..cg {
            let ch = gi * cg + cc;
            let r = cc * hw..(cc + 1) * hw;
            dx_row(&xs[r.clone()], &mut dxs[r], mean, rstd, gamma[ch], m1, m2);
        }
    });
    let (_, params) = out.split_at_mut(x.len());
    for bi in 0..g.b {
        for ch in 0..g.c {
            params[ch] += part[bi * g.c + ch];
            params[g.c + ch] += part[bc + bi * g.c + ch];
        }
    }
    out
}

/// GroupNorm(+SiLU) on (x, γ, β).
pub(crate) struct GroupNorm {
    pub groups: usize,
    pub eps: f32,
    pub silu: bool,
}

/// Backward on (x, cat(γ, β), dy) → packed `[dx, dγ, dβ]`.
struct GroupNormBackward {
    groups: usize,
    eps: f32,
    silu: bool,
}

fn check_params(g: &GnGeom, l2: &Layout, l3: &Layout) -> Result<()> {
    if l2.dims() != [g.c] || l3.dims() != [g.c] {
        bail!("group_norm: gamma {:?} / beta {:?} must both be [{}]", l2.dims(), l3.dims(), g.c);
    }
    Ok(())
}

impl CustomOp3 for GroupNorm {
    fn name(&self) -> &'static str {
        "rediffuse-group-norm"
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
        super::profile::timed("rediffuse-group-norm", || {
            let g = GnGeom::new(l1.dims(), self.groups)?;
            check_params(&g, l2, l3)?;
            let (x, gamma, beta) =
                (slice(s1, l1, "group_norm")?, slice(s2, l2, "group_norm")?, slice(s3, l3, "group_norm")?);
            Ok(output(gn_forward(x, gamma, beta, g, self.eps, self.silu), l1.shape().clone()))
        })
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let want = [x.track_op(), gamma.track_op(), beta.track_op()];
        if !want.iter().any(|&w| w) {
            return Ok((None, None, None));
        }
        let gb = Tensor::cat(&[gamma.detach(), beta.detach()], 0)?;
        let op = GroupNormBackward { groups: self.groups, eps: self.eps, silu: self.silu };
        let packed = x.contiguous()?.apply_op3_no_bwd(&gb, &dy.contiguous()?, &op)?;
        let c = gamma.dim(0)?;
        let mut g = unpack(&packed, &[Some(x.dims()), Some(&[c]), Some(&[c])])?.into_iter();
        let mut pick = |w: bool| g.next().flatten().filter(|_| w);
        Ok((pick(want[0]), pick(want[1]), pick(want[2])))
    }
}

impl CustomOp3 for GroupNormBackward {
    fn name(&self) -> &'static str {
        "rediffuse-group-norm-backward"
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
        super::profile::timed("rediffuse-group-norm-backward", || {
            let g = GnGeom::new(l1.dims(), self.groups)?;
            if l2.dims() != [2 * g.c] || l3.dims() != l1.dims() {
                bail!("group_norm backward: unexpected shapes {:?} {:?}", l2.dims(), l3.dims());
            }
            let (x, gb, dy) =
                (slice(s1, l1, "group_norm")?, slice(s2, l2, "group_norm")?, slice(s3, l3, "group_norm")?);
            let packed = gn_backward(x, gb, dy, g, self.eps, self.silu);
            let n = packed.len();
            Ok(output(packed, n))
        })
    }
}
