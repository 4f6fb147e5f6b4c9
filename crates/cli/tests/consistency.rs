//! `train --method consistency` on the two moons: distillation from an EDM teacher (`--teacher`)
//! gives one-step samples close to the teacher's many-step ones and far better than its one step;
//! consistency training runs with the improved-CT options; bad settings are clean errors.

mod common;
use common::*;

fn swd(d: &std::path::Path, run: &str, sampler: &str, steps: &str) -> f64 {
    moons_swd(d, run, sampler, steps, &[])
}

#[test]
fn consistency_distillation_and_training() {
    let d = tmp("consistency");
    ok(&d, &["train", "--data", "moons", "--method", "edm", "--steps", "1500", "--out", "edm", "--quiet"]);
    #[rustfmt::skip]
    ok(&d, &["train", "--data", "moons", "--method", "consistency", "--teacher", "edm", "--steps", "1500", "--out", "cd", "--quiet"]);
    let cfg = std::fs::read_to_string(d.join("cd/config.toml")).unwrap();
    assert!(cfg.contains("kind = \"consistency\"") && cfg.contains("teacher = \"edm\""), "{cfg}");
    let (cd1, cd2) = (swd(&d, "cd", "consistency", "1"), swd(&d, "cd", "consistency", "2"));
    let (t1, t18) = (swd(&d, "edm", "euler", "2"), swd(&d, "edm", "edm-heun", "18"));
    println!("SWD: CD 1 step {cd1:.4}, 2 steps {cd2:.4}; teacher Euler 2 steps {t1:.4}, EDM Heun 18 steps {t18:.4}");
    assert!(cd1 < t1 / 5.0 && cd1 < 0.02, "{cd1} vs {t1}");
    #[rustfmt::skip]
    ok(&d, &["train", "--data", "moons", "--method", "consistency", "--pseudo-huber", "--lognormal-index", "--steps", "300", "--out", "ct", "--quiet"]);
    ok(&d, &["train", "--resume", "--out", "ct", "--steps", "320", "--quiet"]);
    ok(
        &d,
        &[
            "sample",
            "--run",
            "ct",
            "--sampler",
            "consistency",
            "--steps",
            "3",
            "--n",
            "10",
            "--out",
            "ct.npy",
            "--quiet",
        ],
    );

    fails(&d, &["train", "--data", "moons", "--teacher", "edm", "--out", "e1"], "--method consistency");
    #[rustfmt::skip]
    fails(&d, &["train", "--data", "moons", "--method", "consistency", "--teacher", "edm", "--cm-steps", "1", "--out", "e2"], "N must be >= 2");
    fails(
        &d,
        &["train", "--data", "moons", "--method", "consistency", "--teacher", "nope", "--out", "e3"],
        "nope",
    );
    assert!(!d.join("e1").exists() && !d.join("e2").exists() && !d.join("e3").exists());
    let _ = std::fs::remove_dir_all(&d);
}
