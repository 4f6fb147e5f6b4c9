//! `dispatch::sample` and `dispatch::nll_ode` with exact Gaussian denoisers: every sampler
//! specification recovers (μ, Σ) in every frame, from σ-space and from discrete analytic models;
//! prior scaling and initial noise are consistent; the ODE likelihood is the closed form.

mod continuous_util;

use candle_core::{DType, Device, Tensor};
use continuous_util::{check_moments, gaussian, rows};
use rediffuse_core::analytic::GaussianDenoiser;
use rediffuse_core::sde::Sde;
use rediffuse_core::{BetaSchedule, DiffusionSchedule, NoiseSource};
use rediffuse_sample::continuous::{
    ode_log_likelihood, Divergence, LikelihoodOptions, Predictor, UniPcOptions, UniPcVariant,
};
use rediffuse_sample::dispatch::{
    nll_ode, sample, sigma_grid_schedule, DispatchError, Frame, NllOptions, Progress, SampleModel,
    SamplerSpec,
};
use rediffuse_sample::{DdimOptions, DdpmOptions, TimestepSpacing};

const N: usize = 2000;

/// One specification of every sampler, with step counts where the discretisation error is small.
fn all_specs() -> Vec<SamplerSpec> {
    vec![
        SamplerSpec::Ddpm(DdpmOptions::default()),
        SamplerSpec::Ddim(DdimOptions {
            steps: 100,
            eta: 0.0,
            spacing: TimestepSpacing::Trailing,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        }),
        // α_L = 0.5·σ_L² (the frame's σ_min is set by `for_frame`)
        SamplerSpec::Langevin {
            sigma_min: None,
            levels: Some(30),
            steps_per_level: 100,
            step_eps: 0.5,
            final_denoise: true,
        },
        SamplerSpec::EulerMaruyama { steps: 1000, eps: None, denoise: true },
        SamplerSpec::Pc {
            steps: 500,
            snr: 0.16,
            corrector_steps: 1,
            predictor: Predictor::ReverseDiffusion,
            eps: None,
            denoise: true,
        },
        SamplerSpec::OdeEuler { steps: 500, eps: None, denoise: true },
        SamplerSpec::OdeHeun { steps: 100, eps: None, denoise: true },
        SamplerSpec::OdeRk45 { rtol: 1e-4, atol: 1e-4, eps: None, denoise: true },
        SamplerSpec::DpmSolver { steps: 20, order: 3, algorithm: Default::default() },
        SamplerSpec::DpmPp2m { steps: 30 },
        SamplerSpec::DpmPp3m { steps: 20 },
        SamplerSpec::UniPc { steps: 20, options: UniPcOptions::default() },
        SamplerSpec::UniPc {
            steps: 20,
            options: UniPcOptions { order: 3, variant: UniPcVariant::Bh1, ..UniPcOptions::default() },
        },
        SamplerSpec::EdmHeun { steps: 40, rho: 7.0 },
        SamplerSpec::EdmStochastic {
            steps: 60,
            rho: 7.0,
            s_churn: 40.0,
            s_tmin: 0.05,
            s_tmax: 50.0,
            s_noise: 1.003,
        },
    ]
}

/// Scale the Langevin step to the model's smallest level (`step_eps` given in units of σ_min²).
fn for_frame(spec: &SamplerSpec, frame: &Frame) -> SamplerSpec {
    match spec.clone() {
        SamplerSpec::Langevin { sigma_min, levels, steps_per_level, step_eps, final_denoise } => {
            SamplerSpec::Langevin {
                sigma_min,
                levels,
                steps_per_level,
                step_eps: step_eps * frame.sigma_min.powi(2),
                final_denoise,
            }
        }
        other => other,
    }
}

fn run(spec: &SamplerSpec, model: &SampleModel<'_>, seed: u64) -> (Tensor, usize) {
    let spec = &for_frame(spec, model.frame());
    let mut noise = NoiseSource::new(seed, 0, N);
    let (x, st) = sample(spec, model, None, &[2], &Device::Cpu, &mut noise, None).unwrap();
    (x, st.nfe)
}

/// σ-space exact denoiser in the VP, VE and sub-VP frames: every sampler's mean and covariance are
/// within 4 Monte-Carlo standard errors + 4% (bias allowance) of N(μ, Σ).
#[test]
fn every_spec_recovers_moments_in_every_frame() {
    let data = gaussian();
    for (label, frame) in [
        ("vp", Frame::for_sde(Sde::vp(), 1e-3).unwrap()),
        ("ve", Frame::for_sde(Sde::ve(), 1e-5).unwrap()),
        ("subvp", Frame::for_sde(Sde::sub_vp(), 1e-3).unwrap()),
    ] {
        let model = SampleModel::from_sigma(&data, frame, 1000).unwrap();
        for (k, spec) in all_specs().iter().enumerate() {
            let (x, nfe) = run(spec, &model, 10 + k as u64);
            println!("{label}/{} nfe {nfe}", spec.name());
            check_moments(&format!("{label}/{}", spec.name()), &x, &data, 0.04);
        }
    }
}

