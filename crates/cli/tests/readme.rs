//! The README's quick start, as a new user types it: the two commands are the ones documented,
//! `.ci/run` runs the second, and the first resolves and runs the demo through `cargo run` at the
//! workspace root (a workspace with two binaries once made it fail before doing anything).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The commands of the first code block under `## Quick start`.
fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("## Quick start").nth(1).expect("README has a Quick start section");
    let block = section.split("```").nth(1).expect("Quick start has a code block");
    block.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

#[test]
fn quick_start_commands_are_documented_and_run_by_ci() {
    let cmds = quick_start();
    assert_eq!(cmds, ["cargo run --release -- demo", "cargo test --release --workspace"], "{cmds:?}");
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == cmds[1]), ".ci/run does not run `{}`:\n{ci}", cmds[1]);
}

/// `cargo run --release -- demo` at the workspace root, shortened with `--steps` and pointed at a
/// temporary `--out`: cargo must pick the `rediffuse` binary and the demo must write its pictures.
#[test]
fn cargo_run_demo_resolves_and_runs() {
    let cmd = &quick_start()[0];
    let words: Vec<&str> = cmd.split_whitespace().collect();
    assert_eq!(words[0], "cargo");
    let d = tmp("readme-demo");
    let out = d.join("demo");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(root())
        .args(&words[1..])
        .args(["--steps", "30", "--quiet", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cargo starts");
    // the binaries are built by the test run itself, so this only checks freshness; never hang CI
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`{cmd}` did not finish in 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let res = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&res.stdout), String::from_utf8_lossy(&res.stderr));
    assert!(res.status.success(), "`{cmd}` failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("could not determine which binary"), "{stderr}");
    for f in ["samples.png", "denoising.png", "loss.png", "samples.npy", "config.toml"] {
        assert!(out.join(f).is_file(), "{f} missing after `{cmd}`:\n{stdout}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
