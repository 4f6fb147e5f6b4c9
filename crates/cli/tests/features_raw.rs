//! `rediffuse eval` feature metrics with `--features raw` on the embedded digits:
//! FID/KID/precision–recall/memorisation values, saved statistics, and clean errors.

mod common;
mod features_util;
use common::*;
use features_util::*;
use rediffuse_data::npy::write_npy;
use rediffuse_data::NpyDtype;

#[test]
fn raw_feature_metrics_on_digits() {
    let d = tmp("feat-raw");
    write_digit_files(&d);
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--features", "raw"];
        args.extend_from_slice(extra);
        ok(&d, &args)
    };

    // FID of the digits against themselves (all 1797 images drawn as reference) is 0
    eval(&["--samples", "all.npy", "--data", "digits", "--metric", "fid", "--json", "self.json"]);
    let self_fid = json_value(&d.join("self.json"));
    assert!(self_fid.abs() < 1e-6, "{self_fid}");

    // statistics saved once and reused give the same FID as computing them from --data
    eval(&[
        "--samples",
        "a.npy",
        "--data",
        "b.npy",
        "--metric",
        "fid",
        "--save-stats",
        "b.stats",
        "--json",
        "f1.json",
    ]);
    eval(&["--samples", "a.npy", "--stats", "b.stats", "--metric", "fid", "--json", "f2.json"]);
    let (f1, f2) = (json_value(&d.join("f1.json")), json_value(&d.join("f2.json")));
    assert!((f1 - f2).abs() <= 1e-9 * f1, "{f1} vs {f2}");
    // every row of the 899-image reference against the 898 samples (sets of different sizes, as
    // pytorch-fid); --n draws the same number from both
    assert_eq!(json_field(&d.join("f1.json"), "n_reference"), (1797 - HALF) as f64);
    assert_eq!(json_field(&d.join("f2.json"), "n_reference"), (1797 - HALF) as f64);
    eval(&["--samples", "a.npy", "--data", "b.npy", "--metric", "fid", "--n", "500", "--json", "f3.json"]);
    assert_eq!(json_field(&d.join("f3.json"), "n_reference"), 500.0);
    assert_eq!(json_field(&d.join("f3.json"), "n_samples"), 500.0);
    // two halves of the digits are close, digits and noise far apart
    eval(&["--samples", "noise.npy", "--data", "b.npy", "--metric", "fid", "--json", "fn.json"]);
    let f_noise = json_value(&d.join("fn.json"));
    eprintln!("raw FID: halves {f1:.4}, noise {f_noise:.4}");
    assert!(f1 > 0.0 && f_noise > 20.0 * f1, "halves {f1}, noise {f_noise}");

    // KID: unbiased, so ≈ 0 for two halves (within its spread), large for noise; JSON has std
    eval(&[
        "--samples",
        "a.npy",
        "--data",
        "b.npy",
        "--metric",
        "kid",
        "--kid-subset-size",
        "400",
        "--json",
        "k.json",
    ]);
    eval(&["--samples", "noise.npy", "--data", "b.npy", "--metric", "kid", "--json", "kn.json"]);
    let (k, k_std) = (json_value(&d.join("k.json")), json_field(&d.join("k.json"), "std"));
    let k_noise = json_value(&d.join("kn.json"));
    eprintln!("raw KID: halves {k:.5} ± {k_std:.5}, noise {k_noise:.5}");
    assert!(k_std > 0.0 && k.abs() < 3.0 * k_std, "{k} ± {k_std}");
    assert!(k_noise > 50.0 * k_std, "{k_noise}");
    assert_eq!(json_field(&d.join("k.json"), "subset_size"), 400.0);

    // precision/recall: halves cover each other, noise lies off the digit manifold
    eval(&["--samples", "a.npy", "--data", "b.npy", "--metric", "prd", "--json", "p.json"]);
    eval(&["--samples", "noise.npy", "--data", "b.npy", "--metric", "prd", "--json", "pn.json"]);
    let (p, r) = (json_field(&d.join("p.json"), "precision"), json_field(&d.join("p.json"), "recall"));
    let pn = json_field(&d.join("pn.json"), "precision");
    eprintln!("raw PRD: halves {p:.3}/{r:.3}, noise precision {pn:.3}");
    assert!(p > 0.6 && r > 0.6 && pn < 0.05, "{p} {r} {pn}");

    // memorisation: the training set itself is all near-copies, noise none
    ok(
        &d,
        &["eval", "--samples", "all.npy", "--data", "digits", "--metric", "memorization", "--json", "m.json"],
    );
    assert_eq!(json_field(&d.join("m.json"), "fraction_near_copies"), 1.0);
    assert_eq!(json_value(&d.join("m.json")), 1.0);
    assert_eq!(json_field(&d.join("m.json"), "n_reference"), 1797.0);
    ok(
        &d,
        &[
            "eval",
            "--samples",
            "noise.npy",
            "--data",
            "digits",
            "--metric",
            "memorization",
            "--json",
            "mn.json",
        ],
    );
    assert_eq!(json_value(&d.join("mn.json")), 0.0);
}