/// The core (discrete-time) analytic Gaussian denoiser on the DDPM linear schedule reaches every
/// sampler through `SampleModel::from_discrete` (continuous samplers via `DiscreteModel` in the
/// schedule's fitted VP frame).
#[test]
fn discrete_analytic_denoiser_runs_every_spec() {
    let data = gaussian();
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let cov = vec![vec![1.0, 0.6], vec![0.6, 0.8]];
    let den = GaussianDenoiser::new(data.mean().to_vec(), cov, &sch).unwrap();
    let model = SampleModel::from_discrete(&den, sch).unwrap();
    let f = model.frame();
    // The fitted VP SDE of the linear schedule is Song et al.'s β ∈ [0.1, 20] up to discretisation.
    match f.sde {
        Sde::Vp { beta_min, beta_max } => {
            assert!((beta_min - 0.1).abs() < 1e-9 && (beta_max - 20.0).abs() < 0.2, "{beta_min} {beta_max}")
        }
        other => panic!("expected VP, got {other:?}"),
    }
    assert!((f.sde.sigma(1.0) - f.sigma_max).abs() < 1e-9 * f.sigma_max);
    assert!((f.sde.sigma(f.eps) - f.sigma_min).abs() < 1e-9);
    for (k, spec) in all_specs().iter().enumerate() {
        let (x, nfe) = run(spec, &model, 40 + k as u64);
        println!("discrete-analytic/{} nfe {nfe}", spec.name());
        check_moments(&format!("discrete-analytic/{}", spec.name()), &x, &data, 0.04);
    }
}

/// An index-based analytic denoiser on a fine σ grid (`sigma_grid_schedule`) samples correctly as a
/// continuous model in the VE and sub-VP frames; a frame outside the grid is refused.
#[test]
fn analytic_on_sigma_grid_in_continuous_frames() {
    let data = gaussian();
    let cov = vec![vec![1.0, 0.6], vec![0.6, 0.8]];
    for frame in [Frame::for_sde(Sde::ve(), 1e-5).unwrap(), Frame::for_sde(Sde::sub_vp(), 1e-3).unwrap()] {
        let sch = sigma_grid_schedule(frame.sigma_min, frame.sigma_max, 2000).unwrap();
        let den = GaussianDenoiser::new(data.mean().to_vec(), cov.clone(), &sch).unwrap();
        let model = SampleModel::from_discrete_in(&den, sch.clone(), frame).unwrap();
        assert_eq!(model.frame(), &frame);
        for (k, spec) in [
            SamplerSpec::EulerMaruyama { steps: 500, eps: None, denoise: true },
            SamplerSpec::OdeRk45 { rtol: 1e-4, atol: 1e-4, eps: None, denoise: true },
            SamplerSpec::EdmHeun { steps: 40, rho: 7.0 },
            SamplerSpec::Ddim(DdimOptions {
                steps: 100,
                eta: 1.0,
                spacing: TimestepSpacing::Trailing,
                clip_x0: None,
                clipped_model_output: false,
                stride_prev: false,
            }),
        ]
        .iter()
        .enumerate()
        {
            let (x, _) = run(spec, &model, 70 + k as u64);
            check_moments(&format!("grid-{}/{}", frame.sde.name(), spec.name()), &x, &data, 0.04);
        }
        let wider = Frame { sigma_max: frame.sigma_max * 2.0, ..frame };
        assert!(SampleModel::from_discrete_in(&den, sch, wider).is_err());
    }
}

