//! Exact denoiser for Gaussian data x₀ ~ N(μ, Σ).
//!
//! With x_t = a·x₀ + s·ε (a = √ᾱ_t, s = √(1 − ᾱ_t), DDPM Eq. 4) the pair is jointly
//! Gaussian and E[x₀ | x_t] = μ + a Σ (a²Σ + s²I)⁻¹ (x_t − a μ). Writing Σ = U Λ Uᵀ
//! once, the solve at every timestep is diagonal:
//! E[x₀ | x_t] = μ + U diag(a λ_k /(a² λ_k + s²)) Uᵀ (x_t − a μ).

use super::error::{AnalyticError, AnalyticResult};
use super::linalg::symmetric_eigen;
use super::{analytic_forward, tensor_rows, AnalyticDenoiser};
use crate::denoiser::Denoiser;
use crate::error::Result;
use crate::prediction::Prediction;
use crate::schedule::DiffusionSchedule;
use candle_core::{Device, Tensor};

/// E[x₀ | x_t] for x₀ ~ N(μ, Σ) (Σ may be singular).
#[derive(Debug, Clone)]
pub struct GaussianDenoiser {
    mean: Vec<f64>,
    cov: Vec<Vec<f64>>,
    /// Eigenvalues of Σ (ascending, clamped at 0).
    eigenvalues: Vec<f64>,
    /// U `[D, D]` (eigenvectors as columns) and Uᵀ, f64.
    u: Tensor,
    u_t: Tensor,
    /// μ as `[1, D]`, f64.
    mean_row: Tensor,
    alpha_bar: Vec<f64>,
    device: Device,
}

impl GaussianDenoiser {
    /// Build from μ (`D`) and Σ (`D × D`). Σ must be finite, symmetric (to 1e-9
    /// relative) and positive semi-definite (smallest eigenvalue ≥ −1e-9·largest).
    pub fn new(mean: Vec<f64>, cov: Vec<Vec<f64>>, schedule: &DiffusionSchedule) -> AnalyticResult<Self> {
        let d = mean.len();
        if d == 0 {
            return Err(AnalyticError::invalid("mean", "dimension must be >= 1"));
        }
        if mean.iter().any(|v| !v.is_finite()) {
            return Err(AnalyticError::invalid("mean", "contains a non-finite value"));
        }
        if cov.len() != d || cov.iter().any(|r| r.len() != d) {
            return Err(AnalyticError::Dimension(format!("covariance must be {d} × {d} to match the mean")));
        }
        if cov.iter().flatten().any(|v| !v.is_finite()) {
            return Err(AnalyticError::invalid("cov", "contains a non-finite value"));
        }
        let scale = cov.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut sym = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                let (a, b) = (cov[i][j], cov[j][i]);
                if (a - b).abs() > 1e-9 * scale {
                    return Err(AnalyticError::NotSymmetric { i, j, a, b });
                }
                sym[i * d + j] = 0.5 * (a + b);
            }
        }
        let eig = symmetric_eigen(&sym, d)?;
        let largest = eig.values.last().copied().unwrap_or(0.0).max(0.0);
        if eig.values[0] < -1e-9 * largest.max(f64::MIN_POSITIVE) {
            return Err(AnalyticError::NotPositiveSemiDefinite { min_eigenvalue: eig.values[0] });
        }
        let eigenvalues: Vec<f64> = eig.values.iter().map(|v| v.max(0.0)).collect();
        let device = Device::Cpu;
        let u = Tensor::from_vec(eig.vectors, (d, d), &device)?;
        let u_t = u.t()?.contiguous()?;
        let mean_row = Tensor::from_vec(mean.clone(), (1, d), &device)?;
        Ok(Self { mean, cov, eigenvalues, u, u_t, mean_row, alpha_bar: schedule.alpha_bar.clone(), device })
    }

    /// Fit μ and the unbiased sample covariance (divisor N − 1) to `samples` (N ≥ 2 rows of length D).
    pub fn from_samples(samples: &[Vec<f64>], schedule: &DiffusionSchedule) -> AnalyticResult<Self> {
        let (mean, cov) = sample_moments(samples)?;
        Self::new(mean, cov, schedule)
    }

    /// [`GaussianDenoiser::from_samples`] for a `[N, D…]` tensor.
    pub fn from_data(data: &Tensor, schedule: &DiffusionSchedule) -> AnalyticResult<Self> {
        Self::from_samples(&tensor_rows(data)?, schedule)
    }

    /// Run the f64 matrix products on `device` (CPU by default).
    pub fn with_device(mut self, device: &Device) -> AnalyticResult<Self> {
        self.u = self.u.to_device(device)?;
        self.u_t = self.u_t.to_device(device)?;
        self.mean_row = self.mean_row.to_device(device)?;
        self.device = device.clone();
        Ok(self)
    }

    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    pub fn cov(&self) -> &[Vec<f64>] {
        &self.cov
    }

    /// Eigenvalues of Σ, ascending.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }
}

