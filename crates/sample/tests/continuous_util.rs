//! Shared helpers of the continuous-sampler tests (2-D Gaussian data with exact denoisers).
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use rediffuse_core::NoiseSource;
use rediffuse_sample::continuous::GaussianData;

/// μ = (1, −0.5), Σ = [[1, 0.6], [0.6, 0.8]].
pub fn gaussian() -> GaussianData {
    GaussianData::new(vec![1.0, -0.5], vec![1.0, 0.6, 0.6, 0.8]).unwrap()
}

pub fn rows(x: &Tensor) -> Vec<Vec<f64>> {
    x.to_dtype(DType::F64).unwrap().flatten_from(1).unwrap().to_vec2().unwrap()
}

/// N(0, σ²I) start points, `[n, 2]`, in `dtype`.
pub fn start(n: usize, sigma: f64, seed: u64, dtype: DType) -> (Tensor, NoiseSource) {
    let mut noise = NoiseSource::new(seed, 0, n);
    let x = noise.randn(&[2], &Device::Cpu).unwrap().affine(sigma, 0.0).unwrap().to_dtype(dtype).unwrap();
    (x, noise)
}

/// Sample mean and covariance of rows.
pub fn moments(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let r = rows(x);
    let n = r.len() as f64;
    let d = r[0].len();
    let mut m = vec![0.0; d];
    for row in &r {
        for k in 0..d {
            m[k] += row[k] / n;
        }
    }
    let mut c = vec![0.0; d * d];
    for row in &r {
        for i in 0..d {
            for j in 0..d {
                c[i * d + j] += (row[i] - m[i]) * (row[j] - m[j]) / (n - 1.0);
            }
        }
    }
    (m, c)
}

/// Assert the sample moments match N(μ, Σ): each mean within 4 Monte-Carlo standard errors plus
/// `bias` (absolute), each covariance entry within 4 SE plus `bias·max Σ_ii`. Returns the worst
/// error in standard errors (printed for the report).
pub fn check_moments(label: &str, x: &Tensor, data: &GaussianData, bias: f64) -> f64 {
    let (m, c) = moments(x);
    let n = x.dim(0).unwrap() as f64;
    let (mu, s) = (data.mean(), data.cov());
    let d = mu.len();
    let smax = (0..d).map(|i| s[i * d + i]).fold(0.0, f64::max);
    let mut worst: f64 = 0.0;
    for k in 0..d {
        let se = (s[k * d + k] / n).sqrt();
        let err = (m[k] - mu[k]).abs();
        worst = worst.max(err / se);
        assert!(err <= 4.0 * se + bias, "{label}: mean[{k}] = {} vs {} (se {se})", m[k], mu[k]);
    }
    for i in 0..d {
        for j in 0..d {
            let se = ((s[i * d + i] * s[j * d + j] + s[i * d + j].powi(2)) / n).sqrt();
            let err = (c[i * d + j] - s[i * d + j]).abs();
            worst = worst.max(err / se);
            assert!(
                err <= 4.0 * se + bias * smax,
                "{label}: cov[{i}{j}] = {} vs {} (se {se})",
                c[i * d + j],
                s[i * d + j]
            );
        }
    }
    println!("{label}: mean {m:.4?} cov {c:.4?} worst {worst:.2} SE");
    worst
}
