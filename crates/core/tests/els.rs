//! The ELS machine against a direct evaluation of its definition (seed 002, Analytic Theory),
//! the empirical denoiser it becomes when the patch covers the image, and the stationarity
//! theorem (at vanishing noise every pixel takes the centre of its nearest training patch).

use candle_core::{Device, Tensor};
use rediffuse_core::analytic::{AnalyticDenoiser, ElsDenoiser, EmpiricalDenoiser, PatchKnot, PatchSchedule};
use rediffuse_core::noise::NoiseSource;
use rediffuse_core::schedule::{BetaSchedule, DiffusionSchedule};
use rediffuse_core::Denoiser;

fn sched() -> DiffusionSchedule {
    DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap()
}

fn randn(seed: u64, n: usize, shape: &[usize]) -> Tensor {
    NoiseSource::new(seed, 0, n).randn(shape, &Device::Cpu).unwrap()
}

/// The window of radius r at (y, x), zero outside, as (value, inside) per offset.
fn window(img: &[f64], (c, h, w): (usize, usize, usize), y: usize, x: usize, r: usize) -> Vec<f64> {
    let mut v = Vec::new();
    for ch in 0..c {
        for dy in -(r as isize)..=r as isize {
            for dx in -(r as isize)..=r as isize {
                let (yy, xx) = (y as isize + dy, x as isize + dx);
                let inside = yy >= 0 && yy < h as isize && xx >= 0 && xx < w as isize;
                v.push(if inside { img[ch * h * w + yy as usize * w + xx as usize] } else { 0.0 });
            }
        }
    }
    v
}

/// Same padding pattern: per axis, both windows inside or the same coordinate.
fn same_kind(a: (usize, usize), b: (usize, usize), (h, w): (usize, usize), r: usize) -> bool {
    let axis = |i: usize, j: usize, len: usize| {
        let inside = |k: usize| k >= r && k + r < len;
        (inside(i) && inside(j)) || i == j
    };
    axis(a.0, b.0, h) && axis(a.1, b.1, w)
}

/// Direct ELS: per pixel, softmax of −‖x_Ω − √ᾱ P₀‖²/(2(1 − ᾱ)) over the training patches of
/// the same kind, averaging their centre pixels.
fn brute_els(data: &[Vec<f64>], x: &[f64], shape: (usize, usize, usize), patch: usize, ab: f64) -> Vec<f64> {
    let (c, h, w) = shape;
    let r = patch / 2;
    let (a, s2) = (ab.sqrt(), 1.0 - ab);
    let mut out = vec![0.0; c * h * w];
    for y in 0..h {
        for xx in 0..w {
            let q = window(x, shape, y, xx, r);
            let mut logits = Vec::new();
            let mut centres = Vec::new();
            for img in data {
                for qy in 0..h {
                    for qx in 0..w {
                        if !same_kind((y, xx), (qy, qx), (h, w), r) {
                            continue;
                        }
                        let k = window(img, shape, qy, qx, r);
                        let d2: f64 = q.iter().zip(&k).map(|(qi, ki)| (qi - a * ki).powi(2)).sum();
                        logits.push(-d2 / (2.0 * s2));
                        centres.push((0..c).map(|ch| img[ch * h * w + qy * w + qx]).collect::<Vec<_>>());
                    }
                }
            }
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let wts: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
            let z: f64 = wts.iter().sum();
            for ch in 0..c {
                out[ch * h * w + y * w + xx] =
                    wts.iter().zip(&centres).map(|(wi, cv)| wi * cv[ch]).sum::<f64>() / z;
            }
        }
    }
    out
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let n = t.dim(0).unwrap();
    t.reshape((n, ())).unwrap().to_dtype(candle_core::DType::F64).unwrap().to_vec2().unwrap()
}

