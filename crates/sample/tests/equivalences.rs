//! Exact relations between samplers and batch independence.

mod common;

use candle_core::Device;
use common::{init, linear, max_abs_diff};
use rediffuse_core::analytic::{GaussianDenoiser, GmmDenoiser, GmmSpec};
use rediffuse_core::noise::batches;
use rediffuse_core::NoiseSource;
use rediffuse_sample::{ddim_sample, ddpm_sample, DdimOptions, DdpmOptions, DdpmVariance, TimestepSpacing};

fn gmm() -> GmmSpec {
    GmmSpec {
        weights: vec![0.5, 0.5],
        means: vec![vec![-1.0, 0.0, 0.5], vec![1.0, 0.5, -0.5]],
        stds: vec![0.3, 0.4],
    }
}

#[test]
fn ddim_eta1_full_steps_equals_ddpm_beta_tilde() {
    let t = 200;
    let s = linear(t);
    let den = GmmDenoiser::new(&gmm(), &s).unwrap();
    for spacing in [TimestepSpacing::Leading, TimestepSpacing::Trailing, TimestepSpacing::Linspace] {
        for seed in [1u64, 2, 3] {
            let (x, mut n1) = init(seed, 16, &[3]);
            let mut n2 = n1.clone();
            let ddpm = ddpm_sample(
                &den,
                &s,
                x.clone(),
                &DdpmOptions { variance: DdpmVariance::BetaTilde, clip_x0: None },
                &mut n1,
                None,
            )
            .unwrap();
            let opts = DdimOptions {
                steps: t,
                eta: 1.0,
                spacing,
                clip_x0: None,
                clipped_model_output: false,
                stride_prev: false,
            };
            let ddim = ddim_sample(&den, &s, x, &opts, &mut n2, None).unwrap();
            let diff = max_abs_diff(&ddpm, &ddim);
            println!("{spacing:?} seed {seed}: max |DDPM − DDIM| = {diff:e}");
            assert!(diff < 1e-4, "{spacing:?} seed {seed}: {diff}");
            // Both consumed the same amount of noise.
            assert_eq!(n1.randn_vec(&[1]), n2.randn_vec(&[1]));
        }
    }
}

#[test]
fn clipping_bounds_the_final_sample() {
    // At the last step DDPM's mean is coef1·clip(x̂₀) with coef1 = 1, coef2 = 0, and DDIM
    // returns √1·clip(x̂₀): both outputs are clipped x̂₀ (DDIM keeps the unclipped ε̂, as
    // diffusers' use_clipped_model_output = False, so the two paths differ before that).
    let s = linear(200);
    let den = GmmDenoiser::new(&gmm(), &s).unwrap();
    let (x, mut n1) = init(4, 64, &[3]);
    let mut n2 = n1.clone();
    let opts = DdpmOptions { variance: DdpmVariance::BetaTilde, clip_x0: Some(0.5) };
    let a = ddpm_sample(&den, &s, x.clone(), &opts, &mut n1, None).unwrap();
    let opts = DdimOptions {
        steps: 20,
        eta: 0.0,
        spacing: TimestepSpacing::Leading,
        clip_x0: Some(0.5),
        clipped_model_output: false,
        stride_prev: false,
    };
    let b = ddim_sample(&den, &s, x.clone(), &opts, &mut n2, None).unwrap();
    let unclipped = ddim_sample(&den, &s, x, &DdimOptions { clip_x0: None, ..opts }, &mut n2, None).unwrap();
    let amax = |t: &candle_core::Tensor| {
        t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    };
    assert!(amax(&a) <= 0.5 + 1e-6 && amax(&b) <= 0.5 + 1e-6, "{} {}", amax(&a), amax(&b));
    assert!(amax(&unclipped) > 0.9, "the mixture means lie outside ±0.5");
}

