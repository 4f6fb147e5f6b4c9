//! Image files shared by the feature-metric CLI tests: the embedded digits, two disjoint
//! halves of them, and Gaussian-noise images of the same shape.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rediffuse_data::images::{ImageSpec, Split};
use rediffuse_data::{write_npy, NpyDtype};
use std::path::Path;

pub const HALF: usize = 898;

/// Write `all.npy` (1797×1×8×8 digits), `a.npy` / `b.npy` (disjoint halves of a seeded
/// permutation, 898 and 899 images) and `noise.npy` (898 images of N(0, 1) clipped to [−1, 1]).
pub fn write_digit_files(dir: &Path) {
    let images = ImageSpec::Digits { size: 8 }.load(None, 0, Split::Train).unwrap().images;
    let n = images.dim(0).unwrap();
    let flat: Vec<f32> = images.flatten_all().unwrap().to_vec1().unwrap();
    write_npy(dir.join("all.npy"), &[n, 1, 8, 8], &flat, NpyDtype::F32).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.random_range(0..=i));
    }
    let gather = |idx: &[usize]| -> Vec<f32> {
        idx.iter().flat_map(|&i| flat[i * 64..(i + 1) * 64].to_vec()).collect()
    };
    write_npy(dir.join("a.npy"), &[HALF, 1, 8, 8], &gather(&perm[..HALF]), NpyDtype::F32).unwrap();
    write_npy(dir.join("b.npy"), &[n - HALF, 1, 8, 8], &gather(&perm[HALF..]), NpyDtype::F32).unwrap();
    // Box–Muller: z = √(−2 ln u₁) cos(2π u₂)
    let noise: Vec<f32> = (0..HALF * 64)
        .map(|_| {
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()).clamp(-1.0, 1.0) as f32
        })
        .collect();
    write_npy(dir.join("noise.npy"), &[HALF, 1, 8, 8], &noise, NpyDtype::F32).unwrap();
}

/// A field of an eval JSON file.
pub fn json_field(path: &Path, key: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v[key].as_f64().unwrap_or_else(|| panic!("no numeric `{key}` in {}: {v}", path.display()))
}
