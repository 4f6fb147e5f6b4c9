//! Helpers shared by the CLI tests: run the built binary in a temporary folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rediffuse")
}

/// A fresh temporary folder unique to `name`.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rediffuse-cli-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin()).current_dir(dir).args(args).output().expect("failed to start rediffuse")
}

/// Run and require success; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "rediffuse {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run and require a clean failure: non-zero exit, an `error:` message containing
/// `needle`, and no panic.
pub fn fails(dir: &Path, args: &[&str], needle: &str) {
    let out = run(dir, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rediffuse {args:?} should fail");
    assert!(!err.contains("panicked"), "rediffuse {args:?} panicked:\n{err}");
    assert!(err.contains("error"), "no error message for {args:?}:\n{err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "message for {args:?} lacks `{needle}`:\n{err}"
    );
}

/// Parse the `value` of an eval JSON file.
pub fn json_value(path: &Path) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["value"].as_f64().unwrap()
}

/// A standard normal draw from a counter (Box–Muller on two hashed uniforms).
pub fn gauss(i: u64) -> f32 {
    let u = |k: u64| {
        let mut z = k.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let (a, b) = (u(2 * i).max(1e-12), u(2 * i + 1));
    ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
}

/// In `dir`: the built-in digits classifier in `clf` and an EDM model around a 256-wide MLP on
/// the digits in `run` (1,500 steps of 128, about 10 s), with `extra` training flags.
pub fn digits_classifier_and_edm_mlp(dir: &Path, extra: &[&str]) {
    ok(dir, &["train-classifier", "--data", "digits", "--out", "clf", "--quiet"]);
    let mut args = vec![
        "train",
        "--data",
        "digits",
        "--model",
        "mlp",
        "--hidden",
        "256",
        "--method",
        "edm",
        "--steps",
        "1500",
        "--batch-size",
        "128",
        "--lr",
        "2e-3",
        "--out",
        "run",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(dir, &args);
}

/// `eval --metric accuracy` of `samples` against `labels` with the classifier in `dir/clf`.
pub fn class_accuracy(dir: &Path, samples: &str, labels: &str, json: &str) -> f64 {
    ok(
        dir,
        &[
            "eval",
            "--metric",
            "accuracy",
            "--features",
            "classifier:clf",
            "--samples",
            samples,
            "--labels",
            labels,
            "--json",
            json,
        ],
    );
    json_value(&dir.join(json))
}

/// Sample `n` images of the run in `dir/run` with EDM Heun (12 steps) and the class/guidance flags
/// `flags`, and return the classifier's accuracy on them (files tagged `tag`).
pub fn guided_accuracy(dir: &Path, n: usize, flags: &[&str], tag: &str) -> f64 {
    let (x, y, j) = (format!("x{tag}.npy"), format!("y{tag}.npy"), format!("a{tag}.json"));
    let n = n.to_string();
    let mut args = vec![
        "sample",
        "--run",
        "run",
        "--sampler",
        "edm-heun",
        "--steps",
        "12",
        "--n",
        &n,
        "--labels-out",
        &y,
        "--out",
        &x,
        "--quiet",
    ];
    args.extend_from_slice(flags);
    ok(dir, &args);
    class_accuracy(dir, &x, &y, &j)
}

/// Sample `run` with `sampler` and `steps` (2,000 samples, `extra` flags) and return the samples'
/// sliced Wasserstein distance to the two moons.
pub fn moons_swd(dir: &Path, run: &str, sampler: &str, steps: &str, extra: &[&str]) -> f64 {
    let tag = format!("{}-{sampler}-{steps}", run.replace('/', "_"));
    let (out, json) = (format!("{tag}.npy"), format!("{tag}.json"));
    let mut args = vec![
        "sample",
        "--run",
        run,
        "--sampler",
        sampler,
        "--steps",
        steps,
        "--n",
        "2000",
        "--out",
        &out,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(dir, &args);
    ok(dir, &["eval", "--samples", &out, "--data", "moons", "--metric", "swd", "--json", &json]);
    json_value(&dir.join(json))
}
