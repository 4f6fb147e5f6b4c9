//! Every method trained on the embedded 8×8 UCI digits: 1,297 training images flattened to 64
//! values in [−1, 1] (500 held out as the reference), a residual MLP (hidden 256, 3 blocks), 8000
//! steps of batch 128 on one thread; n = 500 samples from the method's native sampler.
//!
//! Quality check ([`digits::quality_failures`]): FID on the raw pixels within 4× the
//! real-vs-real floor, FID on the digits classifier's features at most 0.8× that of the data's
//! Gaussian fit (which matches the pixel mean and covariance, so raw-pixel FID cannot reject
//! it), raw-pixel precision (Kynkäänniemi et al. 2019, k = 3) ≥ 0.3, sane mean and range.
//! `digits_check_rejects_baselines` shows that the check fails for pure noise, the Gaussian
//! fit, blurred and noisy digits and an untrained network, and passes for real digits.
//! `digits_report` (ignored: long) runs several samplers per method at n = 1000.

#[path = "methods_support/digits.rs"]
mod digits;
mod methods_support;

use candle_core::{Device, Tensor};
use digits::*;
use rediffuse_core::sde::{EdmConfig, Sde};
use rediffuse_core::{NoiseSource, Prediction};
use rediffuse_sample::continuous::Predictor;
use rediffuse_sample::dispatch::{sample, SampleModel, SamplerSpec};
use rediffuse_sample::{DdimOptions, DdpmOptions, TimestepSpacing};
use rediffuse_train::Method;
use std::time::Instant;

/// σ_max of NCSN and VE: the largest pairwise distance of the training digits, 9.42
/// (Song & Ermon 2020, technique 1), rounded up.
const SIGMA_MAX: f64 = 10.0;

const STEPS: usize = 8000;

fn method(tag: &str) -> Method {
    match tag {
        "ddpm" => Method::ddpm_default(),
        // 64 levels: ratio γ = 1000^(1/63) = 1.116 keeps neighbouring levels' shells overlapping
        // in 64 dimensions (Song & Ermon 2020, technique 2)
        "ncsn" => Method::Ncsn { sigma_max: SIGMA_MAX, sigma_min: 0.01, levels: 64 },
        "vp-sde" => Method::score_sde(Sde::vp()),
        "ve-sde" => Method::ScoreSde {
            sde: Sde::Ve { sigma_min: 0.01, sigma_max: SIGMA_MAX },
            prediction: Prediction::Epsilon,
            eps: 1e-5,
        },
        "subvp-sde" => Method::score_sde(Sde::sub_vp()),
        // σ_data = 0.75, the pixel standard deviation of the digits in [−1, 1]
        "edm" => Method::Edm(EdmConfig { sigma_data: 0.75, ..EdmConfig::default() }),
        other => panic!("unknown method {other}"),
    }
}

/// The sampler of each method's paper: DDPM ancestral sampling with x̂₀ clipped to [−1, 1]
/// (Ho et al. Alg. 2, as the CLI does for images), annealed Langevin dynamics, predictor–corrector
/// for the VP and VE SDEs (Song et al. 2021), Euler–Maruyama for sub-VP, EDM's Heun sampler.
fn native(tag: &str) -> SamplerSpec {
    match tag {
        "ddpm" => SamplerSpec::Ddpm(DdpmOptions { clip_x0: Some(1.0), ..DdpmOptions::default() }),
        "ncsn" => SamplerSpec::Langevin {
            sigma_min: None,
            levels: None,
            steps_per_level: 4,
            step_eps: 5e-5,
            final_denoise: true,
        },
        "vp-sde" | "ve-sde" => SamplerSpec::Pc {
            steps: 100,
            snr: 0.16,
            corrector_steps: 1,
            predictor: Predictor::ReverseDiffusion,
            eps: None,
            denoise: true,
        },
        "subvp-sde" => SamplerSpec::EulerMaruyama { steps: 200, eps: None, denoise: true },
        "edm" => SamplerSpec::EdmHeun { steps: 18, rho: 7.0 },
        other => panic!("unknown method {other}"),
    }
}

