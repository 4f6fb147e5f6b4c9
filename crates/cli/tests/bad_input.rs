//! Bad input gives a clear error and a non-zero exit, never a panic, and never
//! overwrites a user's file.

mod common;
use common::*;

#[test]
fn bad_inputs_are_clean_errors() {
    let d = tmp("bad");
    fails(&d, &["train", "--data", "nope", "--steps", "10", "--out", "r1", "--quiet"], "unknown data set");
    fails(&d, &["train", "--data", "moons", "--steps", "-5", "--out", "r2", "--quiet"], "--steps");
    fails(&d, &["train", "--data", "moons", "--lr", "NaN", "--out", "r3", "--quiet"], "--lr");
    fails(&d, &["train", "--data", "moons", "--lr", "-1", "--out", "r3b", "--quiet"], "--lr");
    fails(&d, &["train", "--data", "missing.npy", "--out", "r4", "--quiet"], "missing.npy");
    std::fs::write(d.join("bad.toml"), "steps = \"many\"").unwrap();
    fails(&d, &["train", "--config", "bad.toml", "--out", "r5", "--quiet"], "bad.toml");
    std::fs::write(d.join("spec.json"), r#"{"weights":[1.0],"means":[[0,0]],"stds":[-1]}"#).unwrap();
    fails(&d, &["sample", "--analytic", "gmm:spec.json", "--n", "4", "--out", "x.npy"], "std");
    std::fs::write(d.join("broken.json"), "{\"weights\": [1.0,").unwrap();
    fails(&d, &["sample", "--analytic", "gmm:broken.json", "--n", "4", "--out", "x.npy"], "broken.json");
    // wrong-shape init noise
    std::fs::write(d.join("ok.json"), r#"{"weights":[1.0],"means":[[0,0]],"stds":[1]}"#).unwrap();
    rediffuse_data::npy::write_npy(d.join("xT.npy"), &[4, 3], &[0.0; 12], rediffuse_data::NpyDtype::F32)
        .unwrap();
    fails(
        &d,
        &["sample", "--analytic", "gmm:ok.json", "--n", "4", "--init-noise", "xT.npy", "--out", "x.npy"],
        "shape",
    );
    // truncated .npy
    std::fs::write(d.join("trunc.npy"), b"\x93NUMPY\x01\x00").unwrap();
    fails(&d, &["eval", "--samples", "trunc.npy", "--data", "moons", "--metric", "swd"], "trunc.npy");
    fails(&d, &["sample", "--analytic", "gmm:ok.json", "--n", "0", "--out", "x.npy"], "--n");
    fails(
        &d,
        &["sample", "--analytic", "gmm:ok.json", "--n", "4", "--eta", "NaN", "--out", "x.npy"],
        "--eta",
    );
    fails(&d, &["sample", "--run", "no-such-run", "--n", "4", "--out", "x.npy"], "no-such-run");
    // σ grids: sigma-min needs the timesteps grid, NaN clip, too many steps, bad ρ
    let g = ["sample", "--analytic", "gmm:ok.json", "--n", "4", "--out", "g.npy"];
    let with = |extra: &[&'static str]| [&g[..], extra].concat();
    fails(
        &d,
        &with(&["--sampler", "dpmpp-2m", "--sigmas", "karras", "--final-sigma", "sigma-min"]),
        "sigma-min",
    );
    fails(&d, &with(&["--sampler", "dpmpp-2m", "--lambda-min-clipped", "NaN"]), "lambda-min-clipped");
    fails(&d, &with(&["--sampler", "dpmpp-2m", "--steps", "1000"]), "steps");
    fails(&d, &with(&["--sampler", "euler", "--steps", "1001"]), "steps");
    fails(&d, &with(&["--sampler", "heun", "--sigmas", "karras", "--rho", "-1"]), "rho");
    fails(&d, &with(&["--sampler", "dpm-solver", "--order", "4"]), "order");
    fails(&d, &with(&["--sampler", "dpmpp-2m", "--lambda-min-clipped", "100"]), "lambda");
    assert!(!d.join("g.npy").exists());
    // existing outputs are not overwritten
    std::fs::write(d.join("keep.npy"), b"user data").unwrap();
    fails(&d, &["sample", "--analytic", "gmm:ok.json", "--n", "4", "--out", "keep.npy"], "already exists");
    assert_eq!(std::fs::read(d.join("keep.npy")).unwrap(), b"user data");
    std::fs::create_dir_all(d.join("used")).unwrap();
    std::fs::write(d.join("used/notes.txt"), b"mine").unwrap();
    fails(&d, &["train", "--data", "moons", "--steps", "5", "--out", "used", "--quiet"], "used");
    assert_eq!(std::fs::read(d.join("used/notes.txt")).unwrap(), b"mine");
}
