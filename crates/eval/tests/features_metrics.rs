//! FID, KID, Inception Score, precision/recall, memorisation and statistics files.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rediffuse_eval::features::{
    extract_features, fid, fid_from_moments, inception_score_from_logits, inception_score_from_probs, kid,
    memorization, mmd2_unbiased, precision_recall, FeatureError, FeatureMatrix, FeatureStats, KidConfig,
    RawFeatures,
};

/// `n` samples of `N(mu, L Lᵀ)` (`l` row-major lower-triangular `d×d`).
fn gaussian(rng: &mut ChaCha8Rng, n: usize, mu: &[f64], l: &[f64]) -> FeatureMatrix {
    let d = mu.len();
    let mut data = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z: Vec<f64> = (0..d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        for i in 0..d {
            data.push(mu[i] + (0..=i).map(|j| l[i * d + j] * z[j]).sum::<f64>());
        }
    }
    FeatureMatrix::new(n, d, data).unwrap()
}

fn llt(l: &[f64], d: usize) -> Vec<f64> {
    let mut s = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            s[i * d + j] = (0..d).map(|k| l[i * d + k] * l[j * d + k]).sum();
        }
    }
    s
}

/// Mean of `(aᵀb/d + 1)³` over all pairs, or over pairs `i != j` with `skip_diag`.
fn mean_kernel(x: &FeatureMatrix, y: &FeatureMatrix, skip_diag: bool) -> f64 {
    let d = x.cols() as f64;
    let (mut s, mut count) = (0.0, 0usize);
    for i in 0..x.rows() {
        for j in 0..y.rows() {
            if skip_diag && i == j {
                continue;
            }
            let dot: f64 = x.row(i).iter().zip(y.row(j)).map(|(a, b)| a * b).sum();
            s += (dot / d + 1.0).powi(3);
            count += 1;
        }
    }
    s / count as f64
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rediffuse-features-{}-{name}", std::process::id()))
}

#[test]
fn fid_of_set_with_itself_is_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let d = 24;
    let l: Vec<f64> =
        (0..d * d).map(|k| if k / d >= k % d { rng.random::<f64>() - 0.3 } else { 0.0 }).collect();
    let x = gaussian(&mut rng, 400, &vec![0.5; d], &l);
    let s = FeatureStats::from_features(&x, "raw").unwrap();
    let trace: f64 = (0..d).map(|i| s.sigma[i * d + i]).sum();
    let v = fid(&s, &s).unwrap();
    assert!(v.abs() < 1e-6 * trace, "FID(x, x) = {v} (trace {trace})");
    // Rank-deficient set (fewer samples than dimensions) is handled as well.
    let small = x.select_rows(&(0..10).collect::<Vec<_>>()).unwrap();
    let s = FeatureStats::from_features(&small, "raw").unwrap();
    let trace: f64 = (0..d).map(|i| s.sigma[i * d + i]).sum();
    let v = fid(&s, &s).unwrap();
    assert!(v.abs() < 1e-6 * trace, "rank-deficient FID(x, x) = {v}");
}

#[test]
fn fid_commuting_covariances_closed_form() {
    // Diagonal Σ: FID = ‖μ1 − μ2‖² + Σ_i (sqrt(a_i) − sqrt(b_i))².
    let a = [1.0, 4.0, 0.25, 9.0];
    let b = [2.0, 1.0, 0.25, 0.0];
    let diag = |v: &[f64]| {
        let mut m = vec![0.0; 16];
        for i in 0..4 {
            m[i * 5] = v[i];
        }
        m
    };
    let mu1 = [0.0, 1.0, 2.0, 3.0];
    let mu2 = [1.0, 1.0, 0.0, 3.0];
    let exact =
        1.0 + 4.0 + a.iter().zip(&b).map(|(x, y): (&f64, &f64)| (x.sqrt() - y.sqrt()).powi(2)).sum::<f64>();
    let v = fid_from_moments(&mu1, &diag(&a), &mu2, &diag(&b)).unwrap();
    assert!((v - exact).abs() < 1e-12, "{v} vs {exact}");
}

