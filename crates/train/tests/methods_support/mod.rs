//! Helpers of the per-method training tests: 2-D moons, a small sliced-Wasserstein distance,
//! moment checks, and a runner that trains a method and samples it with every sampler.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rediffuse_core::NoiseSource;
use rediffuse_data::toy2d::Toy2d;
use rediffuse_nn::{MlpConfig, ModelConfig};
use rediffuse_sample::continuous::Predictor;
use rediffuse_sample::dispatch::{sample, SampleModel, SamplerSpec};
use rediffuse_sample::{DdimOptions, DdpmOptions, TimestepSpacing};
use rediffuse_train::{load_run, LoadedRun, Method, NoObserver, TrainConfig, Trainer};
use std::path::PathBuf;
use std::time::Instant;

pub fn moons(n: usize, seed: u64) -> Tensor {
    Toy2d::Moons.sample_tensor(n, seed, &Device::Cpu).unwrap()
}

pub fn rows(x: &Tensor) -> Vec<[f64; 2]> {
    let v: Vec<Vec<f64>> = x.to_dtype(DType::F64).unwrap().to_vec2().unwrap();
    v.into_iter().map(|r| [r[0], r[1]]).collect()
}

/// Sliced 2-Wasserstein distance between two equally sized 2-D point sets:
/// √(mean over `k` random directions θ of W₂²(θᵀx, θᵀy)), 1-D W₂ by sorting.
pub fn sliced_w2(x: &[[f64; 2]], y: &[[f64; 2]], k: usize, seed: u64) -> f64 {
    assert_eq!(x.len(), y.len());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut total = 0.0;
    for _ in 0..k {
        let (a, b): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
        let n = (a * a + b * b).sqrt();
        let proj = |p: &[[f64; 2]]| {
            let mut v: Vec<f64> = p.iter().map(|q| (a * q[0] + b * q[1]) / n).collect();
            v.sort_by(|u, w| u.total_cmp(w));
            v
        };
        let (px, py) = (proj(x), proj(y));
        total += px.iter().zip(&py).map(|(u, w)| (u - w).powi(2)).sum::<f64>() / px.len() as f64;
    }
    (total / k as f64).sqrt()
}

