//! Every method trained on 2-D moons with the MLP (hidden 128, 3 blocks; 2000 steps of batch 256),
//! sampled with every sampler through `LoadedRun::sample_model`.
//!
//! Default suite, per method: the loss falls; the method's own sampler (n = 1000) gets within 3×
//! the sliced-W₂ noise floor (the distance between two independent held-out draws of the same
//! size); every `SamplerSpec` (cheap settings, n = 128) gives finite samples with roughly right
//! moments. `moons_report` (ignored: long) runs every sampler at n = 2000 for the closing table.

mod methods_support;

use methods_support::{all_specs, reference_swd, run_all, smoke_specs, train};
use rediffuse_core::sde::{EdmConfig, Sde};
use rediffuse_core::Prediction;
use rediffuse_sample::continuous::Predictor;
use rediffuse_sample::dispatch::SamplerSpec;
use rediffuse_sample::{DdimOptions, TimestepSpacing};
use rediffuse_train::Method;

/// The test methods and their Langevin last-level step (≈ 0.5·σ_min² of the frame).
fn methods() -> Vec<(&'static str, Method, f64)> {
    vec![
        ("ddpm", Method::ddpm_default(), 5e-5),
        ("ncsn", Method::ncsn_default(), 5e-5),
        ("vp-sde", Method::score_sde(Sde::vp()), 5e-5),
        // σ_max = 10 (about the largest pairwise distance of the data, Song & Ermon's rule)
        (
            "ve-sde",
            Method::ScoreSde {
                sde: Sde::Ve { sigma_min: 0.01, sigma_max: 10.0 },
                prediction: Prediction::Epsilon,
                eps: 1e-5,
            },
            5e-5,
        ),
        ("subvp-sde", Method::score_sde(Sde::sub_vp()), 5e-9),
        // σ_data = 1: the moons are normalised to unit variance per axis
        ("edm", Method::Edm(EdmConfig { sigma_data: 1.0, ..EdmConfig::default() }), 2e-6),
    ]
}

fn native(tag: &str) -> SamplerSpec {
    match tag {
        "ddpm" => SamplerSpec::Ddim(DdimOptions {
            steps: 100,
            eta: 1.0,
            spacing: TimestepSpacing::Trailing,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        }),
        "ncsn" => SamplerSpec::Langevin {
            sigma_min: None,
            levels: None,
            steps_per_level: 4,
            step_eps: 5e-5,
            final_denoise: true,
        },
        "vp-sde" => SamplerSpec::OdeHeun { steps: 50, eps: None, denoise: true },
        "ve-sde" => SamplerSpec::Pc {
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

const STEPS: usize = 2000;

fn check(tag: &str) {
    let (_, method, _) = methods().into_iter().find(|m| m.0 == tag).unwrap();
    let (run, losses, dir) = train(tag, method, STEPS);
    assert!(losses.iter().all(|l| l.is_finite()));
    let tail = (losses[losses.len() - 1] + losses[losses.len() - 2]) / 2.0;
    assert!(tail < 0.95 * losses[0], "[{tag}] loss did not fall: {losses:?}");
    let model = run.sample_model().unwrap();
    let n = 1000;
    let floor = reference_swd(n);
    let r = &run_all(tag, &model, &[native(tag)], n, 0.2, 0.3)[0];
    println!("[{tag}] native {}: swd {:.4} vs floor {floor:.4} ({:.2}×)", r.name, r.swd, r.swd / floor);
    assert!(r.swd < 3.0 * floor, "[{tag}] {}: swd {} vs 3 × floor {floor}", r.name, r.swd);
    run_all(tag, &model, &smoke_specs(), 128, 0.35, 0.5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn moons_ddpm() {
    check("ddpm");
}

#[test]
fn moons_ncsn() {
    check("ncsn");
}

#[test]
fn moons_vp_sde() {
    check("vp-sde");
}

#[test]
fn moons_ve_sde() {
    check("ve-sde");
}

#[test]
fn moons_subvp_sde() {
    check("subvp-sde");
}

#[test]
fn moons_edm() {
    check("edm");
}

/// Every method × every sampler at n = 2000 (about 15 minutes of CPU): prints SWD, NFE and time,
/// and checks the native sampler against 3× the noise floor.
#[test]
#[ignore]
fn moons_report() {
    let n = 2000;
    let floor = reference_swd(n);
    println!("noise floor swd (n = {n}) {floor:.4}");
    for (tag, method, eps) in methods() {
        let (run, _, dir) = train(tag, method, STEPS);
        let model = run.sample_model().unwrap();
        let mut specs = all_specs(eps);
        specs.push(native(tag));
        let res = run_all(tag, &model, &specs, n, 0.25, 0.4);
        let nat = res.last().unwrap();
        assert!(nat.swd < 3.0 * floor, "[{tag}] {}: swd {} vs 3 × floor {floor}", nat.name, nat.swd);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
