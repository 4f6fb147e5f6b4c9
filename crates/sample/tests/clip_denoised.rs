//! `SampleModel::with_clip_denoised`: every σ-space sampler sees D(x; σ) clamped to the limit, so
//! samplers ending on a denoised estimate return samples inside it, while likelihoods ignore it.

mod continuous_util;

use candle_core::{DType, Device, Tensor};
use continuous_util::gaussian;
use rediffuse_core::sde::Sde;
use rediffuse_core::NoiseSource;
use rediffuse_sample::continuous::{Divergence, Predictor, UniPcOptions};
use rediffuse_sample::dispatch::{nll_ode, sample, Frame, NllOptions, SampleModel, SamplerSpec};
use rediffuse_sample::{DdimOptions, TimestepSpacing};

const N: usize = 500;
const LIMIT: f64 = 0.5;

/// The σ-space samplers; `true`: the returned sample is the last denoised estimate itself
/// (`false`: a last step towards it, e.g. the noise-free predictor step of the SDE samplers'
/// `denoise`, or a multistep combination of several estimates).
fn specs() -> Vec<(SamplerSpec, bool)> {
    vec![
        (
            SamplerSpec::Langevin {
                sigma_min: None,
                levels: Some(10),
                steps_per_level: 20,
                step_eps: 1e-4,
                final_denoise: true,
            },
            true,
        ),
        (SamplerSpec::EulerMaruyama { steps: 200, eps: None, denoise: true }, false),
        (
            SamplerSpec::Pc {
                steps: 100,
                snr: 0.16,
                corrector_steps: 1,
                predictor: Predictor::ReverseDiffusion,
                eps: None,
                denoise: true,
            },
            false,
        ),
        (SamplerSpec::OdeHeun { steps: 50, eps: None, denoise: true }, true),
        (SamplerSpec::OdeRk45 { rtol: 1e-4, atol: 1e-4, eps: None, denoise: true }, true),
        (SamplerSpec::EdmHeun { steps: 18, rho: 7.0 }, true),
        (
            SamplerSpec::EdmStochastic {
                steps: 30,
                rho: 7.0,
                s_churn: 20.0,
                s_tmin: 0.01,
                s_tmax: 10.0,
                s_noise: 1.0,
            },
            true,
        ),
        (SamplerSpec::DpmSolver { steps: 20, order: 2, algorithm: Default::default() }, false),
        (SamplerSpec::DpmPp2m { steps: 20 }, false),
        (SamplerSpec::DpmPp3m { steps: 20 }, false),
        (SamplerSpec::UniPc { steps: 20, options: UniPcOptions::default() }, false),
    ]
}

/// The exact Gaussian denoiser in the VP frame, plain and with D clipped to `clip`.
fn vp_model(data: &rediffuse_sample::continuous::GaussianData, clip: Option<f64>) -> SampleModel<'_> {
    let frame = Frame::for_sde(Sde::vp(), 1e-3).unwrap();
    SampleModel::from_sigma(data, frame, 1000).unwrap().with_clip_denoised(clip).unwrap()
}

fn max_abs_and_outside(x: &Tensor) -> (f64, f64) {
    let v: Vec<f64> = x.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let max = v.iter().fold(0.0f64, |m, p| m.max(p.abs()));
    let outside = v.iter().filter(|p| p.abs() > LIMIT + 1e-6).count() as f64 / v.len() as f64;
    (max, outside)
}

/// N((1, −0.5), Σ) has most of its mass outside [−0.5, 0.5]²: unclipped samples leave the box,
/// clipped ones stay in it — exactly for samplers ending on D, within a small multistep
/// extrapolation for DPM-Solver(++) and UniPC. DDIM keeps its own `clip_x0` option.
#[test]
fn clipped_denoiser_keeps_every_sampler_in_range() {
    let data = gaussian();
    let (plain, clipped) = (vp_model(&data, None), vp_model(&data, Some(LIMIT)));
    for (k, (spec, ends_on_d)) in specs().iter().enumerate() {
        let run = |m: &SampleModel<'_>| {
            let mut noise = NoiseSource::new(20 + k as u64, 0, N);
            sample(spec, m, None, &[2], &Device::Cpu, &mut noise, None).unwrap().0
        };
        let (pmax, pout) = max_abs_and_outside(&run(&plain));
        let (cmax, cout) = max_abs_and_outside(&run(&clipped));
        println!(
            "{:<15} plain max {pmax:.3} outside {pout:.3}; clipped max {cmax:.4} outside {cout:.4}",
            spec.name()
        );
        assert!(pout > 0.3, "{}: the plain model should leave the box ({pout})", spec.name());
        if *ends_on_d {
            assert!(cmax <= LIMIT * (1.0 + 1e-6), "{}: clipped max {cmax}", spec.name());
        } else {
            assert!(
                cmax <= LIMIT + 0.05 && cout < 0.05,
                "{}: clipped max {cmax}, outside {cout}",
                spec.name()
            );
        }
    }
    // DDIM is a discrete sampler: the model-level clamp leaves it to its own clip_x0
    let ddim = SamplerSpec::Ddim(DdimOptions {
        steps: 20,
        eta: 0.0,
        spacing: TimestepSpacing::Trailing,
        clip_x0: None,
        clipped_model_output: false,
        stride_prev: false,
    });
    let run = |m: &SampleModel<'_>| {
        sample(&ddim, m, None, &[2], &Device::Cpu, &mut NoiseSource::new(3, 0, N), None).unwrap().0
    };
    let (a, b) = (run(&plain), run(&clipped));
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
}

/// The ODE likelihood uses the plain model; bad limits are refused.
#[test]
fn likelihood_ignores_the_clamp_and_bad_limits_are_errors() {
    let data = gaussian();
    let (plain, clipped) = (vp_model(&data, None), vp_model(&data, Some(LIMIT)));
    let x = Tensor::new(&[[1.0f32, -0.5], [2.0, 0.3], [-0.4, -1.7]], &Device::Cpu).unwrap();
    let opts = NllOptions::new(Divergence::Exact);
    let a = nll_ode(&plain, &x, &opts, &mut NoiseSource::new(1, 0, 3)).unwrap();
    let b = nll_ode(&clipped, &x, &opts, &mut NoiseSource::new(1, 0, 3)).unwrap();
    assert_eq!(a.nll_nats_per_sample, b.nll_nats_per_sample);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let frame = Frame::for_sde(Sde::vp(), 1e-3).unwrap();
        let model = SampleModel::from_sigma(&data, frame, 1000).unwrap();
        assert!(model.with_clip_denoised(Some(bad)).is_err(), "{bad}");
    }
}
