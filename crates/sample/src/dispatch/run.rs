//! [`sample`]: draw x_T at the family's scale and run the chosen sampler.

use super::{invalid, DispatchError, Result, SampleModel, SamplerSpec};
use crate::continuous::unipc_multistep;
use crate::continuous::{
    annealed_langevin, dpm_solver_singlestep, dpmpp_multistep, edm_heun, edm_stochastic, euler,
    ode_fixed_step, ode_rk45, pc_sample, AnnealedLangevin, ClampDenoised, Corrector, EdmChurn, OdeMethod,
    PcConfig, Predictor, Rk45Options, SampleStats, SigmaDenoiser, SnrNorms,
};
use crate::ddim::ddim_sample;
use crate::ddpm::ddpm_sample;
use crate::learned_variance::{learned_variance_sample, space_timesteps, LearnedVarianceOptions};
use candle_core::{DType, Device, Tensor};
use rediffuse_core::vlb::VarianceMode;
use rediffuse_core::NoiseSource;

/// Progress of a sampler, after each step.
pub struct Progress<'a> {
    /// 1-based number of steps done.
    pub step: usize,
    /// Total steps, where known in advance (not for adaptive RK45, which reports nothing).
    pub total: Option<usize>,
    /// Current state.
    pub x: &'a Tensor,
    /// The model's denoised estimate at this step, where the sampler has one.
    pub denoised: Option<&'a Tensor>,
}

