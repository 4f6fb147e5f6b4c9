//! Stride-1 convolution as a sum of shifted GEMMs (no im2col).
//!
//! A chunk of images is copied channel-major into a zero-padded buffer `xp[ci][n]` whose
//! column `n = g·P + y·Wp + x` walks image `g`'s padded `Hp × Wp` grid (`P = Hp·Wp`).
//! For kernel tap `(ky, kx)` the input pixel under output `(y, x)` is column
//! `n + ky·Wp + kx`, so `Y[co][n] = Σ_tap W_tap[co][ci] · xp[ci][n + off(tap)]`: one GEMM per
//! tap with `K = Cin` over all the chunk's columns at once. Columns with `x ≥ Wo` or
//! `y ≥ Ho` are computed and discarded. The input gradient is the same computation with
//! the flipped, transposed kernel on the padded output gradient (padding `k − 1 − p`);
//! the weight gradient of tap `(ky, kx)` is `dY · xp_shiftedᵀ` with `dY` laid out on the
//! same grid (zeros in the discarded columns).

use super::conv_kernels::{ConvGeom, ConvGrads};
use super::sgemm::{sgemm, Mat};
use super::threads::{gemm_parallelism, num_tasks, par_ranges, Scratch, SyncPtr};

/// Target number of GEMM columns per chunk (keeps the chunk's output in L2).
const CHUNK_COLS: usize = 2048;

/// Whether the shifted-GEMM path handles `g` (stride 1, padding at most `k − 1`).
pub(crate) fn applies(g: &ConvGeom) -> bool {
    g.stride == 1 && g.pad < g.k
}

/// A padded grid: images of `h × w` placed at offset `(pad, pad)` in `hp × wp` cells.
#[derive(Clone, Copy)]
struct Grid {
    h: usize,
    w: usize,
    pad: usize,
    wp: usize,
    /// Cells per image (`hp · wp`).
    cells: usize,
    /// Extra cells after the last image read by shifted views (`(k−1)·(wp+1)`).
    tail: usize,
}

impl Grid {
    fn new(h: usize, w: usize, pad: usize, k: usize) -> Self {
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        Grid { h, w, pad, wp, cells: hp * wp, tail: (k - 1) * (wp + 1) }
    }
    /// Row length of a channel in a chunk buffer of `imgs` images.
    fn row(&self, imgs: usize) -> usize {
        imgs * self.cells + self.tail
    }
    fn imgs_per_chunk(&self) -> usize {
        (CHUNK_COLS / self.cells).max(1)
    }
    /// Copies `c` channels of `imgs` NCHW images into the interior of the channel-major
    /// grid buffer `dst` with rows of length `row` (borders are left as they are: zero).
    fn fill(&self, src: &[f32], c: usize, imgs: usize, row: usize, dst: &mut [f32]) {
        let hw = self.h * self.w;
        for g in 0..imgs {
            for ch in 0..c {
                let s = &src[(g * c + ch) * hw..(g * c + ch + 1) * hw];
                let d = &mut dst[ch * row + g * self.cells..];
                for y in 0..self.h {
                    let o = (y + self.pad) * self.wp + self.pad;
                    d[o..o + self.w].copy_from_slice(&s[y * self.w..(y + 1) * self.w]);
                }
            }
        }
    }
    /// Like [`Grid::fill`] but pixel-major: cell `n` of the chunk holds its `c` channels
    /// contiguously at `dst[n·c ..]` (the layout the weight-gradient GEMM reads without
    /// gathering).
    fn fill_t(&self, src: &[f32], c: usize, imgs: usize, dst: &mut [f32]) {
        const CB: usize = 8;
        let hw = self.h * self.w;
        for g in 0..imgs {
            let img = &src[g * c * hw..(g + 1) * c * hw];
            for y in 0..self.h {
                let cell0 = g * self.cells + (y + self.pad) * self.wp + self.pad;
                let drow = &mut dst[cell0 * c..(cell0 + self.w) * c];
                // Blocks of CB channels: CB contiguous source rows, CB-wide destination runs.
                let mut ch = 0;
                while ch < c {
                    let cb = CB.min(c - ch);
                    for x in 0..self.w {
                        let d = &mut drow[x * c + ch..x * c + ch + cb];
                        for (j, dv) in d.iter_mut().enumerate() {
                            *dv = img[(ch + j) * hw + y * self.w + x];
                        }
                    }
                    ch += cb;
                }
            }
        }
    }
}

