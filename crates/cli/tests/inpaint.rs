//! `rediffuse inpaint` (RePaint) on the 8×8 digits: the known half is kept exactly, the completed
//! digits are mostly recognised as the original digit by the built-in classifier (far above
//! filling with noise), and bad masks/images are clean errors.

mod common;
use common::*;
use rediffuse_data::npy::read_npy;

#[test]
fn repaint_completes_digits() {
    let d = tmp("inpaint");
    digits_classifier_and_edm_mlp(&d, &[]);
    ok(
        &d,
        &["data", "export", "digits", "--n", "200", "--seed", "9", "--out", "x.npy", "--labels-out", "y.npy"],
    );
    ok(
        &d,
        &[
            "inpaint",
            "--run",
            "run",
            "--image",
            "x.npy",
            "--mask",
            "half",
            "--steps",
            "100",
            "--jump-length",
            "10",
            "--resample",
            "5",
            "--out",
            "filled.npy",
            "--png",
            "filled.png",
            "--quiet",
        ],
    );
    let (x, f) = (read_npy(d.join("x.npy")).unwrap(), read_npy(d.join("filled.npy")).unwrap());
    assert_eq!(f.shape, vec![200, 1, 8, 8]);
    for i in 0..200 {
        for p in 0..32 {
            assert_eq!(f.data[i * 64 + p], x.data[i * 64 + p], "known pixel {p} of image {i} changed");
        }
    }
    let acc = |samples: &str, json: &str| class_accuracy(&d, samples, "y.npy", json);
    // baseline: the known half with the bottom half replaced by noise
    let noisy: Vec<f32> = (0..200 * 64)
        .map(|i| if i % 64 < 32 { x.data[i] } else { gauss(i as u64).clamp(-1.0, 1.0) })
        .collect();
    rediffuse_data::npy::write_npy(
        d.join("noise.npy"),
        &[200, 1, 8, 8],
        &noisy,
        rediffuse_data::NpyDtype::F32,
    )
    .unwrap();
    let (a_fill, a_noise, a_orig) =
        (acc("filled.npy", "a.json"), acc("noise.npy", "n.json"), acc("x.npy", "o.json"));
    println!("digits, top half known: classified as the original digit {a_fill:.3} (noise fill {a_noise:.3}, originals {a_orig:.3})");
    assert!(a_fill > 0.6 && a_fill > a_noise + 0.2, "{a_fill} vs noise {a_noise}");

    let base = [
        "inpaint",
        "--run",
        "run",
        "--image",
        "x.npy",
        "--out",
        "bad.npy",
        "--steps",
        "10",
        "--jump-length",
        "2",
    ];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    fails(&d, &with(&["--mask", "box:2,2,9,4"]), "X1");
    fails(&d, &with(&["--mask", "box:1,2"]), "four");
    fails(&d, &with(&["--mask", "nothing.png"]), "mask");
    fails(&d, &with(&["--mask", "half", "--steps", "7"]), "steps");
    fails(&d, &with(&["--mask", "box:0,0,8,8"]), "nothing to condition");
    ok(&d, &["data", "export", "moons", "--n", "5", "--out", "pts.npy"]);
    fails(
        &d,
        &["inpaint", "--run", "run", "--image", "pts.npy", "--mask", "half", "--out", "bad.npy"],
        "shape",
    );
    assert!(!d.join("bad.npy").exists());
    std::fs::remove_dir_all(&d).unwrap();
}
