//! The "perfect" denoiser of a finite training set D = {x₀⁽ⁱ⁾} (seed 002,
//! Analytic Theory): with a = √ᾱ_t, s² = 1 − ᾱ_t,
//! W_t(x₀⁽ⁱ⁾ | x) = softmax_i(−‖x − a x₀⁽ⁱ⁾‖² / (2 s²)) and x̂₀ = Σ_i W_t(x₀⁽ⁱ⁾ | x) x₀⁽ⁱ⁾,
//! i.e. the optimum of the denoising objective on D; sampling with it reproduces
//! training points. Logits are computed by matmul, dropping the row-constant
//! ‖x‖²: logit_i = (a x·x₀⁽ⁱ⁾ − a²‖x₀⁽ⁱ⁾‖²/2)/s², streamed over chunks of D with
//! an online log-sum-exp, in f64.

use super::error::{AnalyticError, AnalyticResult};
use super::{analytic_forward, AnalyticDenoiser};
use crate::denoiser::Denoiser;
use crate::error::Result;
use crate::prediction::Prediction;
use crate::schedule::DiffusionSchedule;
use candle_core::{DType, Device, Tensor, D};

/// Default number of training points per chunk.
pub const DEFAULT_CHUNK: usize = 4096;

#[derive(Debug, Clone)]
struct Chunk {
    /// `[n, D]` points.
    points: Tensor,
    /// `[D, n]` transposed copy for x·x₀ᵀ.
    points_t: Tensor,
    /// `[1, n]` squared norms ‖x₀⁽ⁱ⁾‖².
    sq_norms: Tensor,
}

/// E[x₀ | x_t] when x₀ is uniform over a finite data set.
#[derive(Debug, Clone)]
pub struct EmpiricalDenoiser {
    data: Tensor,
    chunks: Vec<Chunk>,
    chunk_size: usize,
    dim: usize,
    alpha_bar: Vec<f64>,
    device: Device,
}

impl EmpiricalDenoiser {
    /// Build from `data` `[N, D…]` (N ≥ 1, finite values), computing on CPU.
    pub fn new(data: &Tensor, schedule: &DiffusionSchedule) -> AnalyticResult<Self> {
        if data.rank() < 2 {
            return Err(AnalyticError::Dimension(format!("data must be [N, D…], got {:?}", data.dims())));
        }
        let n = data.dim(0)?;
        let dim: usize = data.dims()[1..].iter().product();
        if n == 0 || dim == 0 {
            return Err(AnalyticError::invalid("data", "need at least one point of dimension >= 1"));
        }
        let data = data.reshape((n, dim))?.to_dtype(DType::F64)?.to_device(&Device::Cpu)?;
        let finite = data.abs()?.max_all()?.to_scalar::<f64>()?.is_finite();
        if !finite {
            return Err(AnalyticError::invalid("data", "contains a non-finite value"));
        }
        let mut me = Self {
            data,
            chunks: vec![],
            chunk_size: DEFAULT_CHUNK,
            dim,
            alpha_bar: schedule.alpha_bar.clone(),
            device: Device::Cpu,
        };
        me.rebuild_chunks()?;
        Ok(me)
    }

    /// Build from rows of equal length.
    pub fn from_samples(samples: &[Vec<f64>], schedule: &DiffusionSchedule) -> AnalyticResult<Self> {
        let d = samples.first().map_or(0, |r| r.len());
        if samples.iter().any(|r| r.len() != d) {
            return Err(AnalyticError::Dimension("samples have different lengths".into()));
        }
        let flat: Vec<f64> = samples.iter().flatten().copied().collect();
        Self::new(&Tensor::from_vec(flat, (samples.len(), d), &Device::Cpu)?, schedule)
    }

    /// Process the data set in chunks of `chunk_size` points (bounds the `[B, chunk]` logits).
    pub fn with_chunk_size(mut self, chunk_size: usize) -> AnalyticResult<Self> {
        if chunk_size == 0 {
            return Err(AnalyticError::invalid("chunk_size", "must be >= 1"));
        }
        self.chunk_size = chunk_size;
        self.rebuild_chunks()?;
        Ok(self)
    }

