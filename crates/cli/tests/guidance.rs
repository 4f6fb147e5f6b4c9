//! Class-conditional training (`train --class-cond`) and classifier-free guidance at sampling
//! (`sample --class --guidance-scale`) on the 8×8 digits: the built-in classifier recognises
//! the intended class far more often with the conditional model (w = 1) than without (w = 0),
//! and guidance (w > 1) raises it further; bad requests are clean errors.

mod common;
use common::*;

fn accuracy(d: &std::path::Path, w: &str) -> f64 {
    guided_accuracy(d, 400, &["--class", "all", "--guidance-scale", w], &format!("w{w}"))
}

#[test]
fn classifier_free_guidance_on_digits() {
    let d = tmp("guidance");
    digits_classifier_and_edm_mlp(&d, &["--class-cond"]);
    let cfg = std::fs::read_to_string(d.join("run/config.toml")).unwrap();
    assert!(cfg.contains("num_classes = 10") && cfg.contains("p_uncond = 0.1"), "{cfg}");
    let acc: Vec<(f64, f64)> =
        [0.0, 1.0, 2.0, 4.0].iter().map(|&w| (w, accuracy(&d, &w.to_string()))).collect();
    println!(
        "digits, class-conditional EDM MLP (1,500 steps): classifier accuracy by guidance scale {acc:?}"
    );
    let a = |w: f64| acc.iter().find(|p| p.0 == w).unwrap().1;
    assert!(a(0.0) < 0.3, "unguided samples should match arbitrary labels at about chance: {acc:?}");
    assert!(a(1.0) > a(0.0) + 0.4, "{acc:?}");
    assert!(a(2.0) >= a(1.0) && a(4.0) >= a(1.0), "{acc:?}");

    // one class only
    assert!(guided_accuracy(&d, 50, &["--class", "7", "--guidance-scale", "2"], "7") > 0.5);

    // bad requests
    let s = ["sample", "--run", "run", "--n", "4", "--out", "bad.npy"];
    let with = |extra: &[&'static str]| [&s[..], extra].concat();
    fails(&d, &with(&["--class", "10"]), "out of range");
    fails(&d, &with(&["--class", "seven"]), "--class");
    fails(&d, &with(&["--guidance-scale", "-1"]), "guidance-scale");
    fails(&d, &with(&["--guidance-scale", "NaN"]), "guidance-scale");
    assert!(!d.join("bad.npy").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn guidance_needs_a_class_conditional_run() {
    let d = tmp("guidance-bad");
    ok(&d, &["train", "--data", "moons", "--steps", "20", "--out", "plain", "--quiet"]);
    fails(
        &d,
        &["sample", "--run", "plain", "--n", "4", "--class", "1", "--out", "x.npy"],
        "class-conditional",
    );
    fails(
        &d,
        &["sample", "--run", "plain", "--n", "4", "--guidance-scale", "2", "--out", "x.npy"],
        "class-conditional",
    );
    fails(
        &d,
        &["train", "--data", "moons", "--class-cond", "--steps", "5", "--out", "c", "--quiet"],
        "labelled",
    );
    fails(
        &d,
        &[
            "train",
            "--data",
            "digits",
            "--class-cond",
            "--p-uncond",
            "1.5",
            "--steps",
            "5",
            "--out",
            "c2",
            "--quiet",
        ],
        "p_uncond",
    );
    fails(
        &d,
        &["train", "--data", "digits", "--p-uncond", "0.2", "--steps", "5", "--out", "c3", "--quiet"],
        "--class-cond",
    );
    fails(&d, &["eval", "--metric", "accuracy", "--features", "raw", "--samples", "x.npy"], "--labels");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Classifier guidance (`train-classifier --noisy RUN`, `sample --classifier --classifier-scale`)
/// of an unconditional run: the clean classifier recognises the requested digit far more often
/// at γ = 4 than at γ = 0 (chance).
#[test]
fn classifier_guidance_on_digits() {
    let d = tmp("classifier-guidance");
    digits_classifier_and_edm_mlp(&d, &[]);
    ok(
        &d,
        &[
            "train-classifier",
            "--data",
            "digits",
            "--noisy",
            "run",
            "--steps",
            "800",
            "--out",
            "nclf",
            "--quiet",
        ],
    );
    let toml = std::fs::read_to_string(d.join("nclf/classifier.toml")).unwrap();
    assert!(toml.contains("noise_range"), "{toml}");
    let acc = |g: &str| {
        guided_accuracy(
            &d,
            300,
            &["--class", "all", "--classifier", "nclf", "--classifier-scale", g],
            &format!("g{g}"),
        )
    };
    let (a0, a4) = (acc("0"), acc("4"));
    println!("digits, classifier guidance: accuracy γ = 0 {a0:.3}, γ = 4 {a4:.3}");
    assert!(a0 < 0.3 && a4 > a0 + 0.4, "{a0} {a4}");
    let s = ["sample", "--run", "run", "--n", "4", "--out", "bad.npy"];
    let with = |extra: &[&'static str]| [&s[..], extra].concat();
    fails(&d, &with(&["--classifier", "clf"]), "--noisy");
    fails(&d, &with(&["--classifier", "nclf", "--guidance-scale", "2"]), "not both");
    fails(&d, &with(&["--classifier", "nclf", "--classifier-scale", "-1"]), "classifier-scale");
    fails(&d, &with(&["--classifier", "nclf", "--class", "12"]), "out of range");
    fails(&d, &with(&["--classifier", "missing"]), "missing");
    assert!(!d.join("bad.npy").exists());
    std::fs::remove_dir_all(&d).unwrap();
}
