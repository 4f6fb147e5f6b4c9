//! Every method trained on 2-D moons with the MLP, sampled with every sampler.
//!
//! Per method: train 3000 steps (batch 256), then run every `SamplerSpec` on the trained family
//! through `LoadedRun::sample_model` (finite output, moments roughly right), and check that the
//! method's own sampler gets within 3× the sliced-W₂ noise floor (distance between two independent
//! held-out draws of the same size).

mod methods_support;

use methods_support::{all_specs, reference_swd, run_all, train};
use rediffuse_core::sde::{EdmConfig, Sde};
use rediffuse_core::Prediction;
use rediffuse_train::Method;

const N: usize = 2000;
const STEPS: usize = 3000;

fn check(tag: &str, method: Method, langevin_eps: f64, native: &[&str]) {
    let (run, losses, dir) = train(tag, method, STEPS);
    assert!(losses.iter().all(|l| l.is_finite()));
    let first = losses[0];
    let last = losses[losses.len() - 1];
    assert!(last < first, "[{tag}] loss did not fall: {losses:?}");
    let model = run.sample_model().unwrap();
    let floor = reference_swd(N);
    println!("[{tag}] noise floor swd {floor:.4}");
    let results = run_all(tag, &model, &all_specs(langevin_eps), N);
    for r in results.iter().filter(|r| native.contains(&r.name)) {
        assert!(r.swd < 3.0 * floor, "[{tag}] {}: swd {} vs 3 × floor {}", r.name, r.swd, floor);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn moons_ddpm() {
    check("ddpm", Method::ddpm_default(), 2e-5, &["ddpm", "ddim"]);
}

#[test]
fn moons_ncsn() {
    check("ncsn", Method::ncsn_default(), 5e-5, &["langevin"]);
}

#[test]
fn moons_vp_sde() {
    check("vp-sde", Method::score_sde(Sde::vp()), 2e-5, &["euler-maruyama", "pc", "ode-rk45"]);
}

#[test]
fn moons_ve_sde() {
    let sde = Sde::Ve { sigma_min: 0.01, sigma_max: 10.0 };
    check(
        "ve-sde",
        Method::ScoreSde { sde, prediction: Prediction::Epsilon, eps: 1e-5 },
        5e-5,
        &["pc", "ode-rk45"],
    );
}

#[test]
fn moons_subvp_sde() {
    check("subvp-sde", Method::score_sde(Sde::sub_vp()), 5e-9, &["euler-maruyama", "ode-rk45"]);
}

#[test]
fn moons_edm() {
    let cfg = EdmConfig { sigma_data: 1.0, ..EdmConfig::default() };
    check("edm", Method::Edm(cfg), 2e-6, &["edm-heun", "edm-stochastic"]);
}
