//! A full disk, simulated by a file-size limit (`ulimit -f`: writes past it fail with EFBIG):
//! training, sampling and exporting stop with a clear error and exit 1, the run's previous
//! checkpoint and the user's files are left exactly as they were, no partial or temporary file
//! is left behind, and once space is back the run resumes.

mod common;
use common::*;
use std::path::Path;
use std::process::Output;

/// Run the binary under `ulimit -f blocks` (1 KiB blocks in bash).
fn run_limited(dir: &Path, blocks: u64, args: &[&str]) -> Output {
    std::process::Command::new("bash")
        .current_dir(dir)
        .arg("-c")
        .arg(format!("ulimit -f {blocks} && exec \"$0\" \"$@\""))
        .arg(bin())
        .args(args)
        .output()
        .unwrap()
}

fn assert_write_error(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: expected exit 1:\n{err}");
    assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
    assert!(err.contains("error:") && err.contains("File too large"), "{what}: unclear message:\n{err}");
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn full_disk_keeps_the_previous_checkpoint() {
    let d = tmp("fulldisk");
    let common =
        ["--data", "moons", "--seed", "2", "--log-every", "10", "--checkpoint-every", "20", "--quiet"];
    ok(&d, &[&["train", "--steps", "40", "--out", "r"], &common[..]].concat());
    let before = snapshot(&d.join("r/checkpoint"));
    let model = std::fs::metadata(d.join("r/checkpoint/model.safetensors")).unwrap().len();
    // room for the metrics log, not for a weights file
    let blocks = (model / 2048).max(1);
    let out = run_limited(&d, blocks, &["train", "--resume", "--steps", "80", "--out", "r", "--quiet"]);
    assert_write_error(&out, "train under a file-size limit");
    assert_eq!(before, snapshot(&d.join("r/checkpoint")), "the previous checkpoint changed");
    for leftover in ["checkpoint.tmp", "checkpoint.old"] {
        assert!(!d.join("r").join(leftover).exists(), "{leftover} left behind");
    }
    // with space again the run resumes from step 40 and ends where an uninterrupted run does
    ok(&d, &["train", "--resume", "--steps", "80", "--out", "r", "--quiet"]);
    ok(&d, &[&["train", "--steps", "80", "--out", "full"], &common[..]].concat());
    assert_eq!(
        std::fs::read(d.join("r/checkpoint/model.safetensors")).unwrap(),
        std::fs::read(d.join("full/checkpoint/model.safetensors")).unwrap()
    );

    // outputs of sample and data export: no partial file, an existing file untouched
    let files_before = snapshot(&d);
    let out = run_limited(&d, 4, &["sample", "--run", "r", "--n", "4000", "--out", "big.npy", "--quiet"]);
    assert_write_error(&out, "sample under a file-size limit");
    let out = run_limited(&d, 4, &["data", "export", "moons", "--n", "4000", "--out", "moons.npy"]);
    assert_write_error(&out, "data export under a file-size limit");
    assert_eq!(files_before, snapshot(&d), "a failed write changed or left files");
    let _ = std::fs::remove_dir_all(&d);
}