/// Copies the valid `ho × wo` outputs of a chunk result `src[c][n]` (row length `row`,
/// grid width `wp`, image stride `cells`) into NCHW `dst`, adding `bias[c]` if given.
#[allow(clippy::too_many_arguments)]
fn extract(
    src: &[f32],
    row: usize,
    wp: usize,
    cells: usize,
    c: usize,
    imgs: usize,
    (ho, wo): (usize, usize),
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    for g in 0..imgs {
        for ch in 0..c {
            let b = bias.map_or(0.0, |b| b[ch]);
            let d = &mut dst[(g * c + ch) * ho * wo..(g * c + ch + 1) * ho * wo];
            let s = &src[ch * row + g * cells..];
            for y in 0..ho {
                for (dv, sv) in d[y * wo..(y + 1) * wo].iter_mut().zip(&s[y * wp..y * wp + wo]) {
                    *dv = sv + b;
                }
            }
        }
    }
}

/// `out[M][N] (row stride ldo) = Σ_tap A_tap · shift_tap(src)`: one GEMM per kernel tap.
/// `tap_mat(ky, kx)` gives `A_tap` (M × K); `src` rows have length `ld`.
#[allow(clippy::too_many_arguments)]
fn shifted_gemms<'a>(
    k: usize,
    wp: usize,
    m: usize,
    kdim: usize,
    n: usize,
    out: &mut [f32],
    src: &[f32],
    ld: usize,
    tap_mat: impl Fn(usize, usize) -> Mat<'a>,
    par: gemm::Parallelism,
) {
    for ky in 0..k {
        for kx in 0..k {
            let off = ky * wp + kx;
            let b = Mat { data: &src[off..], rs: ld, cs: 1 };
            sgemm(m, n, kdim, out, n, ky + kx > 0, tap_mat(ky, kx), b, par);
        }
    }
}

fn split_par(b: usize) -> gemm::Parallelism {
    if num_tasks(b) > 1 {
        gemm::Parallelism::None
    } else {
        gemm_parallelism()
    }
}

/// Forward convolution (stride 1) into `[B, Cout, Ho, Wo]`.
pub(crate) fn forward(x: &[f32], wt: &[f32], bias: Option<&[f32]>, g: &ConvGeom) -> Vec<f32> {
    let grid = Grid::new(g.h, g.w, g.pad, g.k);
    let mut y = vec![0f32; g.b * g.out_img()];
    let yp = SyncPtr(y.as_mut_ptr());
    let kk = g.k * g.k;
    // Work units of `per` images; each thread keeps one input and one output buffer.
    let per = grid.imgs_per_chunk().min(g.b.max(1));
    let units = g.b.div_ceil(per);
    let par = split_par(units);
    let (ld, out_len) = (grid.row(per), g.cout * per * grid.cells);
    let scratch = Scratch::new(num_tasks(units), g.cin * ld + out_len);
    par_ranges(units, |tid, range| {
        scratch.with(tid, |buf| {
            let (xp, out) = buf.split_at_mut(g.cin * ld);
            for unit in range {
                let i0 = unit * per;
                let n_img = per.min(g.b - i0);
                grid.fill(&x[i0 * g.in_img()..], g.cin, n_img, ld, xp);
                let cols = n_img * grid.cells;
                let tap = |ky: usize, kx: usize| Mat { data: &wt[ky * g.k + kx..], rs: g.cin * kk, cs: kk };
                shifted_gemms(g.k, grid.wp, g.cout, g.cin, cols, out, xp, ld, tap, par);
                // SAFETY: each image's output range is written by exactly one unit.
                let dst = unsafe { yp.slice(i0 * g.out_img(), n_img * g.out_img()) };
                extract(out, cols, grid.wp, grid.cells, g.cout, n_img, (g.ho, g.wo), bias, dst);
            }
        })
    });
    y
}