#[test]
fn fid_non_commuting_2x2_by_hand() {
    // Σ1 = [[2,1],[1,2]], Σ2 = diag(1,4): Σ1Σ2 = [[2,4],[1,8]], trace 10, det 12.
    // For a 2×2 matrix with positive eigenvalues Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M)).
    let s1 = [2.0, 1.0, 1.0, 2.0];
    let s2 = [1.0, 0.0, 0.0, 4.0];
    let exact = 5.0 + (4.0 + 5.0) - 2.0 * (10.0 + 2.0 * 12f64.sqrt()).sqrt();
    let v = fid_from_moments(&[0.0, 0.0], &s1, &[1.0, 2.0], &s2).unwrap();
    assert!((v - exact).abs() < 1e-12, "{v} vs {exact}");
}

#[test]
fn fid_non_commuting_3x3_rotated_block() {
    // Block-diagonal (the 2×2 pair above ⊕ scalars 3 and 1/3), then rotated by an orthogonal
    // R applied to both: FID is invariant, so the closed form of the blocks still holds.
    let b1 = [2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 3.0];
    let b2 = [1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 1.0 / 3.0];
    let (c, s) = (0.6f64, 0.8f64);
    let (c2, s2) = ((0.3f64).cos(), (0.3f64).sin());
    // R = Rz(θ) Rx(0.3) with cos θ = 0.6.
    let rz = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
    let rx = [1.0, 0.0, 0.0, 0.0, c2, -s2, 0.0, s2, c2];
    let mul = |a: &[f64], b: &[f64]| {
        let mut m = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                m[i * 3 + j] = (0..3).map(|k| a[i * 3 + k] * b[k * 3 + j]).sum();
            }
        }
        m
    };
    let tr = |a: &[f64]| vec![a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8]];
    let r = mul(&rz, &rx);
    let rot = |m: &[f64]| {
        let mut x = mul(&mul(&r, m), &tr(&r));
        for i in 0..3 {
            for j in 0..i {
                let v = 0.5 * (x[i * 3 + j] + x[j * 3 + i]);
                x[i * 3 + j] = v;
                x[j * 3 + i] = v;
            }
        }
        x
    };
    let (s1, s2m) = (rot(&b1), rot(&b2));
    assert!(s1[2].abs() > 0.1 && s2m[1].abs() > 0.1, "rotation must mix the blocks");
    let cross = (10.0 + 2.0 * 12f64.sqrt()).sqrt() + (3.0f64 * (1.0 / 3.0)).sqrt();
    let exact = 2.0 + (7.0 + 5.0 + 1.0 / 3.0) - 2.0 * cross;
    let v = fid_from_moments(&[1.0, 0.0, 1.0], &s1, &[0.0, 0.0, 0.0], &s2m).unwrap();
    assert!((v - exact).abs() < 1e-11, "{v} vs {exact}");
}

