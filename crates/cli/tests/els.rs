//! The ELS machine through the CLI: `sample --analytic els:DATA --patch P|FILE`, its
//! memorisation against the empirical denoiser's, and `els-calibrate` on a trained run.

mod common;
use common::*;
use rediffuse_data::npy::{read_npy, write_npy, NpyDtype};

fn field(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The empirical denoiser reproduces training digits; the ELS machine with 3×3 patches makes
/// new images (seed 002: creativity from locality), in the data range.
#[test]
fn els_samples_are_new_where_the_empirical_denoiser_copies() {
    let d = tmp("els-memorization");
    let sample = |spec: &[&str], out: &str| {
        let mut args = vec!["sample", "--n", "24", "--steps", "15", "--sampler", "ddim", "--out", out];
        args.extend_from_slice(spec);
        ok(&d, &args);
        let json = format!("{out}.json");
        ok(&d, &["eval", "--samples", out, "--data", "digits", "--metric", "memorization", "--json", &json]);
        json_value(&d.join(&json))
    };
    let copies_emp = sample(&["--analytic", "empirical:digits"], "emp.npy");
    let copies_els = sample(&["--analytic", "els:digits", "--patch", "3"], "els.npy");
    eprintln!("near-copy fraction: empirical {copies_emp}, ELS P=3 {copies_els}");
    assert!(copies_emp > 0.9, "{copies_emp}");
    assert!(copies_els < 0.2, "{copies_els}");
    let x = read_npy(d.join("els.npy")).unwrap();
    assert_eq!(x.shape, vec![24, 1, 8, 8]);
    assert!(x.data.iter().all(|v| v.is_finite() && v.abs() <= 1.0 + 1e-6));
}

/// `els-calibrate` writes one row and knot per step; a patch covering the whole 8×8 image is the
/// empirical denoiser, so their r² agree; the schedule it writes drives `sample --patch FILE`.
#[test]
fn calibration_report_drives_sampling() {
    let d = tmp("els-calibrate");
    ok(
        &d,
        &[
            "train", "--data", "digits", "--model", "unet", "--preset", "digits", "--steps", "20", "--out",
            "run", "--quiet",
        ],
    );
    let out = ok(
        &d,
        &[
            "els-calibrate",
            "--run",
            "run",
            "--patches",
            "3,1,15",
            "--samples",
            "6",
            "--steps",
            "4",
            "--out",
            "cal.json",
            "--quiet",
        ],
    );
    assert!(out.contains("median r²"), "{out}");
    let rep = field(&d.join("cal.json"));
    assert_eq!(rep["patches"], serde_json::json!([1, 3, 15]));
    let rows = rep["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rep["knots"].as_array().unwrap().len(), 4);
    for r in rows {
        let (whole, emp) = (r["r2"][2].as_f64().unwrap(), r["r2_empirical"].as_f64().unwrap());
        assert!((whole - emp).abs() < 1e-6, "{whole} vs {emp}");
        let best = r["best_r2"].as_f64().unwrap();
        assert!(r["r2"].as_array().unwrap().iter().all(|v| v.as_f64().unwrap() <= best));
    }
    let sigmas: Vec<f64> = rows.iter().map(|r| r["sigma"].as_f64().unwrap()).collect();
    assert!(sigmas.windows(2).all(|w| w[1] < w[0]), "{sigmas:?}");
    ok(
        &d,
        &[
            "sample",
            "--analytic",
            "els:digits",
            "--patch",
            "cal.json",
            "--n",
            "4",
            "--steps",
            "5",
            "--out",
            "s.npy",
        ],
    );
    // the report is never overwritten without --force
    fails(
        &d,
        &["els-calibrate", "--run", "run", "--samples", "2", "--steps", "2", "--out", "cal.json"],
        "cal.json",
    );
}

#[test]
fn els_bad_inputs_fail_cleanly() {
    let d = tmp("els-bad");
    std::fs::write(d.join("bad.json"), "{\"knots\": [{\"sigma\": -1, \"patch\": 3}]}").unwrap();
    let sample = |extra: &[&str], needle: &str| {
        let mut args = vec!["sample", "--n", "2", "--out", "x.npy"];
        args.extend_from_slice(extra);
        fails(&d, &args, needle);
    };
    sample(&["--analytic", "els:digits", "--patch", "4"], "odd");
    sample(&["--analytic", "els:digits"], "--patch");
    sample(&["--analytic", "els:moons", "--patch", "3"], "image set");
    sample(&["--analytic", "empirical:digits", "--patch", "3"], "--patch applies");
    sample(&["--analytic", "els:digits", "--patch", "bad.json"], "sigma");
    sample(&["--analytic", "els:digits", "--patch", "missing.json"], "missing.json");
    write_npy(d.join("s.npy"), &[2, 1, 8, 8], &[0.0; 128], NpyDtype::F32).unwrap();
    fails(
        &d,
        &[
            "eval",
            "--metric",
            "nll-ode",
            "--analytic",
            "els:digits",
            "--method",
            "vp-sde",
            "--samples",
            "s.npy",
        ],
        "not differentiable",
    );
    fails(&d, &["els-calibrate", "--run", "nope", "--out", "c.json"], "nope");
    fails(&d, &["els-calibrate", "--run", "nope", "--patches", "2", "--out", "c.json"], "odd");
    assert!(!d.join("x.npy").exists() && !d.join("c.json").exists());
}
