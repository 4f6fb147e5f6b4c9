//! The training losses are minimised by the exact score / denoiser of Gaussian data, with the
//! closed-form minimum (1/d)·Σ_k λ_k/(λ_k + σ²) (ε/score form) or λ(σ)·(1/d)·Σ_k λ_kσ²/(λ_k + σ²) (EDM).

mod continuous_util;

use candle_core::{DType, Device, Tensor};
use continuous_util::{gaussian, rows};
use rediffuse_core::sde::{EdmConfig, Sde};
use rediffuse_core::{NoiseSource, Prediction};
use rediffuse_sample::continuous::losses::*;
use rediffuse_sample::continuous::*;

const N: usize = 20000;

/// N draws of N(μ, Σ) for μ = (1, −0.5), Σ = [[1, .6], [.6, .8]].
fn data_draws(seed: u64) -> Tensor {
    let mut noise = NoiseSource::new(seed, 0, N);
    let z = noise.randn(&[2], &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
    let l22 = (0.8f64 - 0.36).sqrt();
    let v: Vec<f64> = rows(&z).iter().flat_map(|r| [1.0 + r[0], -0.5 + 0.6 * r[0] + l22 * r[1]]).collect();
    Tensor::from_vec(v, (N, 2), &Device::Cpu).unwrap()
}

fn eig() -> [f64; 2] {
    // eigenvalues of [[1, .6], [.6, .8]]
    let (tr, det) = (1.8f64, 0.8 - 0.36);
    let disc = (tr * tr / 4.0 - det).sqrt();
    [tr / 2.0 + disc, tr / 2.0 - disc]
}

fn mean_se(v: &Tensor) -> (f64, f64) {
    let v: Vec<f64> = v.to_dtype(DType::F64).unwrap().to_vec1().unwrap();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    (m, (var / v.len() as f64).sqrt())
}

#[test]
fn continuous_dsm_minimised_by_exact_score() {
    let data = gaussian();
    let x0 = data_draws(1);
    for sde in [Sde::vp(), Sde::ve(), Sde::sub_vp()] {
        for t in [0.05, 0.5] {
            let mut noise = NoiseSource::new(2, 0, N);
            let z = noise.randn(&[2], &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
            let ts = vec![t; N];
            let (xt, std) = sde_perturb(&sde, &x0, &z, &ts).unwrap();
            let (score, _) = sde_score(&data, &sde, &xt, &ts).unwrap();
            let (l, se) = mean_se(&dsm_loss(&score, Prediction::Score, &z, &std).unwrap());
            let s2 = sde.sigma(t).powi(2);
            let closed = eig().iter().map(|lk| lk / (lk + s2)).sum::<f64>() / 2.0;
            assert!((l - closed).abs() < 4.0 * se, "{sde:?} t={t}: {l} vs {closed} (se {se})");
            // ε form gives the same number; a perturbed score gives a larger loss
            let eps = score.affine(-std[0], 0.0).unwrap();
            let (le, _) = mean_se(&dsm_loss(&eps, Prediction::Epsilon, &z, &std).unwrap());
            assert!((le - l).abs() < 1e-9);
            // shifting ε̂ by ±0.1 raises the loss by ≈ 0.01 (the cross term averages out)
            for c in [-0.1, 0.1] {
                let shifted = score.affine(1.0, c / std[0]).unwrap();
                let (lp, _) = mean_se(&dsm_loss(&shifted, Prediction::Score, &z, &std).unwrap());
                assert!(lp > l + 0.005, "{sde:?} t={t} shift {c}: {lp} vs {l}");
            }
            println!("{} t={t}: loss {l:.5} closed form {closed:.5} (se {se:.1e})", sde.name());
        }
    }
    let z = Tensor::zeros((2, 2), DType::F64, &Device::Cpu).unwrap();
    assert!(dsm_loss(&z, Prediction::V, &z, &[1.0, 1.0]).is_err());
    assert!(sample_times(&mut NoiseSource::new(0, 0, 4), 1.5).is_err());
    let ts = sample_times(&mut NoiseSource::new(0, 0, 1000), 1e-3).unwrap();
    assert!(ts.iter().all(|&t| (1e-3..=1.0).contains(&t)));
}

#[test]
fn ncsn_dsm_minimised_by_exact_denoiser() {
    let data = gaussian();
    let x0 = data_draws(3);
    let sigmas = rediffuse_core::sde::geometric_sigmas(10.0, 0.01, 10).unwrap();
    let mut noise = NoiseSource::new(4, 0, N);
    let idx = sample_level_indices(&mut noise, sigmas.len()).unwrap();
    assert!(idx.iter().all(|&i| i < 10) && idx.contains(&0) && idx.contains(&9));
    for &s in &[sigmas[0], sigmas[4], sigmas[9]] {
        let z = noise.randn(&[2], &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
        let sig = vec![s; N];
        let x = ncsn_perturb(&x0, &z, &sig).unwrap();
        let d = data.denoise(&x, &sig).unwrap();
        let eps = x.sub(&d).unwrap().affine(1.0 / s, 0.0).unwrap();
        let (l, se) = mean_se(&dsm_loss(&eps, Prediction::Epsilon, &z, &sig).unwrap());
        let closed = eig().iter().map(|lk| lk / (lk + s * s)).sum::<f64>() / 2.0;
        println!("ncsn σ={s:.3}: loss {l:.5} closed form {closed:.5}");
        assert!((l - closed).abs() < 4.0 * se + 1e-12, "σ={s}: {l} vs {closed}");
    }
}

#[test]
fn edm_loss_minimised_by_exact_denoiser() {
    let data = gaussian();
    let cfg = EdmConfig::default();
    let x0 = data_draws(5);
    let mut noise = NoiseSource::new(6, 0, N);
    let sig = edm_sample_sigmas(&cfg, &mut noise).unwrap();
    let ln: Vec<f64> = sig.iter().map(|s| s.ln()).collect();
    let m = ln.iter().sum::<f64>() / N as f64;
    let sd = (ln.iter().map(|v| (v - m).powi(2)).sum::<f64>() / N as f64).sqrt();
    assert!((m + 1.2).abs() < 0.05 && (sd - 1.2).abs() < 0.05, "ln σ ~ N({m}, {sd}²)");
    for s in [0.05, 0.5, 3.0] {
        let n = noise.randn(&[2], &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
        let sigma = vec![s; N];
        let pair = edm_training_pair(&cfg, &x0, &n, &sigma).unwrap();
        // the exact raw output: F = (D − c_skip·x)/c_out with x = net_input/c_in
        let x = pair.net_input.affine(1.0 / cfg.c_in(s), 0.0).unwrap();
        let d = data.denoise(&x, &sigma).unwrap();
        let f =
            d.sub(&x.affine(cfg.c_skip(s), 0.0).unwrap()).unwrap().affine(1.0 / cfg.c_out(s), 0.0).unwrap();
        let (l, se) = mean_se(&edm_loss(&f, &pair).unwrap());
        let closed = cfg.loss_weight(s) * eig().iter().map(|lk| lk * s * s / (lk + s * s)).sum::<f64>() / 2.0;
        println!("edm σ={s}: loss {l:.5} closed form {closed:.5} (weight {})", pair.weight[0]);
        assert!((pair.weight[0] - 1.0).abs() < 1e-12);
        assert!((l - closed).abs() < 4.0 * se, "σ={s}: {l} vs {closed} (se {se})");
        let worse = d.affine(1.05, 0.0).unwrap().sub(&x.affine(cfg.c_skip(s), 0.0).unwrap()).unwrap();
        let (lw, _) = mean_se(&edm_loss(&worse.affine(1.0 / cfg.c_out(s), 0.0).unwrap(), &pair).unwrap());
        assert!(lw > l);
    }
    assert!(edm_training_pair(&cfg, &x0, &x0, &vec![-1.0; N]).is_err());
}
