//! Shared helpers for the ops tests: seeded random tensors and relative comparisons.
#![allow(dead_code)]

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor of uniform values in [-1, 1) from a seeded stream.
pub fn rand(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

pub fn var(dims: &[usize], seed: u64) -> Var {
    Var::from_tensor(&rand(dims, seed)).unwrap()
}

/// The same values as `rand(dims)` but stored transposed in the last two dims
/// (a non-contiguous view).
pub fn rand_strided(dims: &[usize], seed: u64) -> Tensor {
    let r = dims.len();
    let mut swapped = dims.to_vec();
    swapped.swap(r - 1, r - 2);
    let t = rand(&swapped, seed).transpose(r - 1, r - 2).unwrap();
    assert!(!t.is_contiguous());
    t
}

/// max|a − b| / max|b|.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let diff = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let (d, s) = (diff.to_scalar::<f32>().unwrap(), scale.to_scalar::<f32>().unwrap());
    d / s.max(1e-12)
}

pub fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    let e = rel_err(a, b);
    assert!(e <= tol, "{what}: relative error {e} > {tol}");
}

/// `Σ y ⊙ r` for a fixed random `r`: its gradient w.r.t. `y` is `r`.
pub fn probe_loss(y: &Tensor, seed: u64) -> Tensor {
    let r = rand(y.dims(), seed);
    (y * r).unwrap().sum_all().unwrap()
}