/// Mean and per-axis variance.
pub fn moments(p: &[[f64; 2]]) -> ([f64; 2], [f64; 2]) {
    let n = p.len() as f64;
    let m = [p.iter().map(|q| q[0]).sum::<f64>() / n, p.iter().map(|q| q[1]).sum::<f64>() / n];
    let v = [
        p.iter().map(|q| (q[0] - m[0]).powi(2)).sum::<f64>() / n,
        p.iter().map(|q| (q[1] - m[1]).powi(2)).sum::<f64>() / n,
    ];
    (m, v)
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-methods-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// MLP (hidden 128, 3 blocks), batch 256, AdamW 2e-3 with 100 warm-up steps, EMA 0.999.
pub fn moons_config(method: Method, steps: usize) -> TrainConfig {
    let mut c = TrainConfig::new("moons", ModelConfig::Mlp(MlpConfig::new(2)), method);
    c.steps = steps;
    c.batch_size = 256;
    c.lr = 2e-3;
    c.warmup_steps = 100;
    c.grad_clip = Some(1.0);
    c.log_every = 250;
    c.checkpoint_every = 100_000;
    c.seed = 7;
    c
}

/// Train `method` on 8192 moons points for `steps` steps; returns the loaded (EMA) run and the
/// logged losses.
pub fn train(tag: &str, method: Method, steps: usize) -> (LoadedRun, Vec<f64>, PathBuf) {
    let dir = temp_dir(tag);
    let t0 = Instant::now();
    let mut tr = Trainer::create(&dir, moons_config(method, steps), moons(8192, 1)).unwrap();
    tr.run(&mut NoObserver).unwrap();
    let losses: Vec<f64> =
        rediffuse_train::read_metrics(&dir.join("metrics.jsonl")).unwrap().iter().map(|r| r.loss).collect();
    println!("[{tag}] trained {steps} steps in {:.1} s, losses {losses:.3?}", t0.elapsed().as_secs_f64());
    (load_run(&dir, true, &Device::Cpu).unwrap(), losses, dir)
}

/// One specification of every sampler at moderate cost; `langevin_eps` is the last-level step.
pub fn all_specs(langevin_eps: f64) -> Vec<SamplerSpec> {
    vec![
        SamplerSpec::Ddpm(DdpmOptions::default()),
        SamplerSpec::Ddim(DdimOptions {
            steps: 50,
            eta: 0.0,
            spacing: TimestepSpacing::Trailing,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        }),
        SamplerSpec::Langevin {
            sigma_min: None,
            levels: None,
            steps_per_level: 20,
            step_eps: langevin_eps,
            final_denoise: true,
        },
        SamplerSpec::EulerMaruyama { steps: 500, eps: None, denoise: true },
        SamplerSpec::Pc {
            steps: 250,
            snr: 0.16,
            corrector_steps: 1,
            predictor: Predictor::ReverseDiffusion,
            eps: None,
            denoise: true,
        },
        SamplerSpec::OdeEuler { steps: 200, eps: None, denoise: true },
        SamplerSpec::OdeHeun { steps: 50, eps: None, denoise: true },
        SamplerSpec::OdeRk45 { rtol: 1e-3, atol: 1e-3, eps: None, denoise: true },
        SamplerSpec::DpmSolver { steps: 40, order: 2, algorithm: Default::default() },
        SamplerSpec::DpmPp2m { steps: 25 },
        SamplerSpec::DpmPp3m { steps: 25 },
        SamplerSpec::Euler { steps: 100 },
        SamplerSpec::Heun { steps: 30 },
        SamplerSpec::EdmHeun { steps: 30, rho: 7.0 },
        SamplerSpec::EdmStochastic {
            steps: 40,
            rho: 7.0,
            s_churn: 20.0,
            s_tmin: 0.01,
            s_tmax: 10.0,
            s_noise: 1.0,
        },
    ]
}

/// Cheap versions of every sampler for smoke tests (few steps, except DDPM which runs all T).
pub fn smoke_specs() -> Vec<SamplerSpec> {
    vec![
        SamplerSpec::Ddpm(DdpmOptions::default()),
        SamplerSpec::Ddim(DdimOptions {
            steps: 25,
            eta: 1.0,
            spacing: TimestepSpacing::Trailing,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        }),
        // 20 levels down to σ_L = 0.02 (inside every frame), α_L = 0.5·σ_L²
        SamplerSpec::Langevin {
            sigma_min: Some(0.02),
            levels: Some(20),
            steps_per_level: 10,
            step_eps: 2e-4,
            final_denoise: true,
        },
        SamplerSpec::EulerMaruyama { steps: 200, eps: None, denoise: true },
        SamplerSpec::Pc {
            steps: 100,
            snr: 0.16,
            corrector_steps: 1,
            predictor: Predictor::ReverseDiffusion,
            eps: None,
            denoise: true,
        },
        SamplerSpec::OdeEuler { steps: 100, eps: None, denoise: true },
        SamplerSpec::OdeHeun { steps: 25, eps: None, denoise: true },
        SamplerSpec::OdeRk45 { rtol: 1e-3, atol: 1e-3, eps: None, denoise: true },
        SamplerSpec::DpmSolver { steps: 30, order: 3, algorithm: Default::default() },
        SamplerSpec::DpmPp2m { steps: 15 },
        SamplerSpec::DpmPp3m { steps: 15 },
        SamplerSpec::Euler { steps: 50 },
        SamplerSpec::Heun { steps: 18 },
        SamplerSpec::EdmHeun { steps: 18, rho: 7.0 },
        SamplerSpec::EdmStochastic {
            steps: 25,
            rho: 7.0,
            s_churn: 10.0,
            s_tmin: 0.01,
            s_tmax: 10.0,
            s_noise: 1.0,
        },
    ]
}

/// Outcome of one sampler on one trained family.
pub struct SamplerResult {
    pub name: &'static str,
    pub swd: f64,
    pub nfe: usize,
    pub secs: f64,
    pub mean: [f64; 2],
    pub var: [f64; 2],
}

/// Run every spec on the model with `n` samples, printing SWD to held-out moons, NFE and time;
/// asserts finite output and roughly right moments: means within `mean_tol` and variances within
/// ±`var_tol` (relative) of the held-out set's.
pub fn run_all(
    tag: &str,
    model: &SampleModel<'_>,
    specs: &[SamplerSpec],
    n: usize,
    mean_tol: f64,
    var_tol: f64,
) -> Vec<SamplerResult> {
    let held = rows(&moons(n, 1001));
    let (hm, hv) = moments(&held);
    let mut out = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        let t0 = Instant::now();
        let mut noise = NoiseSource::new(500 + k as u64, 0, n);
        let (x, st) = sample(spec, model, None, &[2], &Device::Cpu, &mut noise, None)
            .unwrap_or_else(|e| panic!("[{tag}] {}: {e}", spec.name()));
        let secs = t0.elapsed().as_secs_f64();
        let p = rows(&x);
        assert!(
            p.iter().all(|q| q[0].is_finite() && q[1].is_finite()),
            "[{tag}] {}: non-finite",
            spec.name()
        );
        let (m, v) = moments(&p);
        let swd = sliced_w2(&p, &held, 128, 3);
        println!(
            "[{tag}] {:<15} swd {swd:.4}  nfe {:>5}  {secs:>6.2} s  mean [{:.3}, {:.3}] var [{:.3}, {:.3}]",
            spec.name(),
            st.nfe,
            m[0],
            m[1],
            v[0],
            v[1]
        );
        for a in 0..2 {
            assert!((m[a] - hm[a]).abs() < mean_tol, "[{tag}] {}: mean {m:?} vs {hm:?}", spec.name());
            assert!((v[a] / hv[a] - 1.0).abs() < var_tol, "[{tag}] {}: var {v:?} vs {hv:?}", spec.name());
        }
        out.push(SamplerResult { name: spec.name(), swd, nfe: st.nfe, secs, mean: m, var: v });
    }
    out
}

/// SWD between two independent held-out draws of `n` moons points (the noise floor).
pub fn reference_swd(n: usize) -> f64 {
    sliced_w2(&rows(&moons(n, 1001)), &rows(&moons(n, 1002)), 128, 3)
}
