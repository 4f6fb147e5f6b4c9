//! `rediffuse interpolate`: the end frames are the samples of the two seeds, the frames
//! move continuously between them, and stochastic samplers or a single frame are refused.

mod common;
use common::*;
use rediffuse_data::npy::read_npy;

#[test]
fn interpolation_ends_are_the_two_seeds_samples() {
    let d = tmp("interp");
    ok(&d, &["train", "--data", "moons", "--steps", "300", "--out", "run", "--quiet"]);
    ok(
        &d,
        &[
            "interpolate",
            "--run",
            "run",
            "--frames",
            "9",
            "--seed-a",
            "3",
            "--seed-b",
            "4",
            "--npy",
            "f.npy",
            "--out",
            "f.png",
            "--quiet",
        ],
    );
    let f = read_npy(d.join("f.npy")).unwrap();
    assert_eq!(f.shape, vec![9, 2]);
    assert!(d.join("f.png").metadata().unwrap().len() > 500);
    for (seed, frame) in [("3", 0usize), ("4", 8)] {
        let out = format!("s{seed}.npy");
        ok(
            &d,
            &[
                "sample",
                "--run",
                "run",
                "--sampler",
                "ddim",
                "--seed",
                seed,
                "--n",
                "1",
                "--out",
                &out,
                "--quiet",
            ],
        );
        let s = read_npy(d.join(&out)).unwrap();
        // the same x_T and sampler (to float rounding: the frames run as one batch of 9)
        for (a, b) in s.data.iter().zip(&f.data[2 * frame..2 * frame + 2]) {
            assert!(
                (a - b).abs() < 1e-5,
                "seed {seed}: {:?} vs {:?}",
                s.data,
                &f.data[2 * frame..2 * frame + 2]
            );
        }
    }
    // consecutive frames are closer than the two ends
    let p = |k: usize| (f.data[2 * k], f.data[2 * k + 1]);
    let dist = |a: (f32, f32), b: (f32, f32)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let ends = dist(p(0), p(8));
    let max_step = (0..8).map(|k| dist(p(k), p(k + 1))).fold(0.0, f32::max);
    println!("ends {ends:.3} apart, largest step between frames {max_step:.3}");
    assert!(max_step < ends, "{max_step} vs {ends}");

    fails(&d, &["interpolate", "--run", "run", "--sampler", "ddpm", "--out", "x.png"], "deterministic");
    fails(
        &d,
        &["interpolate", "--run", "run", "--sampler", "ddim", "--eta", "1", "--out", "x.png"],
        "deterministic",
    );
    fails(&d, &["interpolate", "--run", "run", "--frames", "1", "--out", "x.png"], "--frames");
    fails(&d, &["interpolate", "--run", "run", "--out", "f.png"], "already exists");
    assert!(!d.join("x.png").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn interpolation_of_digits_draws_a_strip() {
    let d = tmp("interp-digits");
    ok(
        &d,
        &[
            "train", "--data", "digits", "--model", "mlp", "--hidden", "128", "--method", "edm", "--steps",
            "200", "--out", "run", "--quiet",
        ],
    );
    ok(
        &d,
        &[
            "interpolate",
            "--run",
            "run",
            "--sampler",
            "edm-heun",
            "--steps",
            "10",
            "--frames",
            "6",
            "--npy",
            "f.npy",
            "--out",
            "strip.png",
            "--quiet",
        ],
    );
    let f = read_npy(d.join("f.npy")).unwrap();
    assert_eq!(f.shape, vec![6, 1, 8, 8]);
    let img = image_size(&d.join("strip.png"));
    assert!(img.0 > 4 * img.1, "a strip is wide: {img:?}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Width and height of a PNG (from its IHDR chunk).
fn image_size(p: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(p).unwrap();
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}