/// x_T = prior_scale·z: a caller-supplied z gives exactly the run that draws z from the same
/// streams, for deterministic samplers; the scales are 1 (DDPM family), the SDE prior std, σ₁
/// (Langevin) or σ_max (σ-space samplers); progress reports count the steps.
#[test]
fn init_noise_and_prior_scales() {
    let data = gaussian();
    let frame = Frame::for_sde(Sde::ve(), 1e-5).unwrap();
    let model =
        SampleModel::from_sigma(&data, frame, 1000).unwrap().with_levels(vec![7.0, 1.0, 0.1]).unwrap();
    let n = 64;
    let z = NoiseSource::new(5, 0, n).randn(&[2], &Device::Cpu).unwrap();
    for spec in [
        SamplerSpec::Ddim(DdimOptions { steps: 20, ..DdimOptions::default() }),
        SamplerSpec::OdeHeun { steps: 10, eps: None, denoise: false },
        SamplerSpec::EdmHeun { steps: 10, rho: 7.0 },
        SamplerSpec::DpmPp2m { steps: 10 },
    ] {
        let mut steps = Vec::new();
        let mut cb = |p: &Progress<'_>| steps.push((p.step, p.total));
        let mut a_noise = NoiseSource::new(5, 0, n);
        let (a, _) = sample(&spec, &model, None, &[2], &Device::Cpu, &mut a_noise, Some(&mut cb)).unwrap();
        let mut b_noise = NoiseSource::new(99, 0, n);
        let (b, _) = sample(&spec, &model, Some(&z), &[2], &Device::Cpu, &mut b_noise, None).unwrap();
        assert_eq!(rows(&a), rows(&b), "{}", spec.name());
        let total = steps.last().unwrap().1.unwrap();
        assert_eq!(steps.len(), total, "{}", spec.name());
        assert_eq!(steps.last().unwrap().0, total, "{}", spec.name());
    }
    let scale = |s: SamplerSpec| s.prior_scale(&model).unwrap();
    assert_eq!(scale(SamplerSpec::Ddpm(DdpmOptions::default())), 1.0);
    assert_eq!(scale(SamplerSpec::EulerMaruyama { steps: 10, eps: None, denoise: true }), 50.0);
    assert_eq!(scale(SamplerSpec::EdmHeun { steps: 10, rho: 7.0 }), frame.sigma_max);
    let langevin = |levels| SamplerSpec::Langevin {
        sigma_min: None,
        levels,
        steps_per_level: 1,
        step_eps: 1e-5,
        final_denoise: false,
    };
    assert_eq!(scale(langevin(None)), 7.0);
    assert!((scale(langevin(Some(5))) - frame.sigma_max).abs() < 1e-9);
    let levels = model.langevin_levels(Some(4), Some(0.1)).unwrap();
    assert_eq!(levels.len(), 4);
    assert!((levels[0] - frame.sigma_max).abs() < 1e-9 && (levels[3] - 0.1).abs() < 1e-12);
    let vp = SampleModel::from_sigma(&data, Frame::for_sde(Sde::vp(), 1e-3).unwrap(), 1000).unwrap();
    assert_eq!(SamplerSpec::OdeEuler { steps: 10, eps: None, denoise: true }.prior_scale(&vp).unwrap(), 1.0);
}

/// ODE likelihood with the exact divergence: in the VE frame, the change-of-variables term plus the
/// true log p_1 of the latents equals the closed-form log N(μ, Σ + s(ε)²I) to 1e-3 nats per sample
/// (f64), and the reported NLL differs from it only by the prior mismatch log N(0, 50²I) − log p_1;
/// in the VP frame it is exactly `ode_log_likelihood`'s value. The image path adds bits/dim.
#[test]
fn nll_ode_matches_closed_form() {
    let data = gaussian();
    let x = Tensor::new(&[[1.0f64, -0.5], [2.0, 0.3], [-0.4, -1.6], [0.9, 0.9]], &Device::Cpu).unwrap();
    let flat: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
    let mut opts = NllOptions::new(Divergence::Exact);
    opts.rk45.rtol = 1e-8;
    opts.rk45.atol = 1e-8;
    let ve = Frame::for_sde(Sde::ve(), 1e-5).unwrap();
    let model = SampleModel::from_sigma(&data, ve, 1000).unwrap().with_dtype(DType::F64);
    let rep = nll_ode(&model, &x, &opts, &mut NoiseSource::new(1, 0, 4)).unwrap();
    let want = data.log_prob_sde(&flat, &ve.sde, ve.eps).unwrap();
    let p1 = data.log_prob_sde(&rep.latents, &ve.sde, 1.0).unwrap();
    for i in 0..4 {
        let ode = rep.delta_log_prob[i] + p1[i];
        assert!((ode - want[i]).abs() < 1e-3, "log p {ode} vs {}", want[i]);
        let prior = ve.sde.prior_log_prob(&rep.latents[2 * i..2 * i + 2]);
        let total = -(prior + rep.delta_log_prob[i]);
        assert!((rep.nll_nats_per_sample[i] - total).abs() < 1e-12);
        assert!((rep.nll_nats_per_sample[i] + want[i]).abs() < 0.05, "prior mismatch too large");
    }
    let mean = -want.iter().sum::<f64>() / 4.0;
    assert!(rep.bits_per_dim.is_none() && rep.nfe > 0);
    println!("ve: nll {:.6} vs closed form {:.6}, nfe {}", rep.nll_nats, mean, rep.nfe);

    let vp = Frame::for_sde(Sde::vp(), 1e-3).unwrap();
    let model = SampleModel::from_sigma(&data, vp, 1000).unwrap().with_dtype(DType::F64);
    let rep = nll_ode(&model, &x, &opts, &mut NoiseSource::new(1, 0, 4)).unwrap();
    let lopts = LikelihoodOptions { eps: 1e-3, rk45: opts.rk45, divergence: Divergence::Exact };
    let direct = ode_log_likelihood(&data, &vp.sde, &x, &lopts, &mut NoiseSource::new(1, 0, 4)).unwrap();
    for (got, w) in rep.nll_nats_per_sample.iter().zip(&direct.log_likelihood) {
        assert_eq!(*got, -w);
    }

    let img = NllOptions { images: true, ..opts };
    let rep2 = nll_ode(&model, &x.affine(0.3, 0.0).unwrap(), &img, &mut NoiseSource::new(1, 0, 4)).unwrap();
    let bpd = rep2.bits_per_dim.unwrap();
    let per = rep2.bits_per_dim_per_sample.unwrap();
    assert!(bpd.is_finite() && per.len() == 4);
    assert!((per.iter().sum::<f64>() / 4.0 - bpd).abs() < 1e-12);
    // dequantised values lie within one pixel bin of the points: bits/dim is near the NLL's value
    for (b, n) in per.iter().zip(&rep2.nll_nats_per_sample) {
        let from_points = n / (2.0 * std::f64::consts::LN_2) + 7.0;
        assert!((b - from_points).abs() < 0.1, "{b} vs {from_points}");
    }
}

