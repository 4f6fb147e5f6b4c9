//! `rediffuse distill` on the two moons: two rounds (4 then 2 steps) from an EDM teacher; the
//! 2-step student is far better than the teacher at 2 steps and close to the teacher at 8; bad
//! settings are clean errors.

mod common;
use common::*;

fn swd(d: &std::path::Path, run: &str, steps: &str, extra: &[&str]) -> f64 {
    moons_swd(d, run, "euler", steps, extra)
}

#[test]
fn progressive_distillation_rounds() {
    let d = tmp("distill");
    ok(
        &d,
        &["train", "--data", "moons", "--method", "edm", "--steps", "1500", "--out", "teacher", "--quiet"],
    );
    #[rustfmt::skip]
    ok(&d, &["distill", "--run", "teacher", "--out", "pd", "--student-steps", "4", "--rounds", "2", "--steps", "800", "--quiet"]);
    assert!(d.join("pd/steps-4/config.toml").exists() && d.join("pd/steps-2/config.toml").exists());
    let cfg = std::fs::read_to_string(d.join("pd/steps-2/config.toml")).unwrap();
    assert!(
        cfg.contains("[distill]")
            && cfg.contains("teacher = \"pd/steps-4\"")
            && cfg.contains("student_steps = 2"),
        "{cfg}"
    );
    let nested = ["--sigmas", "nested-karras"];
    let (t2, t8) = (swd(&d, "teacher", "2", &nested), swd(&d, "teacher", "8", &nested));
    let s2 = swd(&d, "pd/steps-2", "2", &[]);
    println!("SWD: teacher 2 steps {t2:.4}, 8 steps {t8:.4}; student 2 steps {s2:.4}");
    assert!(s2 < t2 / 5.0, "{s2} vs {t2}");
    assert!(s2 < 3.0 * t8 + 0.01, "{s2} vs {t8}");
    ok(&d, &["train", "--resume", "--out", "pd/steps-2", "--steps", "850", "--quiet"]);

    fails(&d, &["distill", "--run", "teacher", "--out", "e1", "--student-steps", "0"], "student-steps");
    fails(
        &d,
        &["distill", "--run", "teacher", "--out", "e2", "--student-steps", "2", "--rounds", "3"],
        "below one step",
    );
    fails(&d, &["distill", "--run", "teacher", "--out", "pd", "--student-steps", "2"], "not empty");
    fails(&d, &["distill", "--run", "teacher", "--out", "e3", "--student-steps", "2", "--rho", "-1"], "rho");
    fails(&d, &["distill", "--run", "nope", "--out", "e4", "--student-steps", "2"], "not a run folder");
    assert!(!d.join("e1").exists() && !d.join("e2").exists());
    let _ = std::fs::remove_dir_all(&d);
}
