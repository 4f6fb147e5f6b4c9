//! `rediffuse sample` on an analytic GMM with a fixed x_T reproduces diffusers' schedulers
//! (`tests/golden/make_cli_golden.py` writes `cli_golden.json`: diffusers version, the GMM, z, and
//! for each case the scheduler config, the equivalent CLI flags and diffusers' final samples).
//! Every deterministic sampler with a diffusers counterpart is compared through the CLI, with
//! its default options where diffusers' defaults are the counterpart.

mod common;
use common::*;
use rediffuse_data::npy::{read_npy, write_npy};
use rediffuse_data::NpyDtype;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/cli_golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect()
}

/// Max |Δ| of every case's CLI output from diffusers' final samples is ≤ 1e-4.
#[test]
fn cli_samplers_match_diffusers() {
    let g = golden();
    println!("golden: diffusers {} (torch {})", g["diffusers_version"], g["torch_version"]);
    let d = tmp("diffusers-golden");
    std::fs::write(d.join("gmm.json"), serde_json::to_string(&g["gmm"]).unwrap()).unwrap();
    let z = rows(&g["z"]);
    let (n, dim) = (z.len(), z[0].len());
    let flat: Vec<f32> = z.iter().flatten().map(|&v| v as f32).collect();
    write_npy(d.join("z.npy"), &[n, dim], &flat, NpyDtype::F32).unwrap();
    let n_arg = n.to_string();
    let mut worst_all: f64 = 0.0;
    let mut compared = 0;
    for case in g["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        assert!(case.get("error").is_none(), "{name}: golden case has an error: {}", case["error"]);
        let out = format!("{name}.npy");
        let mut args: Vec<&str> = vec![
            "sample",
            "--analytic",
            "gmm:gmm.json",
            "--schedule",
            "linear",
            "--timesteps",
            "1000",
            "--init-noise",
            "z.npy",
            "--n",
            &n_arg,
            "--out",
            &out,
            "--quiet",
        ];
        let cli: Vec<&str> = case["cli"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        args.extend(&cli);
        ok(&d, &args);
        let ours = read_npy(d.join(&out)).unwrap();
        assert_eq!(ours.shape, vec![n, dim], "{name}");
        let want = rows(&case["final"]);
        let worst =
            want.iter().flatten().zip(&ours.data).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
        println!("{name:22} {:55} max |Δ| = {worst:.2e}", cli.join(" "));
        assert!(worst <= 1e-4, "{name} ({}): max |Δ| {worst:.3e} from diffusers", cli.join(" "));
        worst_all = worst_all.max(worst);
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} cases");
    println!("{compared} cases, worst max |Δ| = {worst_all:.2e}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The comparison can fail: the λ-uniform grid (`--sigmas logsnr`) is far from diffusers'
/// DPMSolverMultistepScheduler at 10 steps, and rediffuse's DDIM with linspace spacing (which
/// steps to the next timestep it evaluates at) from diffusers' DDIMScheduler (which steps to
/// τ − T/K, reproduced only with `--ddim-stride-prev`).
#[test]
fn known_differences_from_diffusers() {
    let g = golden();
    let d = tmp("diffusers-golden-neg");
    std::fs::write(d.join("gmm.json"), serde_json::to_string(&g["gmm"]).unwrap()).unwrap();
    let z = rows(&g["z"]);
    let flat: Vec<f32> = z.iter().flatten().map(|&v| v as f32).collect();
    write_npy(d.join("z.npy"), &[z.len(), z[0].len()], &flat, NpyDtype::F32).unwrap();
    let n = z.len().to_string();
    for (name, flags) in [
        ("dpmpp-2m-10", &["--sampler", "dpmpp-2m", "--sigmas", "logsnr"][..]),
        ("ddim-linspace-10", &["--sampler", "ddim", "--eta", "0", "--timestep-spacing", "linspace"][..]),
    ] {
        let case = g["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
        let out = format!("{name}.npy");
        let mut args = vec![
            "sample",
            "--analytic",
            "gmm:gmm.json",
            "--init-noise",
            "z.npy",
            "--n",
            &n,
            "--out",
            &out,
            "--steps",
            "10",
            "--quiet",
        ];
        args.extend_from_slice(flags);
        ok(&d, &args);
        let ours = read_npy(d.join(&out)).unwrap();
        let worst = rows(&case["final"])
            .iter()
            .flatten()
            .zip(&ours.data)
            .map(|(a, b)| (a - *b as f64).abs())
            .fold(0.0, f64::max);
        println!("{name} with {} vs diffusers: max |Δ| = {worst:.3}", flags.join(" "));
        assert!(worst > 1e-2, "{name}: {worst}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