/// Sample mean and unbiased covariance of `samples` (rows), validated.
pub fn sample_moments(samples: &[Vec<f64>]) -> AnalyticResult<(Vec<f64>, Vec<Vec<f64>>)> {
    let n = samples.len();
    if n < 2 {
        return Err(AnalyticError::invalid("samples", format!("need at least 2 samples, got {n}")));
    }
    let d = samples[0].len();
    if samples.iter().any(|r| r.len() != d) {
        return Err(AnalyticError::Dimension("samples have different lengths".into()));
    }
    if samples.iter().flatten().any(|v| !v.is_finite()) {
        return Err(AnalyticError::invalid("samples", "contain a non-finite value"));
    }
    let mut mean = vec![0.0; d];
    for r in samples {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n as f64;
        }
    }
    let mut cov = vec![vec![0.0; d]; d];
    for r in samples {
        for (row, ri) in cov.iter_mut().zip(r.iter().zip(&mean)) {
            let di = ri.0 - ri.1;
            for (c, (rj, mj)) in row.iter_mut().zip(r.iter().zip(&mean)) {
                *c += di * (rj - mj) / (n - 1) as f64;
            }
        }
    }
    Ok((mean, cov))
}

impl AnalyticDenoiser for GaussianDenoiser {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn alpha_bar(&self) -> &[f64] {
        &self.alpha_bar
    }
    fn compute_device(&self) -> &Device {
        &self.device
    }
    fn posterior_mean_at(&self, x: &Tensor, ab: f64) -> Result<Tensor> {
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let gain: Vec<f64> = self.eigenvalues.iter().map(|&l| a * l / (a * a * l + s2)).collect();
        let gain = Tensor::from_vec(gain, (1, self.dim()), &self.device)?;
        let centred = x.broadcast_sub(&self.mean_row.affine(a, 0.0)?)?;
        let coords = centred.matmul(&self.u)?.broadcast_mul(&gain)?;
        Ok(coords.matmul(&self.u_t)?.broadcast_add(&self.mean_row)?)
    }
}

impl Denoiser for GaussianDenoiser {
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
    use crate::schedule::BetaSchedule;

    fn sched() -> DiffusionSchedule {
        DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap()
    }

    /// E[x₀|x_t] by the textbook formula with an explicit 2 × 2 inverse.
    fn closed_form_2d(mu: [f64; 2], c: [[f64; 2]; 2], ab: f64, x: [f64; 2]) -> [f64; 2] {
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let m = [[a * a * c[0][0] + s2, a * a * c[0][1]], [a * a * c[1][0], a * a * c[1][1] + s2]];
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        let inv = [[m[1][1] / det, -m[0][1] / det], [-m[1][0] / det, m[0][0] / det]];
        let r = [x[0] - a * mu[0], x[1] - a * mu[1]];
        let y = [inv[0][0] * r[0] + inv[0][1] * r[1], inv[1][0] * r[0] + inv[1][1] * r[1]];
        [mu[0] + a * (c[0][0] * y[0] + c[0][1] * y[1]), mu[1] + a * (c[1][0] * y[0] + c[1][1] * y[1])]
    }