    /// Keep the data on `device` and compute there (f64).
    pub fn with_device(mut self, device: &Device) -> AnalyticResult<Self> {
        self.data = self.data.to_device(device)?;
        self.device = device.clone();
        self.rebuild_chunks()?;
        Ok(self)
    }

    /// Number of training points N.
    pub fn len(&self) -> usize {
        self.data.dim(0).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The training points `[N, D]` (f64).
    pub fn data(&self) -> &Tensor {
        &self.data
    }

    fn rebuild_chunks(&mut self) -> AnalyticResult<()> {
        let n = self.len();
        self.chunks.clear();
        let mut start = 0;
        while start < n {
            let len = self.chunk_size.min(n - start);
            let points = self.data.narrow(0, start, len)?.contiguous()?;
            let points_t = points.t()?.contiguous()?;
            let sq_norms = points.sqr()?.sum_keepdim(1)?.t()?.contiguous()?;
            self.chunks.push(Chunk { points, points_t, sq_norms });
            start += len;
        }
        Ok(())
    }

    /// Softmax weights W_t(x₀⁽ⁱ⁾ | x) `[B, N]` for `x` `[B, D…]` at timestep `idx` (f64).
    /// Materialises all N columns: meant for inspection on small data sets.
    pub fn weights(&self, x_t: &Tensor, idx: usize) -> Result<Tensor> {
        super::check_index(idx, self.alpha_bar.len())?;
        let x = super::flatten_input(x_t, self.dim, &self.device)?;
        let ab = self.alpha_bar[idx];
        let logits: Vec<Tensor> =
            self.chunks.iter().map(|c| self.logits(&x, c, ab)).collect::<Result<Vec<_>>>()?;
        let logits = Tensor::cat(&logits, 1)?;
        let max = logits.max_keepdim(1)?;
        let e = logits.broadcast_sub(&max)?.exp()?;
        Ok(e.broadcast_div(&e.sum_keepdim(1)?)?)
    }

    fn logits(&self, x: &Tensor, chunk: &Chunk, ab: f64) -> Result<Tensor> {
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let dot = x.matmul(&chunk.points_t)?;
        Ok(dot.affine(a / s2, 0.0)?.broadcast_sub(&chunk.sq_norms.affine(a * a / (2.0 * s2), 0.0)?)?)
    }
}

impl AnalyticDenoiser for EmpiricalDenoiser {
    fn dim(&self) -> usize {
        self.dim
    }
    fn alpha_bar(&self) -> &[f64] {
        &self.alpha_bar
    }
    fn compute_device(&self) -> &Device {
        &self.device
    }
    fn posterior_mean_at(&self, x: &Tensor, ab: f64) -> Result<Tensor> {
        // Running max m, normaliser Σ e^{l−m} and numerator Σ e^{l−m} x₀ over chunks.
        let mut state: Option<(Tensor, Tensor, Tensor)> = None;
        for chunk in &self.chunks {
            let logits = self.logits(x, chunk, ab)?;
            let chunk_max = logits.max_keepdim(D::Minus1)?;
            state = Some(match state {
                None => {
                    let e = logits.broadcast_sub(&chunk_max)?.exp()?;
                    (chunk_max, e.sum_keepdim(1)?, e.matmul(&chunk.points)?)
                }
                Some((m, total, acc)) => {
                    let m_new = m.maximum(&chunk_max)?;
                    let rescale = m.sub(&m_new)?.exp()?;
                    let e = logits.broadcast_sub(&m_new)?.exp()?;
                    let total = total.mul(&rescale)?.add(&e.sum_keepdim(1)?)?;
                    let acc = acc.broadcast_mul(&rescale)?.add(&e.matmul(&chunk.points)?)?;
                    (m_new, total, acc)
                }
            });
        }
        let (_, total, acc) = state.expect("data set is non-empty by construction");
        Ok(acc.broadcast_div(&total)?)
    }
}

impl Denoiser for EmpiricalDenoiser {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        analytic_forward(self, x_t, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;
    use crate::schedule::BetaSchedule;

    fn sched() -> DiffusionSchedule {
        DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap()
    }

    /// Direct per-point f64 evaluation of Σ_i softmax(−‖x − a x₀ⁱ‖²/2s²) x₀ⁱ.
    fn brute(data: &[Vec<f32>], x: &[f32], ab: f64) -> Vec<f64> {
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let l: Vec<f64> = data
            .iter()
            .map(|p| {
                -p.iter().zip(x).map(|(pi, xi)| (*xi as f64 - a * *pi as f64).powi(2)).sum::<f64>()
                    / (2.0 * s2)
            })
            .collect();
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
        let z: f64 = w.iter().sum();
        (0..x.len()).map(|j| data.iter().zip(&w).map(|(p, wi)| wi * p[j] as f64).sum::<f64>() / z).collect()
    }

    #[test]
    fn chunked_matmul_matches_brute_force_on_images() {
        let s = sched();
        let (n, d) = (1000usize, 64usize);
        let data = NoiseSource::new(1, 0, n).randn(&[1, 8, 8], &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = data.reshape((n, d)).unwrap().to_vec2().unwrap();
        let den = EmpiricalDenoiser::new(&data, &s).unwrap().with_chunk_size(300).unwrap();
        assert_eq!(den.len(), n);
        let x = NoiseSource::new(2, 0, 3).randn(&[1, 8, 8], &Device::Cpu).unwrap();
        let xr: Vec<Vec<f32>> = x.reshape((3, d)).unwrap().to_vec2().unwrap();
        for idx in [5usize, 100, 400, 999] {
            let t = Tensor::new(&[idx as f32; 3], &Device::Cpu).unwrap();
            let got = den.forward(&x, &t).unwrap();
            assert_eq!(got.dims(), &[3, 1, 8, 8]);
            let got: Vec<Vec<f32>> = got.reshape((3, d)).unwrap().to_vec2().unwrap();
            for b in 0..3 {
                let want = brute(&rows, &xr[b], s.alpha_bar[idx]);
                for j in 0..d {
                    assert!((got[b][j] as f64 - want[j]).abs() < 1e-5, "idx {idx}");
                }
            }
        }
    }

    #[test]
    fn snaps_to_nearest_point_at_low_noise_and_averages_at_high() {
        let s = sched();
        let pts = vec![vec![0.0, 0.0], vec![1.0, 0.0], vec![0.0, 2.0]];
        let den = EmpiricalDenoiser::from_samples(&pts, &s).unwrap();
        let x = Tensor::new(&[[0.9f32, 0.1]], &Device::Cpu).unwrap();
        let y: Vec<f32> = den.posterior_mean(&x, 0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!((y[0] - 1.0).abs() < 1e-6 && y[1].abs() < 1e-6);
        let w: Vec<Vec<f64>> = den.weights(&x, 999).unwrap().to_vec2().unwrap();
        assert!(w[0].iter().all(|v| (v - 1.0 / 3.0).abs() < 0.01), "{w:?}");
        // Exact score at a low-noise point: (a·x̂₀ − x)/s².
        let ab = s.alpha_bar[3];
        let sc: Vec<f32> = den.score(&x, 3).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!(((sc[0] as f64) - (ab.sqrt() - 0.9) / (1.0 - ab)).abs() < 1e-2 * sc[0].abs() as f64);
    }

    #[test]
    fn bad_data_is_rejected() {
        let s = sched();
        assert!(EmpiricalDenoiser::from_samples(&[vec![0.0, 1.0], vec![2.0]], &s).is_err());
        assert!(EmpiricalDenoiser::from_samples(&[], &s).is_err());
        assert!(EmpiricalDenoiser::from_samples(&[vec![f64::INFINITY]], &s).is_err());
        let den = EmpiricalDenoiser::from_samples(&[vec![0.0]], &s).unwrap();
        assert!(den.with_chunk_size(0).is_err());
    }
}