/// Backward convolution (stride 1): packed `[dx?, dw?, db?]` as in `conv_backward`.
pub(crate) fn backward(x: &[f32], wt: &[f32], dy: &[f32], g: &ConvGeom, want: ConvGrads) -> Vec<f32> {
    let kk = g.k * g.k;
    let n_dx = if want.dx { g.b * g.in_img() } else { 0 };
    let n_dw = if want.dw { g.cout * g.kk() } else { 0 };
    let n_db = if want.db { g.cout } else { 0 };
    let mut out = vec![0f32; n_dx + n_dw + n_db];
    // Forward grid (input padded by p) and the output-gradient grid (padded by k−1−p).
    let fgrid = Grid::new(g.h, g.w, g.pad, g.k);
    let bgrid = Grid::new(g.ho, g.wo, g.k - 1 - g.pad, g.k);
    let per = fgrid.imgs_per_chunk().min(bgrid.imgs_per_chunk()).min(g.b.max(1));
    let units = g.b.div_ceil(per);
    let tasks = num_tasks(units);
    let par = split_par(units);
    // Per-thread scratch: pixel-major padded x and dY for dW, padded dY and result for dx.
    let (fld, bld) = (fgrid.row(per), bgrid.row(per));
    let lens = [
        if want.dw { g.cin * fld } else { 0 },
        if want.dw { g.cout * per * fgrid.cells } else { 0 },
        if want.dx { g.cout * bld } else { 0 },
        if want.dx { g.cin * per * bgrid.cells } else { 0 },
    ];
    let scratch = Scratch::new(tasks, lens.iter().sum());
    // Per-thread partial dW laid out tap-major `[tap][Cout][Cin]`, then db.
    let part_len = if want.dw { kk * g.cout * g.cin } else { 0 } + n_db;
    let mut partial = vec![0f32; tasks * part_len];
    let outp = SyncPtr(out.as_mut_ptr());
    let partp = SyncPtr(partial.as_mut_ptr());
    par_ranges(units, |tid, range| {
        // SAFETY: thread `tid` owns its partial slot; units own disjoint dx ranges.
        let part = unsafe { partp.slice(tid * part_len, part_len) };
        let (dw, db) = part.split_at_mut(part_len - n_db);
        scratch.with(tid, |buf| {
            let (xp, rest) = buf.split_at_mut(lens[0]);
            let (dyz, rest) = rest.split_at_mut(lens[1]);
            let (dyp, dxo) = rest.split_at_mut(lens[2]);
            for unit in range {
                let i0 = unit * per;
                let n_img = per.min(g.b - i0);
                let dyc = &dy[i0 * g.out_img()..(i0 + n_img) * g.out_img()];
                if want.db {
                    for (idx, r) in dyc.chunks_exact(g.n()).enumerate() {
                        db[idx % g.cout] += super::simd::sum(r);
                    }
                }
                if want.dw {
                    // Pixel-major padded input and pixel-major dY on the forward output grid
                    // (zeros in the discarded cells, never written): dW_tap = dY · shift_tap(x)ᵀ
                    // with both operands contiguous along the channel dimension. Cells of a
                    // short last unit past its images hold stale values that only meet zeros.
                    fgrid.fill_t(&x[i0 * g.in_img()..], g.cin, n_img, xp);
                    let cols = n_img * fgrid.cells;
                    let out_grid = Grid { h: g.ho, w: g.wo, pad: 0, ..fgrid };
                    out_grid.fill_t(dyc, g.cout, n_img, dyz);
                    let a = Mat { data: dyz, rs: 1, cs: g.cout };
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let tap = ky * g.k + kx;
                            let off = ky * fgrid.wp + kx;
                            // dW_tap (Cout × Cin) += dY (Cout × cols) · xp_shiftedᵀ (cols × Cin)
                            let b = Mat { data: &xp[off * g.cin..], rs: g.cin, cs: 1 };
                            let dst = &mut dw[tap * g.cout * g.cin..(tap + 1) * g.cout * g.cin];
                            sgemm(g.cout, g.cin, cols, dst, g.cin, true, a, b, par);
                        }
                    }
                }
                if want.dx {
                    bgrid.fill(dyc, g.cout, n_img, bld, dyp);
                    let cols = n_img * bgrid.cells;
                    // Flipped, transposed tap: element (ci, co) = w[co][ci][k−1−ky][k−1−kx].
                    let tap = |ky: usize, kx: usize| Mat {
                        data: &wt[(g.k - 1 - ky) * g.k + (g.k - 1 - kx)..],
                        rs: kk,
                        cs: g.cin * kk,
                    };
                    shifted_gemms(g.k, bgrid.wp, g.cin, g.cout, cols, dxo, dyp, bld, tap, par);
                    // SAFETY: as above.
                    let dst = unsafe { outp.slice(i0 * g.in_img(), n_img * g.in_img()) };
                    extract(dxo, cols, bgrid.wp, bgrid.cells, g.cin, n_img, (g.h, g.w), None, dst);
                }
            }
        })
    });
    // Reduce the partials; dW goes from [tap][Cout][Cin] to [Cout][Cin][k][k].
    let (_, rest) = out.split_at_mut(n_dx);
    let (dw_out, db_out) = rest.split_at_mut(n_dw);
    for t in 0..tasks {
        let p = &partial[t * part_len..(t + 1) * part_len];
        let (pw, pb) = p.split_at(part_len - n_db);
        if want.dw {
            for tap in 0..kk {
                for co in 0..g.cout {
                    for ci in 0..g.cin {
                        dw_out[(co * g.cin + ci) * kk + tap] += pw[(tap * g.cout + co) * g.cin + ci];
                    }
                }
            }
        }
        super::simd::add_assign(db_out, pb);
    }
    out
}