#[test]
fn batch_independence() {
    let s = linear(100);
    let g = GaussianDenoiser::new(vec![0.3, -0.2], vec![vec![1.0, 0.2], vec![0.2, 0.4]], &s).unwrap();
    let run = |start: u64, count: usize, ddim: bool| {
        let mut noise = NoiseSource::new(77, start, count);
        let x = noise.randn(&[2], &Device::Cpu).unwrap();
        if ddim {
            let opts = DdimOptions {
                steps: 20,
                eta: 0.7,
                spacing: TimestepSpacing::Trailing,
                clip_x0: None,
                clipped_model_output: false,
                stride_prev: false,
            };
            ddim_sample(&g, &s, x, &opts, &mut noise, None).unwrap()
        } else {
            let opts = DdpmOptions { variance: DdpmVariance::Beta, clip_x0: Some(2.0) };
            ddpm_sample(&g, &s, x, &opts, &mut noise, None).unwrap()
        }
    };
    for ddim in [false, true] {
        let whole: Vec<Vec<f32>> = run(0, 6, ddim).to_vec2().unwrap();
        let mut parts = Vec::new();
        for (start, count) in batches(6, 4) {
            parts.extend(run(start as u64, count, ddim).to_vec2::<f32>().unwrap());
        }
        assert_eq!(whole, parts, "ddim={ddim}");
    }
}

/// `clipped_model_output`: DDIM's second state equals √ᾱ_τ'·clip(x̂₀) + √(1 − ᾱ_τ')·ε̃ with
/// ε̃ = (x_T − √ᾱ_τ·clip(x̂₀))/√(1 − ᾱ_τ) computed by hand from the model's output at τ; without
/// it, ε̃ is the model's own ε̂ = (x_T − √ᾱ_τ·x̂₀)/√(1 − ᾱ_τ) and the states differ.
#[test]
fn ddim_clipped_model_output_rederives_eps() {
    use rediffuse_core::Denoiser;
    let s = linear(200);
    let den = GmmDenoiser::new(&gmm(), &s).unwrap();
    let (x, mut noise) = init(9, 32, &[3]);
    let ts = rediffuse_sample::timesteps::ddim_timesteps(200, 4, TimestepSpacing::Leading).unwrap();
    let (tau, tau2) = (ts[0], ts[1]);
    let (ab, ab2) = (s.alpha_bar[tau], s.alpha_bar[tau2]);
    // x̂₀ of the (x₀-predicting) mixture denoiser at τ and its ε̂, by hand
    assert_eq!(den.prediction(), rediffuse_core::Prediction::Sample);
    let t = candle_core::Tensor::new(vec![tau as f32; 32], &Device::Cpu).unwrap();
    let x0 = den.forward(&x, &t).unwrap();
    let eps =
        (&x - x0.affine(ab.sqrt(), 0.0).unwrap()).unwrap().affine(1.0 / (1.0 - ab).sqrt(), 0.0).unwrap();
    let x0c = x0.clamp(-0.5f32, 0.5f32).unwrap();
    let eps_c =
        (&x - x0c.affine(ab.sqrt(), 0.0).unwrap()).unwrap().affine(1.0 / (1.0 - ab).sqrt(), 0.0).unwrap();
    let second = |use_clipped: bool, noise: &mut NoiseSource| {
        let opts = DdimOptions {
            steps: 4,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
            clip_x0: Some(0.5),
            clipped_model_output: use_clipped,
            stride_prev: false,
        };
        let mut states = Vec::new();
        let mut cb = |st: &rediffuse_sample::step::StepInfo<'_>| states.push(st.x_t.clone());
        ddim_sample(&den, &s, x.clone(), &opts, noise, Some(&mut cb)).unwrap();
        states[1].clone()
    };
    let want_c =
        (x0c.affine(ab2.sqrt(), 0.0).unwrap() + eps_c.affine((1.0 - ab2).sqrt(), 0.0).unwrap()).unwrap();
    let want_k =
        (x0c.affine(ab2.sqrt(), 0.0).unwrap() + eps.affine((1.0 - ab2).sqrt(), 0.0).unwrap()).unwrap();
    let mut n2 = noise.clone();
    let (got_c, got_k) = (second(true, &mut noise), second(false, &mut n2));
    assert!(max_abs_diff(&got_c, &want_c) < 1e-5, "{}", max_abs_diff(&got_c, &want_c));
    assert!(max_abs_diff(&got_k, &want_k) < 1e-5, "{}", max_abs_diff(&got_k, &want_k));
    assert!(max_abs_diff(&got_c, &got_k) > 1e-2, "clipping must be active here");
}