#[test]
fn fid_of_gaussian_samples_matches_closed_form() {
    let d = 4;
    let l1 = [1.0, 0.0, 0.0, 0.0, 0.5, 1.0, 0.0, 0.0, -0.3, 0.2, 0.8, 0.0, 0.1, 0.0, 0.4, 1.2];
    let l2 = [0.7, 0.0, 0.0, 0.0, -0.2, 1.3, 0.0, 0.0, 0.0, 0.6, 0.5, 0.0, 0.3, -0.1, 0.0, 0.9];
    let mu1 = [0.0, 0.0, 0.0, 0.0];
    let mu2 = [0.5, -0.5, 0.0, 1.0];
    let exact = fid_from_moments(&mu1, &llt(&l1, d), &mu2, &llt(&l2, d)).unwrap();
    // Replicated estimates from finite samples: the estimator is biased by O(1/n)
    // (e.g. E‖μ̂1 − μ̂2‖² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2)/n); check the replicate mean
    // against the exact value within 4 standard errors plus that bias bound.
    let (reps, n) = (16, 8000);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let est: Vec<f64> = (0..reps)
        .map(|_| {
            let a = FeatureStats::from_features(&gaussian(&mut rng, n, &mu1, &l1), "raw").unwrap();
            let b = FeatureStats::from_features(&gaussian(&mut rng, n, &mu2, &l2), "raw").unwrap();
            fid(&a, &b).unwrap()
        })
        .collect();
    let mean = est.iter().sum::<f64>() / reps as f64;
    let sd = (est.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
    let trace_sum: f64 = (0..d).map(|i| llt(&l1, d)[i * d + i] + llt(&l2, d)[i * d + i]).sum();
    let tol = 4.0 * sd / (reps as f64).sqrt() + 2.0 * trace_sum / n as f64;
    println!("FID exact {exact:.5}, estimate {mean:.5} ± {sd:.5} (tol {tol:.5})");
    assert!(sd < 0.05 * exact, "MC spread too large to be a meaningful test");
    assert!((mean - exact).abs() < tol, "{mean} vs {exact} (tol {tol})");
}

#[test]
fn fid_rejects_mismatched_extractors() {
    let x = FeatureMatrix::new(3, 1, vec![0.0, 1.0, 2.0]).unwrap();
    let a = FeatureStats::from_features(&x, "raw:1x1x1").unwrap();
    let b = FeatureStats::from_features(&x, "inception-v3-fid/pool3/0").unwrap();
    assert!(matches!(fid(&a, &b), Err(FeatureError::IncompatibleStats { .. })));
}

#[test]
fn mmd2_hand_example() {
    // d = 1, k(x, y) = (xy + 1)³. X = {0, 1}, Y = {2, 3}:
    // K_XX off-diagonal 1 (×2) -> 1; K_YY off-diagonal 343 (×2) -> 343;
    // K_XY = 1 + 1 + 27 + 64 = 93 -> 2·93/4 = 46.5. MMD² = 297.5.
    let x = FeatureMatrix::new(2, 1, vec![0.0, 1.0]).unwrap();
    let y = FeatureMatrix::new(2, 1, vec![2.0, 3.0]).unwrap();
    assert!((mmd2_unbiased(&x, &y).unwrap() - 297.5).abs() < 1e-12);
}

#[test]
fn kid_is_unbiased_and_grows_with_shift() {
    let d = 8;
    let eye: Vec<f64> = (0..d * d).map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    // Unbiasedness: independent same-distribution pairs, mean within 4 standard errors of 0,
    // while the biased V-statistic (diagonal included) is clearly positive.
    let (reps, m) = (60, 100);
    let mut unbiased = Vec::new();
    let mut biased = Vec::new();
    for _ in 0..reps {
        let x = gaussian(&mut rng, m, &vec![0.0; d], &eye);
        let y = gaussian(&mut rng, m, &vec![0.0; d], &eye);
        let u = mmd2_unbiased(&x, &y).unwrap();
        // Independent direct evaluation of both estimators.
        let direct_u =
            mean_kernel(&x, &x, true) + mean_kernel(&y, &y, true) - 2.0 * mean_kernel(&x, &y, false);
        assert!((u - direct_u).abs() < 1e-9 * direct_u.abs().max(1.0));
        biased
            .push(mean_kernel(&x, &x, false) + mean_kernel(&y, &y, false) - 2.0 * mean_kernel(&x, &y, false));
        unbiased.push(u);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let se = |v: &[f64]| {
        let mu = mean(v);
        (v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (v.len() - 1) as f64 / v.len() as f64).sqrt()
    };
    println!(
        "unbiased {:.3e} ± {:.3e}, biased {:.3e} ± {:.3e}",
        mean(&unbiased),
        se(&unbiased),
        mean(&biased),
        se(&biased)
    );
    assert!(mean(&unbiased).abs() < 4.0 * se(&unbiased));
    assert!(mean(&biased) > 8.0 * se(&biased));

    // KID over subsets: same distribution -> mean within its std of 0; shifts increase it.
    let cfg = KidConfig { num_subsets: 20, subset_size: 200, seed: 3 };
    let real = gaussian(&mut rng, 600, &vec![0.0; d], &eye);
    let mut prev = f64::NEG_INFINITY;
    for (k, shift) in [0.0, 0.25, 0.5, 1.0].iter().enumerate() {
        let fake = gaussian(&mut rng, 600, &vec![*shift; d], &eye);
        let r = kid(&real, &fake, &cfg).unwrap();
        println!("shift {shift}: KID {:.4e} ± {:.4e}", r.mean, r.std);
        assert_eq!(r.subset_size, 200);
        if k == 0 {
            assert!(r.mean.abs() < r.std, "same distribution: {} ± {}", r.mean, r.std);
        } else {
            assert!(r.mean > prev, "KID must grow with the shift");
        }
        if *shift == 1.0 {
            assert!(r.mean > 10.0 * r.std);
        }
        prev = r.mean;
    }
}

#[test]
fn kid_validates_parameters() {
    let x = FeatureMatrix::new(3, 1, vec![0.0, 1.0, 2.0]).unwrap();
    let one = FeatureMatrix::new(1, 1, vec![0.0]).unwrap();
    assert!(kid(&x, &x, &KidConfig { num_subsets: 0, ..Default::default() }).is_err());
    assert!(matches!(kid(&x, &one, &KidConfig::default()), Err(FeatureError::TooFewSamples(_))));
    let two_d = FeatureMatrix::new(3, 2, vec![0.0; 6]).unwrap();
    assert!(kid(&x, &two_d, &KidConfig::default()).is_err());
}

#[test]
fn inception_score_limits() {
    let (n, c) = (40, 10);
    let uniform = FeatureMatrix::new(n, c, vec![1.0 / c as f64; n * c]).unwrap();
    let s = inception_score_from_probs(&uniform, 4).unwrap();
    assert!((s.mean - 1.0).abs() < 1e-12 && s.std < 1e-12);
    // Confident and diverse: one-hot, every class equally often in each split -> IS = C.
    let mut onehot = vec![0.0; n * c];
    for i in 0..n {
        onehot[i * c + i % c] = 1.0;
    }
    let s = inception_score_from_probs(&FeatureMatrix::new(n, c, onehot).unwrap(), 4).unwrap();
    assert!((s.mean - c as f64).abs() < 1e-9 && s.std < 1e-9, "{s:?}");
    // Same via logits with a large margin.
    let mut logits = vec![0.0; n * c];
    for i in 0..n {
        logits[i * c + i % c] = 60.0;
    }
    let s = inception_score_from_logits(&FeatureMatrix::new(n, c, logits).unwrap(), 2).unwrap();
    assert!((s.mean - c as f64).abs() < 1e-9, "{s:?}");
    // Hand example: p1 = (0.9, 0.1), p2 = (0.1, 0.9), marginal (0.5, 0.5):
    // KL = 0.9 ln 1.8 + 0.1 ln 0.2 for both.
    let p = FeatureMatrix::new(2, 2, vec![0.9, 0.1, 0.1, 0.9]).unwrap();
    let exact = (0.9 * 1.8f64.ln() + 0.1 * 0.2f64.ln()).exp();
    assert!((inception_score_from_probs(&p, 1).unwrap().mean - exact).abs() < 1e-12);
    // Validation.
    assert!(inception_score_from_probs(&p, 3).is_err());
    assert!(inception_score_from_probs(&p, 0).is_err());
    let bad = FeatureMatrix::new(1, 2, vec![0.7, 0.7]).unwrap();
    assert!(inception_score_from_probs(&bad, 1).is_err());
}

#[test]
fn precision_recall_extremes_and_half() {
    let d = 5;
    let eye: Vec<f64> = (0..d * d).map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let real = gaussian(&mut rng, 300, &vec![0.0; d], &eye);
    let same = precision_recall(&real, &real, 3).unwrap();
    assert_eq!((same.precision, same.recall), (1.0, 1.0));
    let far = gaussian(&mut rng, 300, &vec![100.0; d], &eye);
    let pr = precision_recall(&real, &far, 3).unwrap();
    assert_eq!((pr.precision, pr.recall), (0.0, 0.0));
    // Half exact copies of real points, half far away: precision exactly 0.5.
    let copies = real.select_rows(&(0..150).collect::<Vec<_>>()).unwrap();
    let far_half = far.select_rows(&(0..150).collect::<Vec<_>>()).unwrap();
    let mixed = FeatureMatrix::concat(&[copies, far_half]).unwrap();
    let pr = precision_recall(&real, &mixed, 3).unwrap();
    assert_eq!(pr.precision, 0.5);
    assert!(pr.recall > 0.3 && pr.recall < 1.0, "recall {}", pr.recall);
    assert!(precision_recall(&real, &real, 300).is_err());
}

#[test]
fn memorization_ratios() {
    // 1-D hand example: training {0, 10}, generated {1}: d1 = 1, d2 = 9.
    let train = FeatureMatrix::new(2, 1, vec![0.0, 10.0]).unwrap();
    let gen = FeatureMatrix::new(1, 1, vec![1.0]).unwrap();
    let r = memorization(&gen, &train, 1.0 / 3.0).unwrap();
    assert!((r.ratios[0] - 1.0 / 9.0).abs() < 1e-12);
    assert_eq!(r.nearest_index, vec![0]);
    assert_eq!(r.fraction_below, 1.0);

    let d = 32;
    let eye: Vec<f64> = (0..d * d).map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let train = gaussian(&mut rng, 500, &vec![0.0; d], &eye);
    // 10 exact copies, 10 near copies (noise 0.01), 80 fresh samples.
    let mut data = Vec::new();
    for i in 0..10 {
        data.extend_from_slice(train.row(i * 7));
    }
    for i in 0..10 {
        data.extend(train.row(i * 11 + 3).iter().map(|v| v + 0.01 * rng.sample::<f64, _>(StandardNormal)));
    }
    let fresh = gaussian(&mut rng, 80, &vec![0.0; d], &eye);
    data.extend_from_slice(fresh.data());
    let gen = FeatureMatrix::new(100, d, data).unwrap();
    let r = memorization(&gen, &train, 1.0 / 3.0).unwrap();
    assert!(r.ratios[..10].iter().all(|&x| x == 0.0));
    assert!(r.ratios[10..20].iter().all(|&x| x < 0.05));
    assert!(r.ratios[20..].iter().all(|&x| x > 1.0 / 3.0), "fresh samples are not copies");
    assert_eq!(r.fraction_below, 0.2);
    assert_eq!(r.nearest_index[3], 21);
    assert!(memorization(&gen, &train, 0.0).is_err());
    assert!(memorization(&gen, &train.select_rows(&[0]).unwrap(), 0.3).is_err());
}

#[test]
fn stats_file_round_trip_and_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let d = 6;
    let eye: Vec<f64> = (0..d * d).map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let x = gaussian(&mut rng, 50, &vec![0.1; d], &eye);
    let y = gaussian(&mut rng, 50, &vec![0.4; d], &eye);
    let sx = FeatureStats::from_features(&x, "raw:1x2x3").unwrap();
    let sy = FeatureStats::from_features(&y, "raw:1x2x3").unwrap();
    let path = temp_path("stats.safetensors");
    sx.save(&path).unwrap();
    let back = FeatureStats::load(&path).unwrap();
    assert_eq!(back, sx);
    assert_eq!(fid(&back, &sy).unwrap(), fid(&sx, &sy).unwrap());
    std::fs::write(&path, b"not a safetensors file").unwrap();
    assert!(matches!(FeatureStats::load(&path), Err(FeatureError::StatsFile { .. })));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(FeatureStats::load(&path), Err(FeatureError::Io { .. })));
    assert!(FeatureStats::from_moments(vec![0.0, 1.0], vec![1.0, 2.0, 0.0, 1.0], 3, "raw").is_err());
}

#[test]
fn raw_features_batched_extraction() {
    let device = Device::Cpu;
    let data: Vec<f32> = (0..7 * 2 * 3 * 3).map(|i| (i as f32 * 0.37).sin()).collect();
    let images = Tensor::from_vec(data.clone(), (7, 2, 3, 3), &device).unwrap();
    let raw = RawFeatures::new(2, 3, 3).unwrap();
    let a = extract_features(&raw, &images, 3).unwrap();
    let b = extract_features(&raw, &images, 100).unwrap();
    assert_eq!(a, b);
    assert_eq!((a.rows(), a.cols()), (7, 18));
    assert_eq!(a.row(2)[5], data[2 * 18 + 5] as f64);
    assert!(extract_features(&raw, &images, 0).is_err());
    let wrong = Tensor::zeros((2, 1, 3, 3), candle_core::DType::F32, &device).unwrap();
    assert!(extract_features(&raw, &wrong, 4).is_err());
    assert!(FeatureMatrix::new(1, 2, vec![0.0, f64::NAN]).is_err());
}