#[test]
fn matches_direct_evaluation_with_boundaries() {
    let s = sched();
    let shape = (2, 4, 5);
    let data = randn(1, 3, &[2, 4, 5]);
    let x = randn(2, 2, &[2, 4, 5]);
    let dr = rows(&data);
    for patch in [1usize, 3, 5, 9] {
        // Small chunks and blocks exercise the online log-sum-exp and the query blocking.
        let els = ElsDenoiser::new(&data, &s, PatchSchedule::constant(patch).unwrap())
            .unwrap()
            .with_chunks(7, 5)
            .unwrap();
        for idx in [3usize, 100, 500, 999] {
            let ab = s.alpha_bar[idx];
            // f64 input: at small t the logits amplify f32 rounding of x_t by √ᾱ/(1 − ᾱ).
            let xt = x.to_dtype(candle_core::DType::F64).unwrap().affine(ab.sqrt(), 0.0).unwrap();
            let t = Tensor::new(&[idx as f32; 2], &Device::Cpu).unwrap();
            let got = rows(&els.forward(&xt, &t).unwrap());
            for b in 0..2 {
                let xb = rows(&xt)[b].clone();
                let want = brute_els(&dr, &xb, shape, patch, ab);
                for (g, w) in got[b].iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "P {patch} t {idx}: {g} vs {w}");
                }
            }
        }
    }
}

#[test]
fn whole_image_patch_is_the_empirical_denoiser() {
    let s = sched();
    let data = randn(3, 20, &[1, 6, 6]);
    let x = randn(4, 3, &[1, 6, 6]);
    let emp = EmpiricalDenoiser::new(&data, &s).unwrap();
    for patch in [11usize, 13, 21] {
        let els = ElsDenoiser::new(&data, &s, PatchSchedule::constant(patch).unwrap()).unwrap();
        for ab in [0.999, 0.7, 0.2, 0.01] {
            let flat = x.reshape((3, 36)).unwrap().to_dtype(candle_core::DType::F64).unwrap();
            let a = rows(&els.posterior_mean_at(&flat, ab).unwrap());
            let b = rows(&emp.posterior_mean_at(&flat, ab).unwrap());
            for (ra, rb) in a.iter().zip(&b) {
                for (va, vb) in ra.iter().zip(rb) {
                    assert!((va - vb).abs() < 1e-9, "P {patch} ab {ab}: {va} vs {vb}");
                }
            }
        }
    }
}

/// Seed 002's theorem: at vanishing noise each pixel takes the centre P(0) of its nearest
/// training patch P = argmin ‖P′ − x_Ω‖ (over patches of its kind), and a training image is a
/// fixed point.
#[test]
fn low_noise_snaps_to_nearest_patch_centre() {
    let s = sched();
    let shape = (1, 5, 5);
    let data = randn(5, 4, &[1, 5, 5]);
    let dr = rows(&data);
    let els = ElsDenoiser::new(&data, &s, PatchSchedule::constant(3).unwrap()).unwrap();
    let ab: f64 = 1.0 - 1e-7;
    let x = randn(6, 2, &[1, 5, 5]);
    let xr = rows(&x);
    let flat = x.reshape((2, 25)).unwrap().to_dtype(candle_core::DType::F64).unwrap();
    let got = rows(&els.posterior_mean_at(&flat.affine(ab.sqrt(), 0.0).unwrap(), ab).unwrap());
    for b in 0..2 {
        for y in 0..5 {
            for xx in 0..5 {
                let q = window(&xr[b], shape, y, xx, 1);
                let mut best = (f64::INFINITY, 0.0);
                for img in &dr {
                    for qy in 0..5 {
                        for qx in 0..5 {
                            if same_kind((y, xx), (qy, qx), (5, 5), 1) {
                                let k = window(img, shape, qy, qx, 1);
                                let d: f64 = q.iter().zip(&k).map(|(a, b)| (a - b).powi(2)).sum();
                                if d < best.0 {
                                    best = (d, img[qy * 5 + qx]);
                                }
                            }
                        }
                    }
                }
                assert!((got[b][y * 5 + xx] - best.1).abs() < 1e-6, "pixel ({y}, {xx})");
            }
        }
    }
    // A training image is reproduced.
    let img0 =
        data.narrow(0, 0, 1).unwrap().reshape((1, 25)).unwrap().to_dtype(candle_core::DType::F64).unwrap();
    let back = rows(&els.posterior_mean_at(&img0.affine(ab.sqrt(), 0.0).unwrap(), ab).unwrap());
    for (g, w) in back[0].iter().zip(&dr[0]) {
        assert!((g - w).abs() < 1e-6);
    }
}

