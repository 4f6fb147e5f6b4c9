//! Plain-slice CPU kernels for 2-D convolution (NCHW, square kernel, equal stride and
//! padding in both directions): forward, input gradient and weight/bias gradients.
//!
//! Each image is processed in tiles of output rows: the im2col tile (`Cin·k·k × rows·Wo`)
//! stays in cache between being written and being consumed by the GEMM, and col2im adds
//! the input-gradient tile straight back. 1×1 stride-1 unpadded convolutions skip im2col.
//! (Stride-1 convolutions take the shifted-GEMM path of `conv_shift` instead.)
//! Images are split over threads (one GEMM per tile, single-threaded); when there are
//! fewer images than threads the GEMMs themselves run in parallel.

use super::sgemm::{sgemm, Mat};
use super::simd::multiversion;
use super::threads::{gemm_parallelism, num_tasks, par_ranges, SyncPtr};

/// Target number of im2col columns per tile.
const TILE_COLS: usize = 256;

/// Shapes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub b: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// Geometry from input dims `[B, Cin, H, W]` and weight dims `[Cout, Cin, k, k]`.
    pub fn new(x: &[usize], wt: &[usize], stride: usize, pad: usize) -> Result<Self, String> {
        if x.len() != 4 || wt.len() != 4 {
            return Err(format!("conv2d expects 4-D input and weight, got {x:?} and {wt:?}"));
        }
        let (b, cin, h, w) = (x[0], x[1], x[2], x[3]);
        let (cout, cin_w, kh, kw) = (wt[0], wt[1], wt[2], wt[3]);
        if cin != cin_w {
            return Err(format!("conv2d: input has {cin} channels, weight expects {cin_w}"));
        }
        if kh != kw || kh == 0 {
            return Err(format!("conv2d: only square non-empty kernels are supported, got {kh}×{kw}"));
        }
        if stride == 0 {
            return Err("conv2d: stride must be positive".into());
        }
        if h + 2 * pad < kh || w + 2 * pad < kw {
            return Err(format!("conv2d: kernel {kh} larger than padded input {h}×{w} (padding {pad})"));
        }
        let ho = (h + 2 * pad - kh) / stride + 1;
        let wo = (w + 2 * pad - kw) / stride + 1;
        Ok(ConvGeom { b, cin, h, w, cout, k: kh, stride, pad, ho, wo })
    }
    /// Rows of the im2col matrix.
    pub fn kk(&self) -> usize {
        self.cin * self.k * self.k
    }
    /// Output pixels per image.
    pub fn n(&self) -> usize {
        self.ho * self.wo
    }
    pub fn in_img(&self) -> usize {
        self.cin * self.h * self.w
    }
    pub fn out_img(&self) -> usize {
        self.cout * self.n()
    }
    /// 1×1, stride 1, no padding: the input image already is the im2col matrix.
    pub fn direct(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }
    /// Output rows per tile.
    fn tile_rows(&self) -> usize {
        if self.direct() {
            self.ho
        } else {
            (TILE_COLS / self.wo.max(1)).clamp(1, self.ho.max(1))
        }
    }
    /// Range of output x whose input column `ox·s + kx - p` lies inside `[0, w)`.
    fn valid_ox(&self, kx: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.pad);
        // ox·s + kx ≥ p  ⇔  ox ≥ ceil((p - kx) / s)
        let lo = if kx >= p { 0 } else { (p - kx).div_ceil(s) };
        // ox·s + kx - p ≤ w - 1  ⇔  ox ≤ (w - 1 + p - kx) / s
        let hi = if self.w + p > kx { (self.w - 1 + p - kx) / s + 1 } else { 0 };
        (lo.min(self.wo), hi.min(self.wo).max(lo.min(self.wo)))
    }
}

