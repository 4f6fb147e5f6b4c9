//! Every continuous sampler, driven by the exact denoiser of N(μ, Σ), reproduces (μ, Σ).

mod continuous_util;

use candle_core::DType;
use continuous_util::{check_moments, gaussian, start};
use rediffuse_core::sde::{geometric_sigmas, karras_sigmas, Sde};
use rediffuse_core::{BetaSchedule, DiffusionSchedule};
use rediffuse_sample::continuous::*;

const N: usize = 3000;

#[test]
fn annealed_langevin_recovers_moments() {
    let data = gaussian();
    let sigmas = geometric_sigmas(20.0, 0.01, 20).unwrap();
    let cfg = AnnealedLangevin { sigmas, steps_per_level: 100, eps: 1e-5, final_denoise: true };
    let (x, mut noise) = start(N, 20.0, 1, DType::F32);
    let (out, st) = annealed_langevin(&data, &x, &cfg, &mut noise, None).unwrap();
    assert_eq!(st.nfe, 20 * 100 + 1);
    check_moments("langevin", &out, &data, 0.03);
}

#[test]
fn reverse_sde_predictors_and_pc_recover_moments() {
    let data = gaussian();
    for (label, sde, pred, corr, steps) in [
        ("em-vp", Sde::vp(), Predictor::EulerMaruyama, Corrector::None, 1000),
        ("em-subvp", Sde::sub_vp(), Predictor::EulerMaruyama, Corrector::None, 1000),
        ("rd-ve", Sde::ve(), Predictor::ReverseDiffusion, Corrector::None, 1000),
        ("rd-vp", Sde::vp(), Predictor::ReverseDiffusion, Corrector::None, 1000),
        (
            "pc-ve",
            Sde::ve(),
            Predictor::ReverseDiffusion,
            Corrector::Langevin { snr: 0.16, steps: 1, norms: SnrNorms::BatchMean },
            500,
        ),
        (
            "pc-vp",
            Sde::vp(),
            Predictor::EulerMaruyama,
            Corrector::Langevin { snr: 0.16, steps: 1, norms: SnrNorms::BatchMean },
            500,
        ),
    ] {
        let (x, mut noise) = start(N, sde.prior_std(), 2, DType::F32);
        let cfg = PcConfig { steps, eps: sde.default_eps(), predictor: pred, corrector: corr, denoise: true };
        let (out, st) = pc_sample(&data, &sde, &x, &cfg, &mut noise, None).unwrap();
        let per = if corr == Corrector::None { 1 } else { 2 };
        assert_eq!(st.nfe, steps * per);
        check_moments(label, &out, &data, 0.03);
    }
}

#[test]
fn probability_flow_solvers_recover_moments() {
    let data = gaussian();
    for sde in [Sde::vp(), Sde::ve(), Sde::sub_vp()] {
        let (x, _) = start(N, sde.prior_std(), 3, DType::F32);
        let eps = sde.default_eps();
        let (o1, s1) = ode_fixed_step(&data, &sde, &x, OdeMethod::Euler, 500, eps, false, None).unwrap();
        assert_eq!(s1.nfe, 500);
        check_moments(&format!("ode-euler-{}", sde.name()), &o1, &data, 0.03);
        let (o2, s2) = ode_fixed_step(&data, &sde, &x, OdeMethod::Heun, 100, eps, false, None).unwrap();
        assert_eq!(s2.nfe, 200);
        check_moments(&format!("ode-heun-{}", sde.name()), &o2, &data, 0.03);
    }
    let sde = Sde::vp();
    let (x, _) = start(N, 1.0, 3, DType::F32);
    let opts = Rk45Options { rtol: 1e-4, atol: 1e-4, ..Default::default() };
    let (o3, s3, rk) = ode_rk45(&data, &sde, &x, 1e-3, &opts, false).unwrap();
    println!(
        "rk45 nfe {} mean per-sample nfe {:.1}",
        s3.nfe,
        rk.nfe_per_row.iter().sum::<usize>() as f64 / N as f64
    );
    assert!(s3.nfe > 10 && s3.nfe < 500);
    check_moments("ode-rk45-vp", &o3, &data, 0.03);
}

#[test]
fn dpm_solvers_and_edm_recover_moments() {
    let data = gaussian();
    let (x, mut noise) = start(N, 80.0, 4, DType::F32);
    let sig = karras_sigmas(18, 0.002, 80.0, 7.0).unwrap();
    let (o, st) = edm_heun(&data, &x, &sig, None).unwrap();
    assert_eq!(st.nfe, 35);
    check_moments("edm-heun-18", &o, &data, 0.03);
    let churn = EdmChurn { s_churn: 40.0, s_tmin: 0.05, s_tmax: 50.0, s_noise: 1.003 };
    let sig = karras_sigmas(40, 0.002, 80.0, 7.0).unwrap();
    let (o, st) = edm_stochastic(&data, &x, &sig, &churn, &mut noise, None).unwrap();
    assert_eq!(st.nfe, 79);
    check_moments("edm-stochastic-40", &o, &data, 0.03);
    // first order (DDIM) needs many more steps than the higher orders
    for (order, steps) in [(1, 100), (2, 20), (3, 20)] {
        let sig = karras_sigmas(steps, 0.002, 80.0, 7.0).unwrap();
        let (o, st) = dpm_solver(&data, &x, &sig, order, None).unwrap();
        assert_eq!(st.nfe, order * (steps - 1) + 1);
        check_moments(&format!("dpm-solver-{order}"), &o, &data, 0.03);
    }
    let sig = karras_sigmas(20, 0.002, 80.0, 7.0).unwrap();
    for order in 2..=3 {
        let (o, st) = dpmpp_multistep(&data, &x, &sig, order, None).unwrap();
        assert_eq!(st.nfe, 20);
        check_moments(&format!("dpmpp-{order}m"), &o, &data, 0.03);
    }
}

/// The discrete-DDPM adapter around a by-formula ε-model (1000-step linear schedule) drives the
/// σ-space and SDE-time samplers.
#[test]
fn discrete_adapter_drives_continuous_samplers() {
    let data = gaussian();
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let eps_model = DiscreteGaussianEps {
        data: data.clone(),
        sigmas: rediffuse_core::sde::DiscreteSigmas::new(&sch).unwrap(),
    };
    let model = DiscreteModel::new(eps_model, &sch).unwrap();
    let (smin, smax) = (model.sigma_min(), model.sigma_max());
    let (x, mut noise) = start(N, smax, 5, DType::F32);
    let sig = karras_sigmas(18, smin, smax, 7.0).unwrap();
    let (o, _) = edm_heun(&model, &x, &sig, None).unwrap();
    check_moments("discrete-edm-heun", &o, &data, 0.03);
    let sig = karras_sigmas(20, smin, smax, 7.0).unwrap();
    let (o, _) = dpmpp_multistep(&model, &x, &sig, 2, None).unwrap();
    check_moments("discrete-dpmpp-2m", &o, &data, 0.03);
    let sde = Sde::vp();
    let (x, _) = start(N, 1.0, 6, DType::F32);
    let (o, _) = euler_maruyama(&model, &sde, &x, 1000, 1e-3, true, &mut noise, None).unwrap();
    check_moments("discrete-em-vp", &o, &data, 0.03);
}
