//! The equivariant local score (ELS) machine (seed 002, Analytic Theory, "Locally Consistent
//! Patch Mosaic Models"; Kamb & Ganguli 2024): the optimal denoiser under locality and
//! translation equivariance. Pixel p of x̂₀ only sees the P×P window x_{Ω_p} and averages the
//! centre pixels of all training patches of the matching kind,
//!
//! x̂₀(x)_p = Σ_{P₀ ∈ 𝒫_Ω(𝒟)} W_t(P₀ | x_{Ω_p}) P₀(0),  W_t ∝ 𝒩(x_{Ω_p}; √ᾱ_t P₀, (1 − ᾱ_t) I),
//!
//! so that s(x, t)_p = (√ᾱ_t x̂₀_p − x_p)/(1 − ᾱ_t) is the seed's ELS score. Boundaries break
//! equivariance ("Detail 2"): patches are zero-padded as a CNN pads, and a pixel only competes
//! with training patches taken where the padding is the same (an interior pixel with every
//! interior patch, a pixel on the left edge with the patches of that column, a corner pixel with
//! that corner). P may change with the noise level ([`PatchSchedule`], "Detail 1"). With
//! P ≥ 2·max(H, W) − 1 every window is the whole image and this is the empirical ("perfect")
//! denoiser [`super::EmpiricalDenoiser`], which memorises; small P gives new images that are
//! locally consistent mosaics of training patches.
//!
//! Logits are matrix products of query and training patches (f64), folded over chunks of
//! training patches by an online log-sum-exp ([`kernel`]). The machine is not differentiable
//! (no exact likelihood); every sampler runs on it.

mod kernel;
mod patches;
pub mod schedule;

pub use schedule::{PatchKnot, PatchSchedule, MAX_PATCH};

use super::error::{AnalyticError, AnalyticResult};
use super::{analytic_forward, AnalyticDenoiser};
use crate::denoiser::Denoiser;
use crate::error::{CoreError, Result};
use crate::prediction::Prediction;
use crate::schedule::DiffusionSchedule;
use candle_core::{DType, Device, Tensor};
use kernel::{softmax_mean, KeyChunk};
use patches::{extract_patch, position_classes};
use std::sync::Arc;

/// Training patches per chunk of the streamed softmax.
pub const DEFAULT_KEY_CHUNK: usize = 4096;
/// Query windows per parallel task (its `[rows, chunk]` logits buffer is 2 MiB).
pub const DEFAULT_QUERY_BLOCK: usize = 64;
/// Most f64 values of stored training patches over all patch sides (4 GiB).
pub const MAX_PATCH_VALUES: usize = 1 << 29;

/// Pixels sharing a padding pattern and the training patches they compete over.
#[derive(Debug)]
struct PositionClass {
    positions: Vec<usize>,
    chunks: Vec<KeyChunk>,
}

#[derive(Debug)]
struct PatchTable {
    patch: usize,
    radius: usize,
    classes: Vec<PositionClass>,
}

/// The boundary-aware ELS machine over a training set of images `[N, C, H, W]`.
#[derive(Debug, Clone)]
pub struct ElsDenoiser {
    images: Arc<Vec<f64>>,
    n: usize,
    shape: (usize, usize, usize),
    schedule: PatchSchedule,
    tables: Arc<Vec<PatchTable>>,
    alpha_bar: Vec<f64>,
    device: Device,
    key_chunk: usize,
    query_block: usize,
}

impl ElsDenoiser {
    /// Build from `data` `[N, C, H, W]` (finite values) with patch sides `patches`.
    pub fn new(data: &Tensor, schedule: &DiffusionSchedule, patches: PatchSchedule) -> AnalyticResult<Self> {
        let &[n, c, h, w] = data.dims() else {
            return Err(AnalyticError::Dimension(format!(
                "the ELS machine needs images [N, C, H, W], got {:?}",
                data.dims()
            )));
        };
        if n == 0 || c * h * w == 0 {
            return Err(AnalyticError::invalid("data", "need at least one non-empty image"));
        }
        let stored: usize = patches
            .patch_sizes()
            .iter()
            .map(|&p| {
                let side = 2 * effective_radius(p, h, w) + 1;
                n.saturating_mul(h * w).saturating_mul(c * side * side)
            })
            .fold(0usize, usize::saturating_add);
        if stored > MAX_PATCH_VALUES {
            return Err(AnalyticError::invalid(
                "data",
                format!(
                    "{n} images of {c}×{h}×{w} with patch sides {:?} need {stored} stored values \
                     (more than {MAX_PATCH_VALUES}); use fewer images or smaller patches",
                    patches.patch_sizes()
                ),
            ));
        }
        let images: Vec<f64> =
            data.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
        if images.iter().any(|v| !v.is_finite()) {
            return Err(AnalyticError::invalid("data", "contains a non-finite value"));
        }
        let mut me = Self {
            images: Arc::new(images),
            n,
            shape: (c, h, w),
            schedule: patches,
            tables: Arc::new(Vec::new()),
            alpha_bar: schedule.alpha_bar.clone(),
            device: Device::Cpu,
            key_chunk: DEFAULT_KEY_CHUNK,
            query_block: DEFAULT_QUERY_BLOCK,
        };
        me.rebuild()?;
        Ok(me)
    }

