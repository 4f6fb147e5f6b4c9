//! Two-dimensional toy distributions, generated from a seed.
//!
//! Each set is first drawn in its "raw" coordinates (the usual definitions:
//! scikit-learn `make_moons` / `make_circles`, the FFJORD toy sets of
//! Grathwohl et al. 2019 for the swiss roll and checkerboard, eight Gaussians
//! on a circle), then mapped by the fixed affine normalisation
//!
//! `x = (raw - E[raw]) / s`,  `s = sqrt(E|raw - E[raw]|^2 / 2)`,
//!
//! whose constants are computed in closed form (not from the sample). The
//! normalised data therefore have mean zero and average per-axis variance one
//! (`E|x|^2 = 2`), which suits the standard diffusion schedules (data of unit
//! scale), while a single scale factor keeps each set's geometry undistorted.
//!
//! Points are drawn one after another from a `ChaCha8Rng` seeded with `seed`, so
//! `sample(m, seed)` is a prefix of `sample(n, seed)` for `m <= n`.

use crate::error::{DataError, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Gaussian noise of the two moons, raw units (radius-1 half circles).
pub const MOONS_NOISE: f64 = 0.05;
/// Swiss-roll parameter range `t ∈ [1.5π, 4.5π]` (scikit-learn `make_swiss_roll`).
pub const SWISS_ROLL_T: (f64, f64) = (1.5 * PI, 4.5 * PI);
/// Gaussian noise of the swiss roll, raw units (`make_swiss_roll(noise=1.0)` as in FFJORD).
pub const SWISS_ROLL_NOISE: f64 = 1.0;
/// Per-axis std of each of the eight Gaussians relative to the circle radius:
/// radius 2 with std `0.02·√2`, as in common flow/GAN toy benchmarks.
pub const EIGHT_GAUSSIANS_STD_RATIO: f64 = 0.02 * std::f64::consts::SQRT_2 / 2.0;
/// Radius of the inner circle of `Circles` relative to the outer one (FFJORD: `factor=0.5`).
pub const CIRCLES_FACTOR: f64 = 0.5;
/// Gaussian noise of `Circles`, raw units (outer radius 1; FFJORD: `noise=0.08`).
pub const CIRCLES_NOISE: f64 = 0.08;

/// A 2-D toy distribution. All are normalised to mean 0 and `E|x|^2 = 2` (see module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Toy2d {
    /// Two interleaving half circles (scikit-learn `make_moons`, noise [`MOONS_NOISE`]):
    /// outer `(cos t, sin t)`, inner `(1 - cos t, 1/2 - sin t)`, `t ~ U[0, π]`.
    /// Normalised: `s ≈ 0.7068`, so the half circles have radius ≈ 1.41; x-std ≈ 1.23, y-std ≈ 0.70.
    Moons,
    /// 2-D swiss roll (FFJORD): `(t cos t, t sin t) + N(0, 1)`, `t ~ U[1.5π, 4.5π]`.
    /// Normalised: `s ≈ 6.862`, so the spiral (without noise) spans about `[-1.67, 1.55] × [-1.64, 2.03]`,
    /// noise std ≈ 0.146.
    #[serde(alias = "swissroll")]
    SwissRoll,
    /// Eight Gaussians centred at angles `kπ/4` on a circle; per-axis std
    /// [`EIGHT_GAUSSIANS_STD_RATIO`] × radius. Normalised: radius ≈ 1.414, std ≈ 0.020.
    #[serde(rename = "8gaussians", alias = "eight-gaussians")]
    EightGaussians,
    /// Uniform on the 8 "black" unit squares of a 4×4 checkerboard on `[-2, 2]²` (FFJORD).
    /// Normalised: `s = 2/√3`, so the board covers `[-√3, √3]²` (squares of side ≈ 0.866).
    Checkerboard,
    /// Two concentric circles (scikit-learn `make_circles`, factor [`CIRCLES_FACTOR`],
    /// noise [`CIRCLES_NOISE`]), each chosen with probability 1/2.
    /// Normalised: `s ≈ 0.5647`, radii ≈ 1.771 and 0.885, noise std ≈ 0.142.
    Circles,
}

impl Toy2d {
    /// All toy sets, in documentation order.
    pub const ALL: [Toy2d; 5] =
        [Toy2d::Moons, Toy2d::SwissRoll, Toy2d::EightGaussians, Toy2d::Checkerboard, Toy2d::Circles];