/// The seed's example: with only an all-black and an all-white image and 1×1 patches, any
/// black-and-white image is a fixed point (exponentially many new images), while the empirical
/// denoiser only knows the two training images.
#[test]
fn black_and_white_mosaics_are_fixed_points() {
    let s = sched();
    let data = Tensor::cat(
        &[
            Tensor::full(-1f32, (1, 1, 4, 4), &Device::Cpu).unwrap(),
            Tensor::full(1f32, (1, 1, 4, 4), &Device::Cpu).unwrap(),
        ],
        0,
    )
    .unwrap();
    let pattern: Vec<f64> = (0..16).map(|i| if (i * 7 + 3) % 5 < 2 { 1.0 } else { -1.0 }).collect();
    let ab: f64 = 0.999;
    let x =
        Tensor::from_vec(pattern.iter().map(|v| v * ab.sqrt()).collect::<Vec<_>>(), (1, 16), &Device::Cpu)
            .unwrap();
    let els = ElsDenoiser::new(&data, &s, PatchSchedule::constant(1).unwrap()).unwrap();
    let got = rows(&els.posterior_mean_at(&x, ab).unwrap());
    for (g, p) in got[0].iter().zip(&pattern) {
        assert!((g - p).abs() < 1e-6, "{g} vs {p}");
    }
    let emp = EmpiricalDenoiser::new(&data, &s).unwrap();
    let e = rows(&emp.posterior_mean_at(&x, ab).unwrap());
    let all_same = e[0].iter().all(|v| (v - e[0][0]).abs() < 1e-6);
    assert!(all_same && (e[0][0].abs() - 1.0).abs() < 1e-6, "{:?}", e[0]);
}

#[test]
fn patch_schedule_switches_with_the_noise_level() {
    let s = sched();
    let data = randn(7, 5, &[1, 6, 6]);
    let x = randn(8, 2, &[1, 6, 6]).reshape((2, 36)).unwrap().to_dtype(candle_core::DType::F64).unwrap();
    let knots = vec![PatchKnot { sigma: 0.1, patch: 3 }, PatchKnot { sigma: 10.0, patch: 7 }];
    let mixed = ElsDenoiser::new(&data, &s, PatchSchedule::new(knots).unwrap()).unwrap();
    for (ab, patch) in [(0.99, 3usize), (0.01, 7)] {
        let fixed = ElsDenoiser::new(&data, &s, PatchSchedule::constant(patch).unwrap()).unwrap();
        let a = rows(&mixed.posterior_mean_at(&x, ab).unwrap());
        let b = rows(&fixed.posterior_mean_at(&x, ab).unwrap());
        assert_eq!(a, b, "ab {ab}");
    }
}

#[test]
fn bad_inputs_are_errors() {
    let s = sched();
    let p3 = || PatchSchedule::constant(3).unwrap();
    assert!(ElsDenoiser::new(&randn(1, 4, &[16]), &s, p3()).is_err());
    let mut v = vec![0f32; 2 * 16];
    v[5] = f32::NAN;
    let nan = Tensor::from_vec(v, (2, 1, 4, 4), &Device::Cpu).unwrap();
    assert!(ElsDenoiser::new(&nan, &s, p3()).is_err());
    let els = ElsDenoiser::new(&randn(1, 2, &[1, 4, 4]), &s, p3()).unwrap();
    let t = Tensor::new(&[10f32], &Device::Cpu).unwrap();
    assert!(els.forward(&randn(2, 1, &[1, 4, 5]), &t).is_err());
    assert!(els
        .posterior_mean_at(&Tensor::zeros((1, 16), candle_core::DType::F64, &Device::Cpu).unwrap(), 0.0)
        .is_err());
    assert!(els.clone().with_chunks(0, 4).is_err());
    // Too many stored patches for the cap is a clear error, not an allocation failure.
    let big = Tensor::zeros((3000, 3, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = ElsDenoiser::new(&big, &s, PatchSchedule::constant(15).unwrap()).unwrap_err();
    assert!(err.to_string().contains("fewer images"), "{err}");
}