#[test]
fn feature_metric_bad_inputs_fail_cleanly() {
    let d = tmp("feat-bad");
    write_digit_files(&d);
    rediffuse_data::write_npy(d.join("rows.npy"), &[10, 3], &[0.0; 30], rediffuse_data::NpyDtype::F32)
        .unwrap();
    let fid = |extra: &[&str], needle: &str| {
        let mut args = vec!["eval", "--metric", "fid", "--samples", "a.npy"];
        args.extend_from_slice(extra);
        fails(&d, &args, needle);
    };
    fid(&["--features", "inception:missing.safetensors", "--data", "digits"], "missing.safetensors");
    fid(&["--features", "classifier:no-such-dir", "--data", "digits"], "no-such-dir");
    fid(&["--features", "clip", "--data", "digits"], "--features");
    fid(&["--data", "digits"], "--features");
    fid(&["--features", "raw"], "--data");
    fid(&["--features", "raw", "--data", "moons"], "shape");
    fails(
        &d,
        &["eval", "--metric", "fid", "--features", "raw", "--samples", "rows.npy", "--data", "digits"],
        "shape",
    );
    fid(&["--features", "raw", "--data", "digits", "--n", "5000"], "--n");
    // a corrupt weights file and a stats file from another extractor
    std::fs::write(d.join("bad.safetensors"), b"not a safetensors file").unwrap();
    fid(&["--features", "inception:bad.safetensors", "--data", "digits"], "bad.safetensors");
    ok(
        &d,
        &[
            "eval",
            "--metric",
            "fid",
            "--features",
            "raw",
            "--samples",
            "rows.npy",
            "--data",
            "rows.npy",
            "--save-stats",
            "rows.stats",
        ],
    );
    fid(&["--features", "raw", "--stats", "rows.stats"], "computed with features");
    std::fs::write(d.join("junk.stats"), b"junk").unwrap();
    fid(&["--features", "raw", "--stats", "junk.stats"], "junk.stats");
    // an existing statistics file is not overwritten
    fid(&["--features", "raw", "--data", "digits", "--save-stats", "rows.stats"], "already exists");
    // metric-specific requirements
    fails(&d, &["eval", "--metric", "is", "--features", "raw", "--samples", "a.npy"], "logits");
    fails(
        &d,
        &["eval", "--metric", "kid", "--features", "raw", "--samples", "a.npy", "--stats", "rows.stats"],
        "--stats",
    );
    fails(
        &d,
        &["eval", "--metric", "swd", "--features", "raw", "--samples", "a.npy", "--data", "digits"],
        "--features",
    );
}

/// FID and KID between sets of different sizes work by default (3,000 samples against a
/// 2,500-row reference, every row of each, as pytorch-fid) and agree with the same sets cut
/// to equal size in the limit of little difference; a larger `--n` than either holds is an error.
#[test]
fn fid_and_kid_of_sets_of_different_sizes() {
    let d = tmp("feat-sizes");
    let write = |name: &str, rows: usize, offset: u64, shift: f32| {
        let v: Vec<f32> = (0..rows * 64).map(|i| gauss(offset + i as u64) * 0.5 + shift).collect();
        write_npy(d.join(name), &[rows, 1, 8, 8], &v, NpyDtype::F32).unwrap();
    };
    write("a.npy", 3000, 0, 0.0);
    write("b.npy", 2500, 10_000_000, 0.0);
    write("c.npy", 2500, 20_000_000, 0.3);
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--features", "raw", "--samples", "a.npy"];
        args.extend_from_slice(extra);
        ok(&d, &args)
    };
    eval(&["--data", "b.npy", "--metric", "fid", "--json", "same.json"]);
    eval(&["--data", "c.npy", "--metric", "fid", "--json", "shift.json"]);
    eval(&["--data", "b.npy", "--metric", "kid", "--json", "kid.json"]);
    let (same, shift) = (json_value(&d.join("same.json")), json_value(&d.join("shift.json")));
    assert_eq!(json_field(&d.join("same.json"), "n_samples"), 3000.0);
    assert_eq!(json_field(&d.join("same.json"), "n_reference"), 2500.0);
    assert_eq!(json_field(&d.join("kid.json"), "n_reference"), 2500.0);
    // a mean shift of 0.3 in 64 dimensions: FID ≈ 64·0.09 = 5.76 above the sampling noise
    println!("raw FID 3000 vs 2500: same law {same:.4}, shifted {shift:.4}");
    assert!(same < 0.6 && (shift - same - 5.76).abs() < 0.6, "{same} {shift}");
    let kid = json_value(&d.join("kid.json"));
    assert!(kid.abs() < 0.01, "{kid}");
    fails(
        &d,
        &[
            "eval",
            "--features",
            "raw",
            "--samples",
            "a.npy",
            "--data",
            "b.npy",
            "--metric",
            "fid",
            "--n",
            "2600",
        ],
        "2600",
    );
    std::fs::remove_dir_all(&d).unwrap();
}