    /// Canonical name (the serde name).
    pub fn name(&self) -> &'static str {
        match self {
            Toy2d::Moons => "moons",
            Toy2d::SwissRoll => "swiss-roll",
            Toy2d::EightGaussians => "8gaussians",
            Toy2d::Checkerboard => "checkerboard",
            Toy2d::Circles => "circles",
        }
    }

    /// Comma-separated canonical names, for error messages and help text.
    pub fn valid_names() -> String {
        Self::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
    }

    /// Parse a name (case-insensitive). Accepts the canonical names plus the aliases
    /// `swissroll`, `swiss_roll`, `eight-gaussians`, `eightgaussians`, `8-gaussians`.
    pub fn from_name(name: &str) -> Result<Self> {
        let lower = name.trim().to_ascii_lowercase();
        let t = match lower.as_str() {
            "moons" => Toy2d::Moons,
            "swiss-roll" | "swissroll" | "swiss_roll" => Toy2d::SwissRoll,
            "8gaussians" | "8-gaussians" | "eight-gaussians" | "eightgaussians" => Toy2d::EightGaussians,
            "checkerboard" => Toy2d::Checkerboard,
            "circles" => Toy2d::Circles,
            _ => return Err(DataError::UnknownToy { name: name.to_string(), valid: Self::valid_names() }),
        };
        Ok(t)
    }

    /// One point in raw coordinates.
    fn raw_point(&self, rng: &mut ChaCha8Rng) -> [f64; 2] {
        let mut normal = || rng.sample::<f64, _>(StandardNormal);
        let (n0, n1) = (normal(), normal());
        match self {
            Toy2d::Moons => {
                let outer = rng.random::<bool>();
                let t = rng.random::<f64>() * PI;
                let p = if outer { [t.cos(), t.sin()] } else { [1.0 - t.cos(), 0.5 - t.sin()] };
                [p[0] + MOONS_NOISE * n0, p[1] + MOONS_NOISE * n1]
            }
            Toy2d::SwissRoll => {
                let (a, b) = SWISS_ROLL_T;
                let t = a + (b - a) * rng.random::<f64>();
                [t * t.cos() + SWISS_ROLL_NOISE * n0, t * t.sin() + SWISS_ROLL_NOISE * n1]
            }
            Toy2d::EightGaussians => {
                let k = rng.random_range(0..8u32) as f64;
                let angle = k * PI / 4.0;
                let sd = EIGHT_GAUSSIANS_STD_RATIO;
                [angle.cos() + sd * n0, angle.sin() + sd * n1]
            }
            Toy2d::Checkerboard => {
                // Column x ∈ [-2, 2); row offset picks one of the two black squares of that column.
                let x = rng.random::<f64>() * 4.0 - 2.0;
                let lower = rng.random::<bool>();
                let column_parity = (x.floor() as i64).rem_euclid(2) as f64;
                let y = rng.random::<f64>() - if lower { 2.0 } else { 0.0 } + column_parity;
                [x, y]
            }
            Toy2d::Circles => {
                let outer = rng.random::<bool>();
                let r = if outer { 1.0 } else { CIRCLES_FACTOR };
                let phi = rng.random::<f64>() * 2.0 * PI;
                [r * phi.cos() + CIRCLES_NOISE * n0, r * phi.sin() + CIRCLES_NOISE * n1]
            }
        }
    }

    /// Closed-form `(E[raw], E|raw - E[raw]|^2)` of the raw distribution.
    pub fn raw_moments(&self) -> ([f64; 2], f64) {
        match self {
            Toy2d::Moons => {
                // E[x^2] = (1/2 + 3/2)/2 = 1, E[y^2] = (1/2 + 3/4 - 2/π)/2, plus noise.
                let mean = [0.5, 0.25];
                let second = 1.0 + (1.25 - 2.0 / PI) / 2.0 + 2.0 * MOONS_NOISE * MOONS_NOISE;
                (mean, second - (mean[0] * mean[0] + mean[1] * mean[1]))
            }
            Toy2d::SwissRoll => {
                let (a, b) = SWISS_ROLL_T;
                let len = b - a;
                // Antiderivatives of t cos t, t sin t, t^2 and t^2 cos 2t.
                let f_tcos = |t: f64| t * t.sin() + t.cos();
                let f_tsin = |t: f64| t.sin() - t * t.cos();
                let f_t2 = |t: f64| t * t * t / 3.0;
                let mean = [(f_tcos(b) - f_tcos(a)) / len, (f_tsin(b) - f_tsin(a)) / len];
                // E|raw|^2 = E[t^2] + 2 noise^2 (cos^2 + sin^2 = 1).
                let second = (f_t2(b) - f_t2(a)) / len + 2.0 * SWISS_ROLL_NOISE * SWISS_ROLL_NOISE;
                (mean, second - (mean[0] * mean[0] + mean[1] * mean[1]))
            }
            Toy2d::EightGaussians => {
                let sd = EIGHT_GAUSSIANS_STD_RATIO;
                ([0.0, 0.0], 1.0 + 2.0 * sd * sd)
            }
            // Each coordinate is marginally U[-2, 2): variance 16/12.
            Toy2d::Checkerboard => ([0.0, 0.0], 2.0 * 16.0 / 12.0),
            Toy2d::Circles => {
                let r2 = (1.0 + CIRCLES_FACTOR * CIRCLES_FACTOR) / 2.0;
                ([0.0, 0.0], r2 + 2.0 * CIRCLES_NOISE * CIRCLES_NOISE)
            }
        }
    }

    /// The normalisation `(E[raw], s)`: a data point is `(raw - E[raw]) / s`.
    pub fn normalisation(&self) -> ([f64; 2], f64) {
        let (mean, centred_second) = self.raw_moments();
        (mean, (centred_second / 2.0).sqrt())
    }

    /// `n` i.i.d. normalised points from a ChaCha8 stream seeded with `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<[f64; 2]> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mean, s) = self.normalisation();
        (0..n)
            .map(|_| {
                let p = self.raw_point(&mut rng);
                [(p[0] - mean[0]) / s, (p[1] - mean[1]) / s]
            })
            .collect()
    }

    /// `n` normalised points as an `[n, 2]` f32 tensor.
    pub fn sample_tensor(&self, n: usize, seed: u64, device: &Device) -> Result<Tensor> {
        let flat: Vec<f32> = self.sample(n, seed).iter().flat_map(|p| [p[0] as f32, p[1] as f32]).collect();
        Ok(Tensor::from_vec(flat, (n, 2), device)?)
    }
}

impl std::fmt::Display for Toy2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Toy2d {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Toy2d::from_name(s)
    }
}