    #[test]
    fn matches_closed_form_and_score() {
        let s = sched();
        let mu = [1.0, -0.5];
        let c = [[1.0, 0.6], [0.6, 0.5]];
        let g = GaussianDenoiser::new(mu.to_vec(), vec![c[0].to_vec(), c[1].to_vec()], &s).unwrap();
        let xs = [[0.3f32, -1.2], [2.0, 0.7], [-1.5, 0.1]];
        let x = Tensor::new(&xs, &Device::Cpu).unwrap();
        for idx in [0usize, 10, 250, 999] {
            let t = Tensor::new(&[idx as f32; 3], &Device::Cpu).unwrap();
            let y: Vec<Vec<f32>> = g.forward(&x, &t).unwrap().to_vec2().unwrap();
            let sc: Vec<Vec<f32>> = g.score(&x, idx).unwrap().to_vec2().unwrap();
            let ab = s.alpha_bar[idx];
            for (row, xr) in xs.iter().enumerate() {
                let xr = [xr[0] as f64, xr[1] as f64];
                let want = closed_form_2d(mu, c, ab, xr);
                for k in 0..2 {
                    assert!((y[row][k] as f64 - want[k]).abs() < 1e-5, "idx {idx}");
                    let score = (ab.sqrt() * want[k] - xr[k]) / (1.0 - ab);
                    assert!((sc[row][k] as f64 - score).abs() < 1e-4 * score.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn mixed_timesteps_in_one_batch() {
        let s = sched();
        let g = GaussianDenoiser::new(vec![0.5, 0.0], vec![vec![2.0, 0.3], vec![0.3, 1.0]], &s).unwrap();
        let x = Tensor::new(&[[0.3f32, -1.2], [2.0, 0.7]], &Device::Cpu).unwrap();
        let t = Tensor::new(&[700f32, 20.0], &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = g.forward(&x, &t).unwrap().to_vec2().unwrap();
        for (row, idx) in [(0usize, 700usize), (1, 20)] {
            let single: Vec<Vec<f32>> =
                g.posterior_mean(&x.narrow(0, row, 1).unwrap(), idx).unwrap().to_vec2().unwrap();
            assert_eq!(y[row], single[0]);
        }
    }

    #[test]
    fn from_samples_moments_and_singular_cov() {
        let s = sched();
        // Points on the line y = 2x: rank-one covariance; x̂0 must stay on the line.
        let pts: Vec<Vec<f64>> = [-1.0, 0.0, 0.5, 2.0].iter().map(|&v| vec![v, 2.0 * v]).collect();
        let g = GaussianDenoiser::from_samples(&pts, &s).unwrap();
        assert!((g.mean()[0] - 0.375).abs() < 1e-12);
        let var = [-1.375f64, -0.375, 0.125, 1.625].iter().map(|v| v * v).sum::<f64>() / 3.0;
        assert!((g.cov()[0][0] - var).abs() < 1e-12 && (g.cov()[1][1] - 4.0 * var).abs() < 1e-12);
        assert!(g.eigenvalues()[0].abs() < 1e-12);
        let x = Tensor::new(&[[0.7f32, -0.4]], &Device::Cpu).unwrap();
        let y: Vec<f32> = g.posterior_mean(&x, 5).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!((y[1] - 2.0 * y[0]).abs() < 1e-5, "{y:?}");
    }

    #[test]
    fn invalid_covariances() {
        let s = sched();
        let e = GaussianDenoiser::new(vec![0.0, 0.0], vec![vec![1.0, 0.5], vec![0.4, 1.0]], &s);
        assert!(matches!(e, Err(AnalyticError::NotSymmetric { .. })));
        let e = GaussianDenoiser::new(vec![0.0, 0.0], vec![vec![1.0, 2.0], vec![2.0, 1.0]], &s);
        assert!(matches!(e, Err(AnalyticError::NotPositiveSemiDefinite { .. })));
        let e = GaussianDenoiser::new(vec![0.0, 0.0], vec![vec![1.0, 0.0]], &s);
        assert!(matches!(e, Err(AnalyticError::Dimension(_))));
        let e = GaussianDenoiser::new(vec![0.0, f64::NAN], vec![vec![1.0, 0.0], vec![0.0, 1.0]], &s);
        assert!(matches!(e, Err(AnalyticError::Invalid { .. })));
        assert!(GaussianDenoiser::from_samples(&[vec![1.0, 2.0]], &s).is_err());
        let g = GaussianDenoiser::new(vec![0.0], vec![vec![1.0]], &s).unwrap();
        let x = Tensor::new(&[[1f32]], &Device::Cpu).unwrap();
        assert!(g.forward(&x, &Tensor::new(&[1000f32], &Device::Cpu).unwrap()).is_err());
        let wrong = Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap();
        assert!(g.forward(&wrong, &Tensor::new(&[3f32], &Device::Cpu).unwrap()).is_err());
    }
}