/// `n` flattened samples, the NFE and the wall time.
fn draw(model: &SampleModel<'_>, spec: &SamplerSpec, n: usize, seed: u64) -> (Tensor, usize, f64) {
    let t0 = Instant::now();
    let mut noise = NoiseSource::new(seed, 0, n);
    let (x, st) = sample(spec, model, None, &[DIM], &Device::Cpu, &mut noise, None)
        .unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
    (x, st.nfe, t0.elapsed().as_secs_f64())
}

fn check(tag: &str) {
    setup();
    let t0 = Instant::now();
    let (run, losses, dir, _) = train_digits(tag, digits_config(method(tag), STEPS));
    assert!(losses.iter().all(|l| l.is_finite()));
    let tail = (losses[losses.len() - 1] + losses[losses.len() - 2]) / 2.0;
    assert!(tail < 0.8 * losses[0], "[{tag}] loss did not fall: {losses:?}");
    let model = run.sample_model().unwrap();
    let n = 500;
    let refs = references(n);
    let spec = native(tag);
    let (x, nfe, secs) = draw(&model, &spec, n, 500);
    let s = scorer().score(&x);
    println!("[{tag}] floor {}", refs.floor);
    println!("[{tag}] gauss {}", refs.gauss);
    println!("[{tag}] {} (nfe {nfe}, {secs:.1} s): {s}", spec.name());
    let failures = quality_failures(&s, &refs);
    assert!(failures.is_empty(), "[{tag}] {}: {}", spec.name(), failures.join("; "));
    std::fs::remove_dir_all(&dir).unwrap();
    println!("[{tag}] test took {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn digits_ddpm() {
    check("ddpm");
}

#[test]
fn digits_ncsn() {
    check("ncsn");
}

#[test]
fn digits_vp_sde() {
    check("vp-sde");
}

#[test]
fn digits_ve_sde() {
    check("ve-sde");
}

#[test]
fn digits_subvp_sde() {
    check("subvp-sde");
}

#[test]
fn digits_edm() {
    check("edm");
}

/// The check passes for real digits and fails for every bad baseline, among them a network
/// trained for a single step (DDPM, sampled like `digits_ddpm`).
#[test]
fn digits_check_rejects_baselines() {
    setup();
    let n = 500;
    let refs = references(n);
    let s = scorer();
    let (dmax, std) = data_scales();
    println!("largest pairwise distance {dmax:.3}, pixel std {std:.3}, held-out mean {:.3}", held_mean());
    assert!((9.0..10.0).contains(&dmax) && (0.7..0.8).contains(&std), "{dmax} {std}");
    println!("real (floor)  {}", refs.floor);
    assert!(quality_failures(&refs.floor, &refs).is_empty(), "{:?}", quality_failures(&refs.floor, &refs));
    let (untrained, _, dir, _) = train_digits("untrained", digits_config(method("ddpm"), 1));
    let model = untrained.sample_model().unwrap();
    let bad = [
        ("gaussian fit", refs.gauss),
        ("pure noise", s.score(&pure_noise(n, 1))),
        ("blurred", s.score(&blurred_real(n))),
        ("noisy 0.3", s.score(&noisy_real(n, 0.3, 1))),
        ("untrained", s.score(&draw(&model, &native("ddpm"), n, 500).0)),
    ];
    std::fs::remove_dir_all(&dir).unwrap();
    for (name, sc) in bad {
        let f = quality_failures(&sc, &refs);
        println!("{name:<13} {sc}\n{:<13} fails: {}", "", f.join("; "));
        assert!(f.len() >= 2, "{name} must fail at least two criteria: {f:?}");
    }
}

/// Samplers of the report: the native one first, then deterministic and stochastic others.
fn report_specs(tag: &str) -> Vec<SamplerSpec> {
    let mut v = vec![native(tag)];
    if tag == "ddpm" {
        v.push(SamplerSpec::Ddpm(DdpmOptions::default()));
    }
    v.extend([
        SamplerSpec::Ddim(DdimOptions {
            steps: 50,
            eta: 0.0,
            spacing: TimestepSpacing::Trailing,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        }),
        SamplerSpec::OdeHeun { steps: 50, eps: None, denoise: true },
        SamplerSpec::DpmPp2m { steps: 25 },
        SamplerSpec::EdmHeun { steps: 18, rho: 7.0 },
        // S_tmax = 5 keeps σ̂ = (1 + γ)σ inside every frame (NCSN and VE end at σ_max = 10)
        SamplerSpec::EdmStochastic {
            steps: 40,
            rho: 7.0,
            s_churn: 20.0,
            s_tmin: 0.01,
            s_tmax: 5.0,
            s_noise: 1.0,
        },
        SamplerSpec::Pc {
            steps: 200,
            snr: 0.16,
            corrector_steps: 1,
            predictor: Predictor::ReverseDiffusion,
            eps: None,
            denoise: true,
        },
        SamplerSpec::EulerMaruyama { steps: 500, eps: None, denoise: true },
    ]);
    let first = v[0].clone();
    let mut out = vec![first.clone()];
    out.extend(v.into_iter().skip(1).filter(|s| *s != first));
    out
}

/// Every method × several samplers at n = 1000 (about 10 minutes on one core): prints raw and
/// classifier FID, IS, precision, NFE, time and the quality verdict per sampler; the native
/// sampler must pass. Measured: every stochastic sampler passes; with the ε-predicting MLPs
/// (all but EDM) the deterministic ones (DDIM η = 0, ODE Heun, DPM-Solver++ 2M, EDM Heun) leave
/// 15–20% of pixels outside [−1.1, 1.1] and fail, as ε errors at large σ grow into x̂₀ errors
/// (×σ) that no noise injection corrects; with EDM's preconditioning they all pass. The `+clip`
/// rows run the σ-space deterministic samplers with D(x; σ) clipped to [−1, 1]
/// (`SampleModel::with_clip_denoised`, what `rediffuse sample` does for images).
#[test]
#[ignore]
fn digits_report() {
    setup();
    let n = 1000;
    let refs = references(n);
    println!("real (n = {n}): {}", refs.floor);
    println!("gaussian fit:   {}", refs.gauss);
    for tag in ["ddpm", "ncsn", "vp-sde", "ve-sde", "subvp-sde", "edm"] {
        let (run, _, dir, train_s) = train_digits(tag, digits_config(method(tag), STEPS));
        println!("[{tag}] trained {STEPS} steps in {train_s:.1} s");
        let model = run.sample_model().unwrap();
        let clipped = run.sample_model().unwrap().with_clip_denoised(Some(1.0)).unwrap();
        for (k, spec) in report_specs(tag).iter().enumerate() {
            let (x, nfe, secs) = draw(&model, spec, n, 900);
            let s = scorer().score(&x);
            let verdict = if quality_failures(&s, &refs).is_empty() { "pass" } else { "fail" };
            println!("[{tag}] {:<15} nfe {nfe:>5} {secs:>6.2} s  {s}  {verdict}", spec.name());
            if k == 0 {
                let f = quality_failures(&s, &refs);
                assert!(f.is_empty(), "[{tag}] native {}: {}", spec.name(), f.join("; "));
            }
            // the deterministic σ-space samplers again with D clipped to [−1, 1]
            if matches!(
                spec,
                SamplerSpec::OdeHeun { .. } | SamplerSpec::DpmPp2m { .. } | SamplerSpec::EdmHeun { .. }
            ) {
                let (x, nfe, secs) = draw(&clipped, spec, n, 900);
                let s = scorer().score(&x);
                let verdict = if quality_failures(&s, &refs).is_empty() { "pass" } else { "fail" };
                println!(
                    "[{tag}] {:<15} nfe {nfe:>5} {secs:>6.2} s  {s}  {verdict}",
                    format!("{}+clip", spec.name())
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