#[test]
fn specs_serialise_and_bad_inputs_are_errors() {
    for spec in all_specs() {
        let j = serde_json::to_string(&spec).unwrap();
        assert!(j.contains(&format!("\"kind\":\"{}\"", spec.name())), "{j}");
        assert_eq!(serde_json::from_str::<SamplerSpec>(&j).unwrap(), spec);
    }
    let minimal: SamplerSpec =
        serde_json::from_str(r#"{"kind":"edm-stochastic","steps":10,"s_churn":5}"#).unwrap();
    assert_eq!(
        minimal,
        SamplerSpec::EdmStochastic {
            steps: 10,
            rho: 7.0,
            s_churn: 5.0,
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            s_noise: 1.0
        }
    );
    let data = gaussian();
    let model = SampleModel::from_sigma(&data, Frame::for_sde(Sde::vp(), 1e-3).unwrap(), 100).unwrap();
    let mut noise = NoiseSource::new(0, 0, 4);
    let bad_z = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
    let spec = SamplerSpec::OdeEuler { steps: 4, eps: None, denoise: true };
    assert!(matches!(
        sample(&spec, &model, Some(&bad_z), &[2], &Device::Cpu, &mut noise, None),
        Err(DispatchError::Shape(_))
    ));
    for bad in [
        SamplerSpec::DpmSolver { steps: 1, order: 2, algorithm: Default::default() },
        SamplerSpec::DpmSolver { steps: 5, order: 4, algorithm: Default::default() },
        SamplerSpec::EdmHeun { steps: 5, rho: f64::NAN },
        SamplerSpec::Ddim(DdimOptions { steps: 500, ..DdimOptions::default() }),
        SamplerSpec::OdeHeun { steps: 5, eps: Some(2.0), denoise: true },
        SamplerSpec::Langevin {
            sigma_min: None,
            levels: Some(1),
            steps_per_level: 5,
            step_eps: 1e-5,
            final_denoise: false,
        },
        SamplerSpec::Langevin {
            sigma_min: Some(1e-9),
            levels: Some(5),
            steps_per_level: 5,
            step_eps: 1e-5,
            final_denoise: false,
        },
        SamplerSpec::Langevin {
            sigma_min: Some(1e9),
            levels: Some(5),
            steps_per_level: 5,
            step_eps: 1e-5,
            final_denoise: false,
        },
    ] {
        assert!(sample(&bad, &model, None, &[2], &Device::Cpu, &mut noise, None).is_err(), "{bad:?}");
    }
    assert!(Frame::for_sde(Sde::vp(), 0.0).is_err());
    assert!(Frame::ve(1.0, 0.5).is_err());
    let frame = Frame::for_sde(Sde::vp(), 1e-3).unwrap();
    assert!(SampleModel::from_sigma(&data, frame, 100).unwrap().with_levels(vec![1.0, 2.0]).is_err());
}
