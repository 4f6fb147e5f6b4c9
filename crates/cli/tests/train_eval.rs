//! `rediffuse train --eval-every N`: small-sample FID/KID of the EMA model in metrics.jsonl.
//!
//! The logged FID is the number the standalone commands give for the same samples (`rediffuse
//! sample` with the run's seed and the evaluation sampler, then `rediffuse eval --metric fid`),
//! it falls as the model trains, training itself is unchanged by the evaluations, a resumed run
//! keeps evaluating, and the curves are drawn.

mod common;
use common::*;
use std::path::Path;

/// `(step, loss, fid, kid, kid_std)` of every record; metrics absent on non-evaluation steps.
type Row = (u64, f64, Option<f64>, Option<f64>, Option<f64>);

fn records(path: &Path) -> Vec<Row> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap(),
                v["fid"].as_f64(),
                v["kid"].as_f64(),
                v["kid_std"].as_f64(),
            )
        })
        .collect()
}

const TRAIN: [&str; 12] = [
    "train",
    "--data",
    "moons",
    "--batch-size",
    "128",
    "--seed",
    "11",
    "--log-every",
    "100",
    "--quiet",
    "--lr",
    "2e-3",
];

#[test]
fn fid_during_training_matches_standalone_eval_and_falls() {
    let d = tmp("train-eval");
    let mut a: Vec<&str> = TRAIN.to_vec();
    a.extend(["--steps", "1500", "--eval-every", "50", "--eval-n", "400", "--out", "run"]);
    ok(&d, &a);
    let rec = records(&d.join("run/metrics.jsonl"));
    let evals: Vec<&Row> = rec.iter().filter(|r| r.2.is_some()).collect();
    let steps: Vec<u64> = evals.iter().map(|r| r.0).collect();
    assert_eq!(steps, (1..=30).map(|k| 50 * k).collect::<Vec<u64>>(), "evaluation steps");
    // loss records stay on the log steps too (100, 200, …) plus the evaluation steps
    assert!(rec.iter().any(|r| r.0 == 100 && r.2.is_some()));
    for r in &evals {
        let (kid, kid_std) = (r.3.unwrap(), r.4.unwrap());
        assert!(kid.is_finite() && kid_std > 0.0, "KID {kid} ± {kid_std}");
    }
    let first = evals[0].2.unwrap();
    let last = evals.last().unwrap().2.unwrap();
    eprintln!("FID at step 50: {first:.4}; at step 1500: {last:.4}");
    assert!(last < 0.05, "final FID {last}");
    assert!(first > 5.0 * last, "FID did not fall: {first} -> {last}");
    for png in ["fid.png", "kid.png", "loss.png"] {
        assert!(d.join("run").join(png).metadata().unwrap().len() > 1000, "{png}");
    }

    // the same samples and reference through the standalone commands give the same FID
    ok(
        &d,
        &[
            "sample",
            "--run",
            "run",
            "--sampler",
            "ddim",
            "--steps",
            "50",
            "--n",
            "400",
            "--seed",
            "11",
            "--out",
            "s.npy",
            "--quiet",
        ],
    );
    ok(
        &d,
        &[
            "eval",
            "--samples",
            "s.npy",
            "--data",
            "moons",
            "--n",
            "400",
            "--seed",
            "11",
            "--metric",
            "fid",
            "--features",
            "raw",
            "--json",
            "fid.json",
        ],
    );
    let standalone = json_value(&d.join("fid.json"));
    assert!(
        (standalone - last).abs() <= 1e-6 * last.max(1e-3),
        "logged FID {last} vs standalone {standalone}"
    );

    // evaluating does not change training: the same run without evaluations samples identically
    let mut b: Vec<&str> = TRAIN.to_vec();
    b.extend(["--steps", "1500", "--out", "plain"]);
    ok(&d, &b);
    let common = ["--sampler", "ddim", "--steps", "20", "--n", "64", "--seed", "3", "--quiet"];
    let mut s1: Vec<&str> = vec!["sample", "--run", "run", "--out", "a.npy"];
    s1.extend(common);
    ok(&d, &s1);
    let mut s2: Vec<&str> = vec!["sample", "--run", "plain", "--out", "b.npy"];
    s2.extend(common);
    ok(&d, &s2);
    assert_eq!(std::fs::read(d.join("a.npy")).unwrap(), std::fs::read(d.join("b.npy")).unwrap());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn resumed_run_keeps_evaluating_and_flags_are_checked() {
    let d = tmp("train-eval-resume");
    let mut a: Vec<&str> = TRAIN.to_vec();
    a.extend(["--steps", "200", "--eval-every", "100", "--eval-n", "100", "--out", "run"]);
    ok(&d, &a);
    ok(&d, &["train", "--resume", "--out", "run", "--steps", "300", "--eval-n", "120", "--quiet"]);
    let steps: Vec<u64> =
        records(&d.join("run/metrics.jsonl")).iter().filter(|r| r.2.is_some()).map(|r| r.0).collect();
    assert_eq!(steps, vec![100, 200, 300]);
    let config = std::fs::read_to_string(d.join("run/config.toml")).unwrap();
    assert!(config.contains("n = 120"), "{config}");

    let mut bad: Vec<&str> = TRAIN.to_vec();
    bad.extend(["--steps", "10", "--eval-n", "100", "--out", "x1"]);
    fails(&d, &bad, "--eval-every");
    let mut bad: Vec<&str> = TRAIN.to_vec();
    bad.extend(["--steps", "10", "--eval-every", "0", "--out", "x2"]);
    fails(&d, &bad, "eval.every");
    let mut bad: Vec<&str> = TRAIN.to_vec();
    bad.extend(["--steps", "10", "--eval-every", "5", "--eval-n", "1", "--out", "x3"]);
    fails(&d, &bad, "eval.n");
    let mut bad: Vec<&str> = TRAIN.to_vec();
    bad.extend(["--steps", "10", "--eval-every", "5", "--eval-features", "classifier:nope", "--out", "x4"]);
    fails(&d, &bad, "not found");
    assert!(!d.join("x4").exists(), "a failed start must not leave a run folder");
    std::fs::remove_dir_all(&d).unwrap();
}