multiversion! {
    /// Writes the im2col tile for output rows `oy0..oy1` of one image into `col`
    /// (`kk × (oy1-oy0)·wo`, row-major).
    fn im2col(x: &[f32], g: &ConvGeom, oy0: usize, oy1: usize, col: &mut [f32]) {
        let nt = (oy1 - oy0) * g.wo;
        let (k, s, p, w, wo) = (g.k, g.stride, g.pad, g.w, g.wo);
        for ci in 0..g.cin {
            let xc = &x[ci * g.h * w..(ci + 1) * g.h * w];
            for ky in 0..k {
                for kx in 0..k {
                    let row = (ci * k + ky) * k + kx;
                    let dst = &mut col[row * nt..(row + 1) * nt];
                    let (lo, hi) = g.valid_ox(kx);
                    for oy in oy0..oy1 {
                        let d = &mut dst[(oy - oy0) * wo..(oy - oy0 + 1) * wo];
                        let iy = (oy * s + ky) as isize - p as isize;
                        if iy < 0 || iy >= g.h as isize {
                            d.fill(0.0);
                            continue;
                        }
                        let src = &xc[iy as usize * w..(iy as usize + 1) * w];
                        d[..lo].fill(0.0);
                        d[hi..].fill(0.0);
                        if s == 1 {
                            let off = lo + kx - p;
                            let src = &src[off..off + (hi - lo)];
                            for (dv, sv) in d[lo..hi].iter_mut().zip(src) {
                                *dv = *sv;
                            }
                        } else {
                            for ox in lo..hi {
                                d[ox] = src[ox * s + kx - p];
                            }
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Adds the col2im of tile `dcol` (output rows `oy0..oy1`) into the input gradient `dx`.
    fn col2im(dcol: &[f32], g: &ConvGeom, oy0: usize, oy1: usize, dx: &mut [f32]) {
        let nt = (oy1 - oy0) * g.wo;
        let (k, s, p, w, wo) = (g.k, g.stride, g.pad, g.w, g.wo);
        for ci in 0..g.cin {
            let dxc = &mut dx[ci * g.h * w..(ci + 1) * g.h * w];
            for ky in 0..k {
                for kx in 0..k {
                    let row = (ci * k + ky) * k + kx;
                    let src = &dcol[row * nt..(row + 1) * nt];
                    let (lo, hi) = g.valid_ox(kx);
                    for oy in oy0..oy1 {
                        let iy = (oy * s + ky) as isize - p as isize;
                        if iy < 0 || iy >= g.h as isize {
                            continue;
                        }
                        let sr = &src[(oy - oy0) * wo..(oy - oy0 + 1) * wo];
                        let d = &mut dxc[iy as usize * w..(iy as usize + 1) * w];
                        if s == 1 {
                            let off = lo + kx - p;
                            for (dv, sv) in d[off..off + (hi - lo)].iter_mut().zip(&sr[lo..hi]) {
                                *dv += *sv;
                            }
                        } else {
                            for ox in lo..hi {
                                d[ox * s + kx - p] += sr[ox];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Forward convolution: returns `[B, Cout, Ho, Wo]` data.
pub(crate) fn conv_forward(x: &[f32], wt: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    if super::conv_shift::applies(g) {
        return super::conv_shift::forward(x, wt, bias, g);
    }
    let mut y = vec![0f32; g.b * g.out_img()];
    let yp = SyncPtr(y.as_mut_ptr());
    let per_image = num_tasks(g.b) > 1;
    let par = if per_image { gemm::Parallelism::None } else { gemm_parallelism() };
    par_ranges(g.b, |_, imgs| {
        let tile_rows = g.tile_rows();
        let mut col = if g.direct() { Vec::new() } else { vec![0f32; g.kk() * tile_rows * g.wo] };
        for img in imgs {
            let xi = &x[img * g.in_img()..(img + 1) * g.in_img()];
            // SAFETY: each image's output range is written by exactly one task.
            let yi = unsafe { yp.slice(img * g.out_img(), g.out_img()) };
            if let Some(bias) = bias {
                for (co, row) in yi.chunks_exact_mut(g.n()).enumerate() {
                    row.fill(bias[co]);
                }
            }
            let wmat = Mat::rows(wt, g.kk());
            if g.direct() {
                let xm = Mat::rows(xi, g.n());
                sgemm(g.cout, g.n(), g.kk(), yi, g.n(), bias.is_some(), wmat, xm, par);
                continue;
            }
            let mut oy0 = 0;
            while oy0 < g.ho {
                let oy1 = (oy0 + tile_rows).min(g.ho);
                let nt = (oy1 - oy0) * g.wo;
                im2col(xi, g, oy0, oy1, &mut col);
                let dst = &mut yi[oy0 * g.wo..];
                sgemm(g.cout, nt, g.kk(), dst, g.n(), bias.is_some(), wmat, Mat::rows(&col, nt), par);
                oy0 = oy1;
            }
        }
    });
    y
}

/// Which gradients [`conv_backward`] computes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvGrads {
    pub dx: bool,
    pub dw: bool,
    pub db: bool,
}

/// Backward convolution. Returns the packed gradients `[dx?, dw?, db?]` in that order
/// (`dx`: `[B, Cin, H, W]`, `dw`: `[Cout, Cin, k, k]`, `db`: `[Cout]`).
pub(crate) fn conv_backward(x: &[f32], wt: &[f32], dy: &[f32], g: &ConvGeom, want: ConvGrads) -> Vec<f32> {
    if super::conv_shift::applies(g) {
        return super::conv_shift::backward(x, wt, dy, g, want);
    }
    let n_dx = if want.dx { g.b * g.in_img() } else { 0 };
    let n_dw = if want.dw { g.cout * g.kk() } else { 0 };
    let n_db = if want.db { g.cout } else { 0 };
    let mut out = vec![0f32; n_dx + n_dw + n_db];
    let tasks = num_tasks(g.b);
    let per_image = tasks > 1;
    let par = if per_image { gemm::Parallelism::None } else { gemm_parallelism() };
    // Per-task partial weight/bias gradients, summed afterwards.
    let mut partial = vec![0f32; tasks * (n_dw + n_db)];
    let outp = SyncPtr(out.as_mut_ptr());
    let partp = SyncPtr(partial.as_mut_ptr());
    par_ranges(g.b, |task, imgs| {
        // SAFETY: task `task` owns its partial slot; images own disjoint dx ranges.
        let part = unsafe { partp.slice(task * (n_dw + n_db), n_dw + n_db) };
        let (dw, db) = part.split_at_mut(n_dw);
        let tile_rows = g.tile_rows();
        let tile = g.kk() * tile_rows * g.wo;
        let (mut col, mut dcol) = if g.direct() {
            (Vec::new(), Vec::new())
        } else {
            (
                if want.dw { vec![0f32; tile] } else { Vec::new() },
                if want.dx { vec![0f32; tile] } else { Vec::new() },
            )
        };
        for img in imgs {
            let xi = &x[img * g.in_img()..(img + 1) * g.in_img()];
            let dyi = &dy[img * g.out_img()..(img + 1) * g.out_img()];
            if want.db {
                for (co, row) in dyi.chunks_exact(g.n()).enumerate() {
                    db[co] += super::simd::sum(row);
                }
            }
            let mut dxi =
                if want.dx { Some(unsafe { outp.slice(img * g.in_img(), g.in_img()) }) } else { None };
            // Wᵀ: (kk × cout).
            let wt_t = Mat::rows_t(wt, g.kk());
            if g.direct() {
                if want.dw {
                    // dW (cout × cin) += dY (cout × n) · Xᵀ (n × cin)
                    let a = Mat::rows(dyi, g.n());
                    let b = Mat::rows_t(xi, g.n());
                    sgemm(g.cout, g.kk(), g.n(), dw, g.kk(), true, a, b, par);
                }
                if let Some(dxi) = dxi {
                    sgemm(g.kk(), g.n(), g.cout, dxi, g.n(), false, wt_t, Mat::rows(dyi, g.n()), par);
                }
                continue;
            }
            let mut oy0 = 0;
            while oy0 < g.ho {
                let oy1 = (oy0 + tile_rows).min(g.ho);
                let nt = (oy1 - oy0) * g.wo;
                let dy_tile = Mat { data: &dyi[oy0 * g.wo..], rs: g.n(), cs: 1 };
                if want.dw {
                    im2col(xi, g, oy0, oy1, &mut col);
                    let colt = Mat::rows_t(&col, nt);
                    sgemm(g.cout, g.kk(), nt, dw, g.kk(), true, dy_tile, colt, par);
                }
                if let Some(dxi) = dxi.as_deref_mut() {
                    sgemm(g.kk(), nt, g.cout, &mut dcol, nt, false, wt_t, dy_tile, par);
                    col2im(&dcol, g, oy0, oy1, dxi);
                }
                oy0 = oy1;
            }
        }
    });
    // Reduce the partial weight/bias gradients.
    let (_, rest) = out.split_at_mut(n_dx);
    for t in 0..tasks {
        let p = &partial[t * (n_dw + n_db)..(t + 1) * (n_dw + n_db)];
        super::simd::add_assign(rest, p);
    }
    out
}
