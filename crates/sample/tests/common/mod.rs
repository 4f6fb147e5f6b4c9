//! Helpers shared by the sampler integration tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use rediffuse_core::{BetaSchedule, DiffusionSchedule, NoiseSource};

pub fn linear(t: usize) -> DiffusionSchedule {
    DiffusionSchedule::new(BetaSchedule::linear(), t).unwrap()
}

/// x_T ~ N(0, I) of shape `[n, shape…]` and the noise source that continues its streams.
pub fn init(seed: u64, n: usize, shape: &[usize]) -> (Tensor, NoiseSource) {
    let mut noise = NoiseSource::new(seed, 0, n);
    let x = noise.randn(shape, &Device::Cpu).unwrap();
    (x, noise)
}

/// Sample mean and (biased) covariance of `[n, 2]` rows.
pub fn moments_2d(x: &Tensor) -> ([f64; 2], [[f64; 2]; 2]) {
    let rows: Vec<Vec<f32>> = x.to_vec2().unwrap();
    let n = rows.len() as f64;
    let mut m = [0.0; 2];
    for r in &rows {
        m[0] += r[0] as f64 / n;
        m[1] += r[1] as f64 / n;
    }
    let mut c = [[0.0; 2]; 2];
    for r in &rows {
        let d = [r[0] as f64 - m[0], r[1] as f64 - m[1]];
        for i in 0..2 {
            for j in 0..2 {
                c[i][j] += d[i] * d[j] / n;
            }
        }
    }
    (m, c)
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

pub type M2 = [[f64; 2]; 2];

fn mul(a: &M2, b: &M2) -> M2 {
    let mut c = [[0.0; 2]; 2];
    for i in 0..2 {
        for j in 0..2 {
            c[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j];
        }
    }
    c
}

fn transpose(a: &M2) -> M2 {
    [[a[0][0], a[1][0]], [a[0][1], a[1][1]]]
}

fn mat_vec(a: &M2, v: [f64; 2]) -> [f64; 2] {
    [a[0][0] * v[0] + a[0][1] * v[1], a[1][0] * v[0] + a[1][1] * v[1]]
}

/// One sampler step written as x' = α·x̂₀(x) + β·x + σ·z for exact Gaussian x̂₀.
pub struct AffineStep {
    pub t: usize,
    pub alpha: f64,
    pub beta: f64,
    pub sigma: f64,
}

/// Exact law N(m, C) of the sampler output when x_T ~ N(0, I) and
/// x̂₀(x) = μ + G(x − aμ), G = aΣ(a²Σ + s²I)⁻¹ (explicit 2 × 2 inverse): every
/// step is affine in x plus Gaussian noise, so mean and covariance propagate exactly.
pub fn exact_law(sched: &DiffusionSchedule, mu: [f64; 2], sigma: M2, steps: &[AffineStep]) -> ([f64; 2], M2) {
    let mut m = [0.0, 0.0];
    let mut c: M2 = [[1.0, 0.0], [0.0, 1.0]];
    for st in steps {
        let ab = sched.alpha_bar[st.t];
        let (a, s2) = (ab.sqrt(), 1.0 - ab);
        let k = [
            [a * a * sigma[0][0] + s2, a * a * sigma[0][1]],
            [a * a * sigma[1][0], a * a * sigma[1][1] + s2],
        ];
        let det = k[0][0] * k[1][1] - k[0][1] * k[1][0];
        let inv = [[k[1][1] / det, -k[0][1] / det], [-k[1][0] / det, k[0][0] / det]];
        let sig_inv = mul(&sigma, &inv);
        let g = [[a * sig_inv[0][0], a * sig_inv[0][1]], [a * sig_inv[1][0], a * sig_inv[1][1]]];
        // x' = α(μ − aGμ) + (αG + βI)x + σz
        let gmu = mat_vec(&g, mu);
        let b = [st.alpha * (mu[0] - a * gmu[0]), st.alpha * (mu[1] - a * gmu[1])];
        let mut am = [[st.alpha * g[0][0], st.alpha * g[0][1]], [st.alpha * g[1][0], st.alpha * g[1][1]]];
        am[0][0] += st.beta;
        am[1][1] += st.beta;
        let am_m = mat_vec(&am, m);
        m = [am_m[0] + b[0], am_m[1] + b[1]];
        c = mul(&mul(&am, &c), &transpose(&am));
        c[0][0] += st.sigma * st.sigma;
        c[1][1] += st.sigma * st.sigma;
    }
    (m, c)
}
