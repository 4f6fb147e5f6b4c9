//! `--resume` through the CLI reproduces an uninterrupted run's loss sequence.

mod common;
use common::*;

fn losses(path: &std::path::Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn resume_continues_exactly() {
    let d = tmp("resume");
    let common = [
        "--data",
        "moons",
        "--batch-size",
        "64",
        "--lr",
        "1e-3",
        "--seed",
        "3",
        "--log-every",
        "10",
        "--checkpoint-every",
        "30",
        "--quiet",
    ];
    let mut a: Vec<&str> = vec!["train", "--steps", "120", "--out", "full"];
    a.extend(common);
    ok(&d, &a);
    let mut b: Vec<&str> = vec!["train", "--steps", "60", "--out", "part"];
    b.extend(common);
    ok(&d, &b);
    ok(&d, &["train", "--resume", "--steps", "120", "--out", "part", "--quiet"]);
    let full = losses(&d.join("full/metrics.jsonl"));
    let part = losses(&d.join("part/metrics.jsonl"));
    assert_eq!(full.len(), 12);
    assert_eq!(full, part, "resumed run differs from the uninterrupted one");
    // the resumed run's checkpoint samples identically to the uninterrupted one
    ok(&d, &["sample", "--run", "full", "--n", "16", "--seed", "9", "--out", "f.npy", "--quiet"]);
    ok(&d, &["sample", "--run", "part", "--n", "16", "--seed", "9", "--out", "p.npy", "--quiet"]);
    assert_eq!(std::fs::read(d.join("f.npy")).unwrap(), std::fs::read(d.join("p.npy")).unwrap());
}