/// Progress callback of [`sample`].
pub type OnStep<'a> = Option<&'a mut dyn FnMut(&Progress<'_>)>;

/// Run `spec` on `model` for `noise.len()` samples of shape `sample_shape` on `device`.
/// `init`: unit-variance z `[B, sample_shape…]` (B = `noise.len()`); `None` draws z from `noise`
/// first. x_T = `spec.prior_scale(model)`·z; the samplers' own noise comes from `noise` after that.
/// Returns the samples (f32) and the cost (NFE counts batched model calls).
pub fn sample(
    spec: &SamplerSpec,
    model: &SampleModel<'_>,
    init: Option<&Tensor>,
    sample_shape: &[usize],
    device: &Device,
    noise: &mut NoiseSource,
    mut on_step: OnStep<'_>,
) -> Result<(Tensor, SampleStats)> {
    if noise.is_empty() {
        return Err(DispatchError::Shape("the noise source serves no samples".into()));
    }
    let mut want = vec![noise.len()];
    want.extend_from_slice(sample_shape);
    let z = match init {
        Some(z) => {
            if z.dims() != want.as_slice() {
                return Err(DispatchError::Shape(format!(
                    "initial noise has shape {:?}, expected {want:?}",
                    z.dims()
                )));
            }
            z.to_dtype(DType::F32)?.to_device(device)?
        }
        None => noise.randn(sample_shape, device)?,
    };
    // the σ grid (σ-space samplers), computed once for the prior scale, the sampler and its end
    let sigma_grid = spec.sigma_grid(model)?;
    let x = z.affine(spec.prior_scale_on(model, sigma_grid.as_deref())?, 0.0)?;
    let f = &model.frame;
    let eps_of = |e: &Option<f64>| e.unwrap_or(f.eps);
    let clamped = model.clip_denoised.map(|limit| ClampDenoised { model: &model.sigma, limit });
    let sigma_dyn: &dyn SigmaDenoiser = match &clamped {
        Some(c) => c,
        None => &model.sigma,
    };
    let sigma = &sigma_dyn;
    let grid = || -> Result<Vec<f64>> {
        sigma_grid.clone().ok_or_else(|| invalid("sampler", "not a σ-space sampler"))
    };
    let (out, stats) = match spec {
        SamplerSpec::Ddpm(opts) => {
            let n = model.schedule.len();
            let mut cb = |s: &crate::step::StepInfo<'_>| {
                if let Some(c) = on_step.as_mut() {
                    c(&Progress { step: s.step + 1, total: Some(n), x: s.x_t, denoised: Some(s.x0_pred) });
                }
            };
            let out = ddpm_sample(model.discrete.as_ref(), &model.schedule, x, opts, noise, Some(&mut cb))?;
            (out, SampleStats { nfe: n, steps: n, rejected_steps: 0 })
        }
        SamplerSpec::Ddim(opts) => {
            let n = opts.steps;
            let mut cb = |s: &crate::step::StepInfo<'_>| {
                if let Some(c) = on_step.as_mut() {
                    c(&Progress { step: s.step + 1, total: Some(n), x: s.x_t, denoised: Some(s.x0_pred) });
                }
            };
            let out = ddim_sample(model.discrete.as_ref(), &model.schedule, x, opts, noise, Some(&mut cb))?;
            (out, SampleStats { nfe: n, steps: n, rejected_steps: 0 })
        }
        SamplerSpec::DdpmLearned { steps, clip_x0 } => {
            let full = model.learned.as_deref().ok_or_else(|| {
                invalid(
                    "sampler",
                    "ddpm-learned needs a model with learned variances (an iddpm run); use ddpm or ddim",
                )
            })?;
            let t_len = model.schedule.len();
            let use_ts = match steps {
                Some(k) if *k == 0 || *k > t_len => {
                    return Err(invalid("steps", format!("must lie in 1..={t_len}, got {k}")))
                }
                Some(k) => Some(space_timesteps(t_len, &[*k])?),
                None => None,
            };
            let n = use_ts.as_ref().map_or(t_len, |t| t.len());
            let opts = LearnedVarianceOptions { variance: VarianceMode::LearnedRange, clip_x0: *clip_x0 };
            let mut cb = |s: &crate::step::StepInfo<'_>| {
                if let Some(c) = on_step.as_mut() {
                    c(&Progress { step: s.step + 1, total: Some(n), x: s.x_t, denoised: Some(s.x0_pred) });
                }
            };
            let out = learned_variance_sample(
                full,
                &model.schedule,
                use_ts.as_deref(),
                x,
                &opts,
                noise,
                Some(&mut cb),
            )?;
            (out, SampleStats { nfe: n, steps: n, rejected_steps: 0 })
        }
        SamplerSpec::Langevin { levels, sigma_min, steps_per_level, step_eps, final_denoise } => {
            let sigmas = model.langevin_levels(*levels, *sigma_min)?;
            let total = sigmas.len() * steps_per_level;
            let cfg = AnnealedLangevin {
                sigmas,
                steps_per_level: *steps_per_level,
                eps: *step_eps,
                final_denoise: *final_denoise,
            };
            let mut cb = relay(&mut on_step, Some(total));
            annealed_langevin(sigma, &x, &cfg, noise, Some(cb.as_mut()))?
        }
        SamplerSpec::EulerMaruyama { steps, eps, denoise } => {
            let cfg = PcConfig {
                steps: *steps,
                eps: eps_of(eps),
                predictor: Predictor::EulerMaruyama,
                corrector: Corrector::None,
                denoise: *denoise,
            };
            let mut cb = relay(&mut on_step, Some(*steps));
            pc_sample(sigma, &f.sde, &x, &cfg, noise, Some(cb.as_mut()))?
        }
        SamplerSpec::Pc { steps, snr, corrector_steps, predictor, eps, denoise } => {
            let cfg = PcConfig {
                steps: *steps,
                eps: eps_of(eps),
                predictor: *predictor,
                corrector: Corrector::Langevin {
                    snr: *snr,
                    steps: *corrector_steps,
                    norms: SnrNorms::BatchMean,
                },
                denoise: *denoise,
            };
            let mut cb = relay(&mut on_step, Some(*steps));
            pc_sample(sigma, &f.sde, &x, &cfg, noise, Some(cb.as_mut()))?
        }
        SamplerSpec::OdeEuler { steps, eps, denoise } | SamplerSpec::OdeHeun { steps, eps, denoise } => {
            let method =
                if matches!(spec, SamplerSpec::OdeEuler { .. }) { OdeMethod::Euler } else { OdeMethod::Heun };
            let mut cb = relay(&mut on_step, Some(*steps));
            ode_fixed_step(sigma, &f.sde, &x, method, *steps, eps_of(eps), *denoise, Some(cb.as_mut()))?
        }
        SamplerSpec::OdeRk45 { rtol, atol, eps, denoise } => {
            let opts = Rk45Options { rtol: *rtol, atol: *atol, ..Rk45Options::default() };
            let (out, stats, _) = ode_rk45(sigma, &f.sde, &x, eps_of(eps), &opts, *denoise)?;
            (out, stats)
        }
        SamplerSpec::DpmSolver { steps, order, algorithm } => {
            let mut cb = relay(&mut on_step, Some(*steps));
            dpm_solver_singlestep(sigma, &x, &grid()?, *order, *algorithm, Some(cb.as_mut()))?
        }
        SamplerSpec::DpmPp2m { steps } | SamplerSpec::DpmPp3m { steps } => {
            let order = if matches!(spec, SamplerSpec::DpmPp2m { .. }) { 2 } else { 3 };
            let mut cb = relay(&mut on_step, Some(*steps));
            dpmpp_multistep(sigma, &x, &grid()?, order, Some(cb.as_mut()))?
        }
        SamplerSpec::UniPc { steps, options } => {
            let mut cb = relay(&mut on_step, Some(*steps));
            unipc_multistep(sigma, &x, &grid()?, options, Some(cb.as_mut()))?
        }
        SamplerSpec::Euler { steps } => {
            let mut cb = relay(&mut on_step, Some(*steps));
            euler(sigma, &x, &grid()?, Some(cb.as_mut()))?
        }
        SamplerSpec::Heun { steps } | SamplerSpec::EdmHeun { steps, .. } => {
            let mut cb = relay(&mut on_step, Some(*steps));
            edm_heun(sigma, &x, &grid()?, Some(cb.as_mut()))?
        }
        SamplerSpec::Consistency { steps } => {
            let g = grid()?;
            crate::continuous::consistency_sample(sigma, &x, &g[..*steps], f.sigma_min, noise)?
        }
        SamplerSpec::EdmStochastic { steps, s_churn, s_tmin, s_tmax, s_noise, .. } => {
            let churn = EdmChurn { s_churn: *s_churn, s_tmin: *s_tmin, s_tmax: *s_tmax, s_noise: *s_noise };
            let mut cb = relay(&mut on_step, Some(*steps));
            edm_stochastic(sigma, &x, &grid()?, &churn, noise, Some(cb.as_mut()))?
        }
    };
    // A σ grid ending above 0 (`FinalSigma::SigmaMin`) leaves the state at σ_min: report it in the
    // frame's own coordinates, x_t = x̃/√(1 + σ²) for VP frames (what diffusers' DPM schedulers return).
    let last = sigma_grid.as_ref().and_then(|g| g.last().copied()).filter(|&s| s > 0.0);
    let out = match (last, f.sde) {
        (Some(s), rediffuse_core::sde::Sde::Vp { .. }) => out.affine(1.0 / (1.0 + s * s).sqrt(), 0.0)?,
        _ => out,
    };
    Ok((out, stats))
}

/// Forward a continuous sampler's step information to the caller's callback.
fn relay<'b, 'c: 'b>(
    on_step: &'b mut OnStep<'c>,
    total: Option<usize>,
) -> Box<dyn FnMut(&crate::continuous::StepInfo<'_>) + 'b> {
    Box::new(move |info| {
        if let Some(c) = on_step.as_mut() {
            c(&Progress { step: info.step, total, x: info.x, denoised: info.denoised });
        }
    })
}
