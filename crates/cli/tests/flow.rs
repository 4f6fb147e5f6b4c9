//! `train --method flow`, `reflow` and `eval --metric straightness` on the two moons: a 2-RF
//! made by reflow has far straighter paths than the 1-RF it came from and its one-step samples
//! are far better; minibatch OT straightens a 1-RF too; bad flow settings are clean errors.

mod common;
use common::*;

fn swd(d: &std::path::Path, run: &str, steps: &str) -> f64 {
    moons_swd(d, run, "euler", steps, &[])
}

fn straightness(d: &std::path::Path, run: &str) -> f64 {
    let json = format!("{run}-straight.json");
    ok(
        d,
        &["eval", "--metric", "straightness", "--run", run, "--n", "500", "--steps", "50", "--json", &json],
    );
    json_value(&d.join(json))
}

#[test]
fn reflow_straightens_and_one_step_sampling_improves() {
    let d = tmp("flow");
    ok(&d, &["train", "--data", "moons", "--method", "flow", "--steps", "1500", "--out", "rf1", "--quiet"]);
    #[rustfmt::skip]
    ok(&d, &["train", "--data", "moons", "--method", "flow", "--ot-coupling", "--steps", "1500", "--out", "ot", "--quiet"]);
    ok(&d, &["reflow", "--run", "rf1", "--pairs", "3000", "--steps", "1500", "--out", "rf2", "--quiet"]);
    let cfg = std::fs::read_to_string(d.join("rf2/config.toml")).unwrap();
    assert!(cfg.contains("couplings = \"rf2/pairs/x0.npy\"") && cfg.contains("kind = \"flow\""), "{cfg}");
    let (s1, s2, sot) = (straightness(&d, "rf1"), straightness(&d, "rf2"), straightness(&d, "ot"));
    let (one1, one2, oneot) = (swd(&d, "rf1", "1"), swd(&d, "rf2", "1"), swd(&d, "ot", "1"));
    let (many1, many2) = (swd(&d, "rf1", "50"), swd(&d, "rf2", "50"));
    println!("straightness 1-RF {s1:.5}, 2-RF {s2:.5}, OT 1-RF {sot:.5}");
    println!("1-step SWD 1-RF {one1:.4}, 2-RF {one2:.4}, OT {oneot:.4}; 50-step SWD 1-RF {many1:.4}, 2-RF {many2:.4}");
    assert!(s2 < s1 / 20.0, "reflow did not straighten: {s1} -> {s2}");
    assert!(sot < s1 / 5.0, "OT coupling: {s1} vs {sot}");
    assert!(one2 < one1 / 10.0 && one2 < 0.02, "1-step samples: {one1} -> {one2}");
    assert!(many1 < 0.02 && many2 < 0.02, "{many1} {many2}");
    // every ODE sampler runs on a flow: Heun on the flow-time grid, adaptive RK45
    let (heun, rk45) = (moons_swd(&d, "rf1", "heun", "20", &[]), moons_swd(&d, "rf1", "ode-rk45", "1", &[]));
    println!("1-RF: Heun 20 steps SWD {heun:.4}, RK45 {rk45:.4}");
    assert!(heun < 0.02 && rk45 < 0.02, "{heun} {rk45}");
    // a reflow run resumes (its pairs are reloaded from the run folder)
    ok(&d, &["train", "--resume", "--out", "rf2", "--steps", "1600", "--quiet"]);

    fails(
        &d,
        &["train", "--data", "moons", "--method", "flow", "--flow-sigma-min", "1.5", "--out", "e1"],
        "sigma_min",
    );
    fails(&d, &["train", "--data", "moons", "--ot-coupling", "--out", "e2"], "--method flow");
    ok(&d, &["train", "--data", "moons", "--steps", "10", "--out", "ddpm", "--quiet"]);
    fails(&d, &["reflow", "--run", "ddpm", "--pairs", "10", "--out", "e3"], "flow-matching run");
    fails(&d, &["reflow", "--run", "rf1", "--pairs", "0", "--out", "e4"], "--pairs");
    fails(&d, &["reflow", "--run", "rf1", "--pairs", "10", "--out", "rf2"], "not empty");
    fails(&d, &["eval", "--metric", "straightness", "--run", "ddpm"], "flow runs");
    assert!(!d.join("e1").exists() && !d.join("e3").exists() && !d.join("e4").exists());
    let _ = std::fs::remove_dir_all(&d);
}