    /// Chunk sizes of the streamed softmax (training patches per chunk, query windows per block).
    pub fn with_chunks(mut self, key_chunk: usize, query_block: usize) -> AnalyticResult<Self> {
        if key_chunk == 0 || query_block == 0 {
            return Err(AnalyticError::invalid("chunk", "chunk sizes must be >= 1"));
        }
        self.key_chunk = key_chunk;
        self.query_block = query_block;
        self.rebuild()?;
        Ok(self)
    }

    /// Number of training images N.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Image shape `(C, H, W)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        self.shape
    }

    pub fn patch_schedule(&self) -> &PatchSchedule {
        &self.schedule
    }

    fn rebuild(&mut self) -> AnalyticResult<()> {
        let tables = self
            .schedule
            .patch_sizes()
            .into_iter()
            .map(|p| self.build_table(p))
            .collect::<AnalyticResult<Vec<_>>>()?;
        self.tables = Arc::new(tables);
        Ok(())
    }

    fn build_table(&self, patch: usize) -> AnalyticResult<PatchTable> {
        let (c, h, w) = self.shape;
        let radius = effective_radius(patch, h, w);
        let k = c * (2 * radius + 1).pow(2);
        let per_image = c * h * w;
        let mut classes = Vec::new();
        for positions in position_classes(h, w, radius) {
            let pairs: Vec<(usize, usize)> =
                (0..self.n).flat_map(|i| positions.iter().map(move |&p| (i, p))).collect();
            let mut chunks = Vec::new();
            for group in pairs.chunks(self.key_chunk) {
                let m = group.len();
                let mut keys = vec![0.0; m * k];
                let mut centres = vec![0.0; c * m];
                for (row, &(i, pos)) in group.iter().enumerate() {
                    let img = &self.images[i * per_image..(i + 1) * per_image];
                    extract_patch(img, self.shape, pos, radius, &mut keys[row * k..(row + 1) * k]);
                    for ch in 0..c {
                        centres[ch * m + row] = img[ch * h * w + pos];
                    }
                }
                let half_sq = keys.chunks(k).map(|r| 0.5 * r.iter().map(|v| v * v).sum::<f64>()).collect();
                chunks.push(KeyChunk { keys, half_sq, values: centres });
            }
            classes.push(PositionClass { positions, chunks });
        }
        Ok(PatchTable { patch, radius, classes })
    }

    /// x̂₀ of `x` (`[B, C·H·W]` values, row-major) with the patch table of side `patch`.
    fn denoise_with(&self, x: &[f64], b: usize, table: &PatchTable, ab: f64) -> Result<Vec<f64>> {
        let (c, h, w) = self.shape;
        let per_image = c * h * w;
        let k = c * (2 * table.radius + 1).pow(2);
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let coef = (a / s2, a * a / s2);
        let mut out = vec![0.0; b * per_image];
        for class in &table.classes {
            let npos = class.positions.len();
            let rows = b * npos;
            let mut q = vec![0.0; rows * k];
            for (r, dst) in q.chunks_mut(k).enumerate() {
                let (i, pos) = (r / npos, class.positions[r % npos]);
                extract_patch(&x[i * per_image..(i + 1) * per_image], self.shape, pos, table.radius, dst);
            }
            let means = softmax_mean(&q, k, &class.chunks, coef, c, self.query_block);
            for (r, mean) in means.chunks(c).enumerate() {
                let (i, pos) = (r / npos, class.positions[r % npos]);
                for (ch, v) in mean.iter().enumerate() {
                    out[i * per_image + ch * h * w + pos] = *v;
                }
            }
        }
        Ok(out)
    }
}

/// A window radius beyond max(H, W) − 1 only adds zeros on both sides of every comparison.
fn effective_radius(patch: usize, h: usize, w: usize) -> usize {
    (patch / 2).min(h.max(w) - 1)
}

impl AnalyticDenoiser for ElsDenoiser {
    fn dim(&self) -> usize {
        let (c, h, w) = self.shape;
        c * h * w
    }
    fn alpha_bar(&self) -> &[f64] {
        &self.alpha_bar
    }
    fn compute_device(&self) -> &Device {
        &self.device
    }
    fn posterior_mean_at(&self, x: &Tensor, ab: f64) -> Result<Tensor> {
        if !(ab > 0.0 && ab <= 1.0) {
            return Err(CoreError::invalid("alpha_bar", format!("must lie in (0, 1], got {ab}")));
        }
        if ab == 1.0 {
            return Ok(x.clone());
        }
        let (b, d) = x.dims2()?;
        let patch = self.schedule.patch_at(((1.0 - ab) / ab).sqrt());
        let table =
            self.tables.iter().find(|t| t.patch == patch).expect("a table per patch side of the schedule");
        let xs: Vec<f64> = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let out = self.denoise_with(&xs, b, table, ab)?;
        Ok(Tensor::from_vec(out, (b, d), &self.device)?)
    }
}

impl Denoiser for ElsDenoiser {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        analytic_forward(self, x_t, t)
    }
}
