//! The bad-input catalogue: one table over every command. Each case must end with exit code 1,
//! an `error:` line that names the problem (the case's needle), no panic, and the folder exactly
//! as it was (no user file changed, no partial output or run folder left behind).

mod common;
use common::*;
use rediffuse_data::npy::write_npy;
use rediffuse_data::NpyDtype;
use std::path::Path;

/// Every file under `dir` (relative path, bytes), sorted; folders are listed too.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push((rel + "/", Vec::new()));
                stack.push(e.path());
            } else {
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn copy_run(d: &Path, to: &str) {
    let (src, dst) = (d.join("run"), d.join(to));
    std::fs::create_dir_all(dst.join("checkpoint")).unwrap();
    for f in ["config.toml", "metrics.jsonl"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    for e in std::fs::read_dir(src.join("checkpoint")).unwrap().flatten() {
        std::fs::copy(e.path(), dst.join("checkpoint").join(e.file_name())).unwrap();
    }
}

/// The fixtures: a trained moons run, damaged copies of it, and damaged data files.
fn fixtures(d: &Path) {
    ok(d, &["train", "--data", "moons", "--steps", "20", "--out", "run", "--quiet"]);
    ok(d, &["train", "--data", "moons", "--method", "flow", "--steps", "10", "--out", "flowrun", "--quiet"]);
    copy_run(d, "badcfg");
    std::fs::write(d.join("badcfg/config.toml"), "model = 3\n").unwrap();
    copy_run(d, "truncw");
    for f in ["model.safetensors", "ema.safetensors"] {
        let m = std::fs::read(d.join("truncw/checkpoint").join(f)).unwrap();
        std::fs::write(d.join("truncw/checkpoint").join(f), &m[..m.len() / 2]).unwrap();
    }
    std::fs::create_dir_all(d.join("cache/mnist")).unwrap();
    copy_run(d, "garbagew");
    std::fs::write(d.join("garbagew/checkpoint/ema.safetensors"), b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk")
        .unwrap();
    copy_run(d, "noema");
    std::fs::remove_file(d.join("noema/checkpoint/ema.safetensors")).unwrap();
    copy_run(d, "badstate");
    std::fs::write(d.join("badstate/checkpoint/state.json"), "{").unwrap();
    std::fs::write(d.join("ok.json"), r#"{"weights":[1.0],"means":[[0,0]],"stds":[1]}"#).unwrap();
    std::fs::write(d.join("spec.json"), r#"{"weights":[1.0],"means":[[0,0]],"stds":[-1]}"#).unwrap();
    std::fs::write(d.join("broken.json"), "{\"weights\": [1.0,").unwrap();
    std::fs::write(d.join("bad.toml"), "steps = \"many\"").unwrap();
    write_npy(d.join("xT.npy"), &[4, 3], &[0.0; 12], NpyDtype::F32).unwrap();
    write_npy(d.join("pts.npy"), &[8, 2], &[0.5; 16], NpyDtype::F32).unwrap();
    write_npy(d.join("img.npy"), &[4, 1, 8, 8], &[0.0; 256], NpyDtype::F32).unwrap();
    let mut nan = vec![0.1f32; 20];
    nan[7] = f32::NAN;
    write_npy(d.join("nan.npy"), &[10, 2], &nan, NpyDtype::F32).unwrap();
    std::fs::write(d.join("trunc.npy"), b"\x93NUMPY\x01\x00").unwrap();
    let mut body = std::fs::read(d.join("pts.npy")).unwrap();
    body.truncate(body.len() - 10);
    std::fs::write(d.join("short.npy"), body).unwrap();
    std::fs::write(d.join("keep.npy"), b"user data").unwrap();
    std::fs::write(d.join("file.txt"), b"a file, not a folder").unwrap();
    std::fs::create_dir_all(d.join("used")).unwrap();
    std::fs::write(d.join("used/notes.txt"), b"mine").unwrap();
    // IDX files: a truncated image file and a label file with a bad magic number
    std::fs::create_dir_all(d.join("idx")).unwrap();
    let mut img = vec![0u8, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28];
    img.extend(vec![7u8; 100]);
    std::fs::write(d.join("idx/train-images-idx3-ubyte"), img).unwrap();
    std::fs::write(d.join("idx/train-labels-idx1-ubyte"), [0u8, 0, 9, 9, 0, 0, 0, 10]).unwrap();
    // an image folder holding a PNG that is not one
    std::fs::create_dir_all(d.join("pngs")).unwrap();
    std::fs::write(d.join("pngs/a.png"), b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
}

type Case = (&'static str, &'static [&'static str], &'static str);

const SAMPLE_GMM: [&str; 7] = ["sample", "--analytic", "gmm:ok.json", "--n", "4", "--out", "g.npy"];

/// (what, arguments, needle the message must contain).
const CASES: &[Case] = &[
    // train: data, config and hyper-parameters
    (
        "unknown data set",
        &["train", "--data", "nope", "--steps", "10", "--out", "r1", "--quiet"],
        "unknown data set",
    ),
    ("missing data file", &["train", "--data", "missing.npy", "--out", "r1", "--quiet"], "missing.npy"),
    ("NaN in the data", &["train", "--data", "nan.npy", "--steps", "5", "--out", "r1", "--quiet"], "NaN"),
    (
        "truncated .npy data",
        &["train", "--data", "short.npy", "--steps", "5", "--out", "r1", "--quiet"],
        "short.npy",
    ),
    ("negative steps", &["train", "--data", "moons", "--steps", "-5", "--out", "r1", "--quiet"], "--steps"),
    ("zero steps", &["train", "--data", "moons", "--steps", "0", "--out", "r1", "--quiet"], "--steps"),
    ("NaN learning rate", &["train", "--data", "moons", "--lr", "NaN", "--out", "r1", "--quiet"], "--lr"),
    ("negative learning rate", &["train", "--data", "moons", "--lr", "-1", "--out", "r1", "--quiet"], "--lr"),
    (
        "zero batch size",
        &["train", "--data", "moons", "--batch-size", "0", "--out", "r1", "--quiet"],
        "batch",
    ),
    (
        "EMA decay above 1",
        &["train", "--data", "moons", "--ema-decay", "1.5", "--out", "r1", "--quiet"],
        "--ema-decay",
    ),
    (
        "negative grad clip",
        &["train", "--data", "moons", "--grad-clip", "-1", "--out", "r1", "--quiet"],
        "grad-clip",
    ),
    (
        "zero timesteps",
        &["train", "--data", "moons", "--timesteps", "0", "--out", "r1", "--quiet"],
        "timesteps",
    ),
    (
        "p-uncond above 1",
        &["train", "--data", "digits", "--class-cond", "--p-uncond", "2", "--out", "r1", "--quiet"],
        "p_uncond",
    ),
    (
        "flow sigma-min 1",
        &["train", "--data", "moons", "--method", "flow", "--flow-sigma-min", "1", "--out", "r1", "--quiet"],
        "sigma_min",
    ),
    (
        "OT coupling without flow",
        &["train", "--data", "moons", "--ot-coupling", "--out", "r1", "--quiet"],
        "flow",
    ),
    (
        "consistency N = 1",
        &["train", "--data", "moons", "--method", "consistency", "--cm-steps", "1", "--out", "r1", "--quiet"],
        "method.steps",
    ),
    (
        "cold diffusion on points",
        &["train", "--data", "moons", "--method", "cold", "--out", "r1", "--quiet"],
        "image",
    ),
    (
        "blur size 0",
        &[
            "train",
            "--data",
            "digits",
            "--model",
            "unet",
            "--method",
            "cold",
            "--blur-size",
            "0",
            "--out",
            "r1",
            "--quiet",
        ],
        "blur",
    ),
    ("malformed config.toml", &["train", "--config", "bad.toml", "--out", "r1", "--quiet"], "bad.toml"),
    ("missing config", &["train", "--config", "none.toml", "--out", "r1", "--quiet"], "none.toml"),
    (
        "output folder in use",
        &["train", "--data", "moons", "--steps", "5", "--out", "used", "--quiet"],
        "used",
    ),
    (
        "output inside a file",
        &["train", "--data", "moons", "--steps", "5", "--out", "file.txt/r", "--quiet"],
        "file.txt",
    ),
    ("truncated IDX", &["train", "--data", "mnist:idx", "--model", "unet", "--out", "r1", "--quiet"], "idx"),
    (
        "corrupt PNG in a folder",
        &["train", "--data", "folder:pngs", "--model", "unet", "--out", "r1", "--quiet"],
        "a.png",
    ),
    // train --resume on damaged runs
    ("resume: no run", &["train", "--resume", "--out", "nowhere", "--quiet"], "nowhere"),
    ("resume: corrupt state.json", &["train", "--resume", "--out", "badstate", "--quiet"], "state.json"),
    ("resume: truncated weights", &["train", "--resume", "--out", "truncw", "--quiet"], "model.safetensors"),
    ("resume: malformed config", &["train", "--resume", "--out", "badcfg", "--quiet"], "config.toml"),
    // sample
    ("sample: no run", &["sample", "--run", "no-such-run", "--n", "4", "--out", "x.npy"], "no-such-run"),
    (
        "sample: truncated weights",
        &["sample", "--run", "truncw", "--n", "4", "--out", "x.npy"],
        "ema.safetensors",
    ),
    (
        "sample: garbage EMA weights",
        &["sample", "--run", "garbagew", "--n", "4", "--out", "x.npy"],
        "ema.safetensors",
    ),
    (
        "sample: missing EMA weights",
        &["sample", "--run", "noema", "--n", "4", "--out", "x.npy"],
        "ema.safetensors",
    ),
    (
        "sample: malformed run config",
        &["sample", "--run", "badcfg", "--n", "4", "--out", "x.npy"],
        "config.toml",
    ),
    (
        "sample: existing output",
        &["sample", "--run", "run", "--n", "4", "--out", "keep.npy"],
        "already exists",
    ),
    (
        "sample: output inside a file",
        &["sample", "--run", "run", "--n", "4", "--out", "file.txt/x.npy"],
        "file.txt",
    ),
    ("sample: n = 0", &["sample", "--run", "run", "--n", "0", "--out", "x.npy"], "--n"),
    ("sample: NaN eta", &["sample", "--run", "run", "--n", "4", "--eta", "NaN", "--out", "x.npy"], "--eta"),
    (
        "sample: wrong-shape init noise",
        &["sample", "--run", "run", "--n", "4", "--init-noise", "xT.npy", "--out", "x.npy"],
        "shape",
    ),
    (
        "sample: truncated init noise",
        &["sample", "--run", "run", "--n", "4", "--init-noise", "trunc.npy", "--out", "x.npy"],
        "trunc.npy",
    ),
    (
        "sample: class for an unconditional run",
        &["sample", "--run", "run", "--n", "4", "--class", "3", "--out", "x.npy"],
        "class",
    ),
    (
        "sample: NaN guidance",
        &["sample", "--run", "run", "--n", "4", "--guidance-scale", "NaN", "--out", "x.npy"],
        "guidance",
    ),
    (
        "sample: lowres for a plain run",
        &["sample", "--run", "run", "--n", "4", "--lowres", "pts.npy", "--out", "x.npy"],
        "lowres",
    ),
    (
        "sample: negative GMM std",
        &["sample", "--analytic", "gmm:spec.json", "--n", "4", "--out", "x.npy"],
        "std",
    ),
    (
        "sample: malformed GMM spec",
        &["sample", "--analytic", "gmm:broken.json", "--n", "4", "--out", "x.npy"],
        "broken.json",
    ),
    (
        "sample: unknown analytic",
        &["sample", "--analytic", "nope:ok.json", "--n", "4", "--out", "x.npy"],
        "nope",
    ),
    (
        "sample: sigma-min without timesteps grid",
        &[
            SAMPLE_GMM[0],
            SAMPLE_GMM[1],
            SAMPLE_GMM[2],
            SAMPLE_GMM[3],
            SAMPLE_GMM[4],
            SAMPLE_GMM[5],
            SAMPLE_GMM[6],
            "--sampler",
            "dpmpp-2m",
            "--sigmas",
            "karras",
            "--final-sigma",
            "sigma-min",
        ],
        "sigma-min",
    ),
    (
        "sample: NaN lambda clip",
        &[
            SAMPLE_GMM[0],
            SAMPLE_GMM[1],
            SAMPLE_GMM[2],
            SAMPLE_GMM[3],
            SAMPLE_GMM[4],
            SAMPLE_GMM[5],
            SAMPLE_GMM[6],
            "--sampler",
            "dpmpp-2m",
            "--lambda-min-clipped",
            "NaN",
        ],
        "lambda-min-clipped",
    ),
    (
        "sample: too many steps",
        &[
            SAMPLE_GMM[0],
            SAMPLE_GMM[1],
            SAMPLE_GMM[2],
            SAMPLE_GMM[3],
            SAMPLE_GMM[4],
            SAMPLE_GMM[5],
            SAMPLE_GMM[6],
            "--sampler",
            "euler",
            "--steps",
            "1001",
        ],
        "steps",
    ),
    (
        "sample: negative rho",
        &[
            SAMPLE_GMM[0],
            SAMPLE_GMM[1],
            SAMPLE_GMM[2],
            SAMPLE_GMM[3],
            SAMPLE_GMM[4],
            SAMPLE_GMM[5],
            SAMPLE_GMM[6],
            "--sampler",
            "heun",
            "--sigmas",
            "karras",
            "--rho",
            "-1",
        ],
        "rho",
    ),
    (
        "sample: solver order 4",
        &[
            SAMPLE_GMM[0],
            SAMPLE_GMM[1],
            SAMPLE_GMM[2],
            SAMPLE_GMM[3],
            SAMPLE_GMM[4],
            SAMPLE_GMM[5],
            SAMPLE_GMM[6],
            "--sampler",
            "dpm-solver",
            "--order",
            "4",
        ],
        "order",
    ),
    (
        "sample: lambda clip 100",
        &[
            SAMPLE_GMM[0],
            SAMPLE_GMM[1],
            SAMPLE_GMM[2],
            SAMPLE_GMM[3],
            SAMPLE_GMM[4],
            SAMPLE_GMM[5],
            SAMPLE_GMM[6],
            "--sampler",
            "dpmpp-2m",
            "--lambda-min-clipped",
            "100",
        ],
        "lambda",
    ),
    ("sample: cascade of one run", &["sample", "--cascade", "run", "--n", "4", "--out", "x.npy"], "cascade"),
    // eval
    (
        "eval: truncated samples",
        &["eval", "--samples", "trunc.npy", "--data", "moons", "--metric", "swd"],
        "trunc.npy",
    ),
    (
        "eval: missing samples",
        &["eval", "--samples", "none.npy", "--data", "moons", "--metric", "swd"],
        "none.npy",
    ),
    (
        "eval: dimension mismatch",
        &["eval", "--samples", "xT.npy", "--data", "moons", "--metric", "swd"],
        "shape",
    ),
    (
        "eval: NaN samples",
        &["eval", "--samples", "nan.npy", "--data", "moons", "--metric", "swd"],
        "non-finite",
    ),
    (
        "eval: nll-ode of a corrupt run",
        &["eval", "--run", "truncw", "--samples", "pts.npy", "--metric", "nll-ode"],
        "safetensors",
    ),
    (
        "eval: existing json output",
        &["eval", "--samples", "pts.npy", "--data", "moons", "--metric", "swd", "--json", "keep.npy"],
        "already exists",
    ),
    ("eval: straightness of a DDPM run", &["eval", "--run", "run", "--metric", "straightness"], "flow"),
    // data
    ("data export: unknown set", &["data", "export", "nope", "--out", "x.npy"], "nope"),
    ("data export: existing output", &["data", "export", "moons", "--out", "keep.npy"], "already exists"),
    (
        "data export: output inside a file",
        &["data", "export", "moons", "--out", "file.txt/x.npy"],
        "file.txt",
    ),
    ("data fetch: corrupt IDX files", &["data", "fetch", "mnist", "--from", "idx", "--dir", "cache"], "idx"),
    (
        "data fetch: missing folder",
        &["data", "fetch", "mnist", "--from", "nowhere", "--dir", "cache"],
        "nowhere",
    ),
    (
        "data resize: size 0",
        &["data", "resize", "img.npy", "--size", "0", "--filter", "area", "--out", "x.npy"],
        "size",
    ),
    (
        "data resize: points, not images",
        &["data", "resize", "pts.npy", "--size", "4", "--filter", "area", "--out", "x.npy"],
        "shape",
    ),
    (
        "data resize: truncated input",
        &["data", "resize", "trunc.npy", "--size", "4", "--filter", "area", "--out", "x.npy"],
        "trunc.npy",
    ),
    // the other commands
    ("train-classifier: unknown data", &["train-classifier", "--data", "nope", "--out", "c1"], "nope"),
    ("train-classifier: output in use", &["train-classifier", "--data", "digits", "--out", "used"], "used"),
    ("interpolate: corrupt run", &["interpolate", "--run", "truncw", "--out", "x.npy"], "safetensors"),
    (
        "inpaint: no run",
        &["inpaint", "--run", "nowhere", "--image", "img.npy", "--mask", "img.npy", "--out", "x.npy"],
        "nowhere",
    ),
    ("reflow: of a DDPM run", &["reflow", "--run", "run", "--pairs", "16", "--out", "rf"], "flow"),
    ("reflow: zero pairs", &["reflow", "--run", "flowrun", "--pairs", "0", "--out", "rf"], "pairs"),
    (
        "distill: zero student steps",
        &["distill", "--run", "run", "--out", "pd", "--student-steps", "0"],
        "student-steps",
    ),
    (
        "distill: corrupt teacher",
        &["distill", "--run", "truncw", "--out", "pd", "--student-steps", "4"],
        "safetensors",
    ),
    ("demo: output in use", &["demo", "--out", "used"], "used"),
];

#[test]
fn bad_input_catalogue() {
    let d = tmp("bad");
    fixtures(&d);
    let mut failures = Vec::new();
    for (what, args, needle) in CASES {
        let before = snapshot(&d);
        let out = run(&d, args);
        let err = String::from_utf8_lossy(&out.stderr);
        let problem = if out.status.code() != Some(1) {
            Some(format!("exit {:?}", out.status.code()))
        } else if err.contains("panicked") {
            Some("panicked".into())
        } else if !err.contains("error") {
            Some("no error line".into())
        } else if !err.to_lowercase().contains(&needle.to_lowercase()) {
            Some(format!("message lacks `{needle}`"))
        } else if snapshot(&d) != before {
            Some("files changed".into())
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!("{what}: {p}\n  rediffuse {}\n  {}", args.join(" "), err.trim()));
        }
        // a failed case must not spoil the next ones
        for leftover in ["r1", "x.npy", "g.npy", "c1", "rf", "pd"] {
            let p = d.join(leftover);
            let _ = std::fs::remove_dir_all(&p);
            let _ = std::fs::remove_file(&p);
        }
    }
    println!("bad-input catalogue: {} cases", CASES.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    assert_eq!(std::fs::read(d.join("keep.npy")).unwrap(), b"user data");
    assert_eq!(std::fs::read(d.join("used/notes.txt")).unwrap(), b"mine");
    let _ = std::fs::remove_dir_all(&d);
}
