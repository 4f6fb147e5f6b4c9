//! iDDPM end to end through the CLI: `train --method iddpm`, `sample --sampler ddpm-learned|ddim`,
//! `eval --metric nll` (bits/dim of the full bound, per-timestep terms) and
//! `eval --metric nll-ode --analytic` against the closed-form Gaussian log-density.

mod common;
use common::*;
use rediffuse_core::NoiseSource;
use rediffuse_data::npy::{read_npy, write_npy, NpyDtype};
use std::path::Path;

/// `n` points of N((0.3, −0.2), 0.2²I) quantised to 8 bits in [−1, 1] (value k/127.5 − 1).
fn quantised_gaussian(path: &Path, n: usize, seed: u64) {
    let z = NoiseSource::new(seed, 0, n).randn_vec(&[2]);
    let mut v = Vec::with_capacity(2 * n);
    for r in z.chunks(2) {
        for (zi, m) in r.iter().zip([0.3, -0.2]) {
            let x = (m + 0.2 * *zi as f64).clamp(-1.0, 1.0);
            v.push((((x + 1.0) * 127.5).round() / 127.5 - 1.0) as f32);
        }
    }
    write_npy(path, &[n, 2], &v, NpyDtype::F32).unwrap();
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn mean_std(path: &Path) -> ([f64; 2], [f64; 2]) {
    let a = read_npy(path).unwrap();
    let n = a.shape[0] as f64;
    let mut m = [0.0; 2];
    let mut s = [0.0; 2];
    for r in a.data.chunks(2) {
        assert!(r.iter().all(|v| v.is_finite()));
        for i in 0..2 {
            m[i] += r[i] as f64 / n;
        }
    }
    for r in a.data.chunks(2) {
        for i in 0..2 {
            s[i] += (r[i] as f64 - m[i]).powi(2) / n;
        }
    }
    (m, [s[0].sqrt(), s[1].sqrt()])
}

/// Train an iDDPM MLP (learn_sigma set by the CLI) with T = 50 on 8-bit 2-D data, sample it with
/// the learned variances (all steps and respaced to 10) and with DDIM, and evaluate the bound.
///
/// The data's entropy is about log2(√(2πe)·0.2) + log2(127.5) ≈ 6.7 bits/dim, a uniform model
/// on [−1, 1] scores exactly 8: the trained model's bound lies between.
#[test]
fn iddpm_train_sample_and_nll() {
    let d = tmp("iddpm");
    quantised_gaussian(&d.join("data.npy"), 3000, 1);
    let train = [
        "train",
        "--data",
        "data.npy",
        "--method",
        "iddpm",
        "--timesteps",
        "50",
        "--steps",
        "800",
        "--batch-size",
        "128",
        "--lr",
        "2e-3",
        "--out",
        "run",
        "--quiet",
    ];
    ok(&d, &train);
    let cfg = std::fs::read_to_string(d.join("run/config.toml")).unwrap();
    assert!(cfg.contains("kind = \"iddpm\"") && cfg.contains("learn_sigma = true"), "{cfg}");
    assert!(cfg.contains("kind = \"cosine\""), "{cfg}");

    for (sampler, steps, out) in [
        ("ddpm-learned", None, "a.npy"),
        ("ddpm-learned", Some("10"), "b.npy"),
        ("ddim", Some("20"), "c.npy"),
    ] {
        let mut args =
            vec!["sample", "--run", "run", "--sampler", sampler, "--n", "1000", "--out", out, "-q"];
        if let Some(s) = steps {
            args.extend(["--steps", s]);
        }
        ok(&d, &args);
        let (m, s) = mean_std(&d.join(out));
        println!("{sampler} steps {steps:?}: mean {m:.3?}, std {s:.3?}");
        assert!((m[0] - 0.3).abs() < 0.08 && (m[1] + 0.2).abs() < 0.08, "{sampler}: mean {m:?}");
        assert!(s.iter().all(|s| (0.13..0.3).contains(s)), "{sampler}: std {s:?}");
    }

    ok(
        &d,
        &[
            "eval",
            "--run",
            "run",
            "--data",
            "data.npy",
            "--metric",
            "nll",
            "--n",
            "200",
            "--terms",
            "terms.csv",
            "--json",
            "nll.json",
        ],
    );
    let j = json(&d.join("nll.json"));
    let bpd = json_value(&d.join("nll.json"));
    let se = j["std_err"].as_f64().unwrap();
    println!("nll {bpd:.4} ± {se:.4} bits/dim, {j}");
    assert!(bpd.is_finite() && bpd > 6.3 && bpd < 8.0, "bits/dim {bpd}");
    assert!(se > 0.0 && se < 0.2, "std_err {se}");
    assert_eq!(
        (j["n"].as_u64(), j["exact"].as_bool(), j["metric"].as_str()),
        (Some(200), Some(true), Some("nll"))
    );
    let terms = std::fs::read_to_string(d.join("terms.csv")).unwrap();
    let rows: Vec<&str> = terms.lines().skip(1).collect();
    assert_eq!(rows.len(), 51, "T + 1 rows (50 terms and the prior)");
    let sum: f64 = rows.iter().map(|r| r.split(',').nth(4).unwrap().parse::<f64>().unwrap()).sum();
    assert!((sum - bpd).abs() < 1e-6 * bpd, "terms sum {sum} vs total {bpd}");
    assert!(rows[0].starts_with("0,1,L0,") && rows[50].starts_with("50,51,L_T,"));

    // stratified: every 5th term past the first 5 — an estimate near the exact bound
    ok(
        &d,
        &[
            "eval", "--run", "run", "--data", "data.npy", "--metric", "nll", "--n", "200", "--every", "5",
            "--json", "s.json",
        ],
    );
    let s = json(&d.join("s.json"));
    assert_eq!(s["exact"].as_bool(), Some(false));
    assert!((s["value"].as_f64().unwrap() - bpd).abs() < 0.3, "{s}");

    // the probability-flow likelihood of the run's own samples (nats per 2-D point)
    ok(
        &d,
        &[
            "eval",
            "--run",
            "run",
            "--metric",
            "nll-ode",
            "--samples",
            "c.npy",
            "--n",
            "16",
            "--json",
            "ode.json",
        ],
    );
    let o = json(&d.join("ode.json"));
    println!("nll-ode of 16 samples: {o}");
    // ≈ the differential entropy of the data law N(μ, 0.2²I): ln(2πe·0.04) = −0.381 nats
    let ode_nats = o["nll_nats"].as_f64().unwrap();
    assert!(o["exact"].as_bool() == Some(true) && (ode_nats + 0.381).abs() < 0.5, "{ode_nats}");

    // bad uses
    fails(
        &d,
        &["eval", "--run", "run", "--data", "data.npy", "--metric", "nll", "--variance", "beta"],
        "learned variance",
    );
    fails(&d, &["eval", "--run", "run", "--data", "moons", "--metric", "nll", "--n", "10"], "discrete data");
    fails(&d, &["eval", "--data", "data.npy", "--metric", "nll"], "--run");
    fails(
        &d,
        &["eval", "--run", "run", "--metric", "nll-ode", "--samples", "a.npy", "--method", "vp-sde"],
        "--method",
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// `--importance-sampling` reaches the run config and its checkpoint; other methods refuse it and
/// refuse the learned-variance sampler.
#[test]
fn importance_sampling_flag_and_method_checks() {
    let d = tmp("iddpm-is");
    quantised_gaussian(&d.join("data.npy"), 500, 2);
    ok(
        &d,
        &[
            "train",
            "--data",
            "data.npy",
            "--method",
            "iddpm",
            "--timesteps",
            "20",
            "--importance-sampling",
            "--steps",
            "30",
            "--batch-size",
            "64",
            "--out",
            "is",
            "--quiet",
        ],
    );
    assert!(std::fs::read_to_string(d.join("is/config.toml"))
        .unwrap()
        .contains("importance_sampling = true"));
    let state = json(&d.join("is/checkpoint/state.json"));
    assert_eq!(state["importance_sampler"]["timesteps"].as_u64(), Some(20));
    // resume continues with the checkpointed sampler
    ok(&d, &["train", "--out", "is", "--resume", "--steps", "40", "--quiet"]);
    assert_eq!(json(&d.join("is/checkpoint/state.json"))["step"].as_u64(), Some(40));
    fails(
        &d,
        &[
            "train",
            "--data",
            "data.npy",
            "--method",
            "ddpm",
            "--importance-sampling",
            "--steps",
            "5",
            "--out",
            "x",
            "-q",
        ],
        "iddpm only",
    );
    ok(&d, &["train", "--data", "data.npy", "--timesteps", "20", "--steps", "5", "--out", "ddpm", "--quiet"]);
    fails(
        &d,
        &["sample", "--run", "ddpm", "--sampler", "ddpm-learned", "--n", "4", "--out", "y.npy"],
        "learned variances",
    );
    // a DDPM run's bound uses a fixed variance
    ok(
        &d,
        &[
            "eval",
            "--run",
            "ddpm",
            "--data",
            "data.npy",
            "--metric",
            "nll",
            "--n",
            "16",
            "--variance",
            "beta-tilde",
            "--json",
            "d.json",
        ],
    );
    let v = json(&d.join("d.json"));
    assert_eq!(v["variance"].as_str(), Some("beta-tilde"));
    assert!(v["value"].as_f64().unwrap() > 0.0);
    std::fs::remove_dir_all(&d).unwrap();
}

/// A tiny iDDPM U-Net on the native 8×8 digits: the CLI sets learn_sigma and 17 data levels, the
/// bound is evaluated on the training images (digits have no test split) with T + 1 CSV rows, and
/// the learned-variance sampler makes images.
#[test]
fn digits_unet_iddpm_nll() {
    let d = tmp("iddpm-digits");
    ok(
        &d,
        &[
            "train",
            "--data",
            "digits",
            "--model",
            "unet",
            "--method",
            "iddpm",
            "--timesteps",
            "20",
            "--steps",
            "20",
            "--batch-size",
            "16",
            "--out",
            "u",
            "--quiet",
        ],
    );
    let cfg = std::fs::read_to_string(d.join("u/config.toml")).unwrap();
    assert!(cfg.contains("learn_sigma = true") && cfg.contains("data_levels = 17"), "{cfg}");
    ok(
        &d,
        &[
            "eval", "--run", "u", "--data", "digits", "--metric", "nll", "--n", "32", "--terms", "t.csv",
            "--json", "u.json",
        ],
    );
    let j = json(&d.join("u.json"));
    println!("digits U-Net (20 steps) nll: {j}");
    let v = j["value"].as_f64().unwrap();
    assert!(v.is_finite() && v > 0.0 && v < 10.0, "{v}");
    assert_eq!((j["levels"].as_u64(), j["split"].as_str()), (Some(17), Some("train")));
    assert_eq!(std::fs::read_to_string(d.join("t.csv")).unwrap().lines().count(), 22);
    ok(
        &d,
        &[
            "sample",
            "--run",
            "u",
            "--sampler",
            "ddpm-learned",
            "--steps",
            "5",
            "--n",
            "4",
            "--out",
            "s.npy",
            "-q",
        ],
    );
    assert_eq!(read_npy(d.join("s.npy")).unwrap().shape, vec![4, 1, 8, 8]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// log N(x; m(ε)μ, m(ε)²Σ + s(ε)²I) of the VP SDE (β ∈ [0.1, 20]) at ε = 1e-3, for a 2-D Gaussian.
fn vp_log_density(x: [f64; 2], mu: [f64; 2], cov: [[f64; 2]; 2], eps: f64) -> f64 {
    let (b0, b1) = (0.1, 20.0);
    let log_m = -0.25 * eps * eps * (b1 - b0) - 0.5 * eps * b0;
    let m = log_m.exp();
    let s2 = 1.0 - m * m;
    let c = [[m * m * cov[0][0] + s2, m * m * cov[0][1]], [m * m * cov[1][0], m * m * cov[1][1] + s2]];
    let det = c[0][0] * c[1][1] - c[0][1] * c[1][0];
    let r = [x[0] - m * mu[0], x[1] - m * mu[1]];
    let q = (c[1][1] * r[0] * r[0] - 2.0 * c[0][1] * r[0] * r[1] + c[0][0] * r[1] * r[1]) / det;
    -0.5 * q - 0.5 * det.ln() - (2.0 * std::f64::consts::PI).ln()
}

/// The ODE likelihood of an analytic Gaussian fitted to data.npy (VP SDE, exact divergence) equals
/// the closed-form Gaussian log-density of the evaluated points to 1e-2 nats.
#[test]
fn nll_ode_of_analytic_gaussian_matches_closed_form() {
    let d = tmp("nll-ode");
    let n = 2000;
    let z = NoiseSource::new(7, 0, n).randn_vec(&[2]);
    let mut data = Vec::with_capacity(2 * n);
    for r in z.chunks(2) {
        data.push(0.5 + 0.8 * r[0]);
        data.push(-0.3 + 0.3 * r[0] + 0.4 * r[1]);
    }
    write_npy(d.join("data.npy"), &[n, 2], &data, NpyDtype::F32).unwrap();
    let data: Vec<f64> = data.iter().map(|&v| v as f64).collect();
    let pts = [[0.125, 0.25], [1.5, -0.375], [-0.75, -1.0], [0.5, 0.5], [2.0, 0.875], [0.0, -0.25]];
    let flat: Vec<f32> = pts.iter().flatten().map(|&v| v as f32).collect();
    write_npy(d.join("x.npy"), &[pts.len(), 2], &flat, NpyDtype::F32).unwrap();
    ok(
        &d,
        &[
            "eval",
            "--metric",
            "nll-ode",
            "--analytic",
            "gaussian:data.npy",
            "--method",
            "vp-sde",
            "--samples",
            "x.npy",
            "--divergence",
            "exact",
            "--json",
            "o.json",
        ],
    );
    // sample mean and unbiased covariance, as GaussianDenoiser::from_data fits them
    let mut mu = [0.0; 2];
    for r in data.chunks(2) {
        mu[0] += r[0] / n as f64;
        mu[1] += r[1] / n as f64;
    }
    let mut cov = [[0.0; 2]; 2];
    for r in data.chunks(2) {
        for i in 0..2 {
            for j in 0..2 {
                cov[i][j] += (r[i] - mu[i]) * (r[j] - mu[j]) / (n - 1) as f64;
            }
        }
    }
    let want = -pts.iter().map(|&x| vp_log_density(x, mu, cov, 1e-3)).sum::<f64>() / pts.len() as f64;
    let o = json(&d.join("o.json"));
    let got = o["nll_nats"].as_f64().unwrap();
    println!("nll-ode {got:.6} nats vs closed form {want:.6} ({o})");
    assert!((got - want).abs() < 1e-2, "{got} vs {want}");
    assert_eq!(json_value(&d.join("o.json")), got);
    assert_eq!((o["exact"].as_bool(), o["n"].as_u64(), o["sde"].as_str()), (Some(true), Some(6), Some("vp")));
    fails(
        &d,
        &["eval", "--metric", "nll-ode", "--analytic", "gaussian:data.npy", "--samples", "x.npy"],
        "--method",
    );
    fails(
        &d,
        &["eval", "--metric", "nll-ode", "--analytic", "gaussian:data.npy", "--method", "ve-sde"],
        "--samples",
    );
    std::fs::remove_dir_all(&d).unwrap();
}
