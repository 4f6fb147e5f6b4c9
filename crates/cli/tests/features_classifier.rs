//! `rediffuse train-classifier` on the embedded digits, and the classifier as feature
//! network for FID / KID / IS (`--features classifier:DIR`).

mod common;
mod features_util;
use common::*;
use features_util::*;

#[test]
fn digits_classifier_trains_and_serves_as_feature_network() {
    let d = tmp("feat-clf");
    write_digit_files(&d);
    let out = ok(&d, &["train-classifier", "--data", "digits", "--out", "clf", "--quiet"]);
    let acc = json_field(&d.join("clf/metrics.json"), "test_accuracy");
    eprintln!("{out}");
    assert!(out.contains("test accuracy"), "{out}");
    assert!(acc >= 0.95, "digits hold-out accuracy {acc}");
    assert_eq!(json_field(&d.join("clf/metrics.json"), "n_test"), 359.0);
    // a non-empty output folder is refused and left alone
    fails(&d, &["train-classifier", "--data", "digits", "--out", "clf", "--quiet"], "not empty");
    fails(&d, &["train-classifier", "--data", "moons", "--out", "c2", "--quiet"], "labelled image set");
    fails(&d, &["train-classifier", "--data", "digits", "--out", "c3", "--lr", "-1", "--quiet"], "--lr");

    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--features", "classifier:clf"];
        args.extend_from_slice(extra);
        ok(&d, &args)
    };
    // FID in classifier features: two disjoint halves close, digits vs noise far
    eval(&["--samples", "a.npy", "--data", "b.npy", "--metric", "fid", "--json", "f.json"]);
    eval(&["--samples", "noise.npy", "--data", "b.npy", "--metric", "fid", "--json", "fn.json"]);
    let (f, f_noise) = (json_value(&d.join("f.json")), json_value(&d.join("fn.json")));
    eprintln!("classifier FID: halves {f:.4}, noise {f_noise:.4}");
    assert!(f < 5.0 && f_noise > 20.0 * f, "halves {f}, noise {f_noise}");
    let id = std::fs::read_to_string(d.join("f.json")).unwrap();
    assert!(id.contains("\"features\": \"classifier/1x8x8/f128/"), "{id}");

    // KID JSON carries the spread over subsets
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
    let (k, k_std) = (json_value(&d.join("k.json")), json_field(&d.join("k.json"), "std"));
    eprintln!("classifier KID: halves {k:.5} ± {k_std:.5}");
    assert!(k_std > 0.0 && k.abs() < 3.0 * k_std, "{k} ± {k_std}");

    // IS of real digits: close to the 10 classes, far above 1; noise far lower
    eval(&["--samples", "all.npy", "--metric", "is", "--json", "is.json"]);
    eval(&["--samples", "noise.npy", "--metric", "is", "--json", "isn.json"]);
    let (is, is_std) = (json_value(&d.join("is.json")), json_field(&d.join("is.json"), "std"));
    let is_noise = json_value(&d.join("isn.json"));
    eprintln!("classifier IS: digits {is:.3} ± {is_std:.3}, noise {is_noise:.3}");
    assert!(is > 8.5 && is <= 10.0 + 1e-9 && is_std < 0.5, "{is} ± {is_std}");
    assert!(is_noise < is - 2.0, "{is_noise}");

    // memorisation in classifier-feature space: the training set itself is all near-copies
    eval(&["--samples", "all.npy", "--data", "digits", "--metric", "memorization", "--json", "m.json"]);
    assert_eq!(json_field(&d.join("m.json"), "fraction_near_copies"), 1.0);

    // wrong-shape samples and statistics of a different extractor are clean errors
    rediffuse_data::write_npy(
        d.join("big.npy"),
        &[4, 1, 16, 16],
        &[0.0; 1024],
        rediffuse_data::NpyDtype::F32,
    )
    .unwrap();
    fails(&d, &["eval", "--features", "classifier:clf", "--samples", "big.npy", "--metric", "is"], "shape");
    ok(
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
            "--save-stats",
            "raw.stats",
        ],
    );
    fails(
        &d,
        &[
            "eval",
            "--features",
            "classifier:clf",
            "--samples",
            "a.npy",
            "--stats",
            "raw.stats",
            "--metric",
            "fid",
        ],
        "computed with features",
    );
    std::fs::remove_file(d.join("clf/classifier.safetensors")).unwrap();
    fails(
        &d,
        &["eval", "--features", "classifier:clf", "--samples", "a.npy", "--metric", "is"],
        "classifier.safetensors",
    );
}

/// MNIST with the default settings (minutes of CPU; needs the IDX files):
/// `REDIFFUSE_MNIST_DIR=/path/to/mnist cargo test --release -p rediffuse --test features_classifier -- --ignored`
#[test]
#[ignore]
fn mnist_classifier_reaches_98_percent() {
    let dir = std::env::var("REDIFFUSE_MNIST_DIR")
        .expect("set REDIFFUSE_MNIST_DIR to a folder with the MNIST IDX files");
    let d = tmp("feat-mnist");
    let data = format!("mnist:{dir}");
    let out = ok(&d, &["train-classifier", "--data", &data, "--out", "clf", "--quiet"]);
    let acc = json_field(&d.join("clf/metrics.json"), "test_accuracy");
    eprintln!("{out}");
    assert!(acc >= 0.98, "MNIST test accuracy {acc}");
    assert_eq!(json_field(&d.join("clf/metrics.json"), "n_test"), 10000.0);
}
