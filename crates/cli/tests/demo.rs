//! `rediffuse demo` (the README's first command, shortened) and the MLP on image data.

mod common;
use common::*;
use rediffuse_data::npy::{read_npy, write_npy};
use rediffuse_data::NpyDtype;

/// The demo trains the digits MLP, writes the grid, the denoising strip, the loss curve and the
/// samples; its samples are far closer to the digits than noise is (raw-pixel FID), nearly all
/// of their pixels lie in [−1.1, 1.1], and it refuses to write into a non-empty folder.
#[test]
fn demo_trains_samples_and_refuses_to_overwrite() {
    let d = tmp("demo");
    let out = ok(&d, &["demo", "--steps", "800", "--out", "demo", "--quiet"]);
    for f in ["samples.png", "denoising.png", "loss.png"] {
        assert!(out.contains(f), "{out}");
        assert!(d.join("demo").join(f).metadata().unwrap().len() > 1000, "{f}");
    }
    let cfg = compact(&d.join("demo/config.toml"));
    assert!(cfg.contains("kind=\"mlp\"") && cfg.contains("sample_shape=[1,8,8,]"), "{cfg}");
    let s = read_npy(d.join("demo/samples.npy")).unwrap();
    assert_eq!(s.shape, vec![64, 1, 8, 8]);
    let outside = s.data.iter().filter(|p| !(-1.1..=1.1).contains(*p)).count() as f64 / s.data.len() as f64;
    assert!(s.data.iter().all(|p| p.is_finite()) && outside < 0.1, "{outside} of pixels outside [-1.1, 1.1]");

    // 500 samples of the demo's run and 500 of N(0, I) against the digits, on raw pixels
    ok(
        &d,
        &["sample", "--run", "demo", "--sampler", "ddim", "--steps", "50", "--n", "500", "--out", "x.npy"],
    );
    ok(&d, &["data", "export", "digits", "--n", "500", "--seed", "3", "--out", "ref.npy"]);
    let noise: Vec<f32> = (0..500 * 64).map(|i| gauss(i as u64)).collect();
    write_npy(d.join("noise.npy"), &[500, 1, 8, 8], &noise, NpyDtype::F32).unwrap();
    let fid = |samples: &str, json: &str| {
        ok(
            &d,
            &[
                "eval",
                "--samples",
                samples,
                "--data",
                "ref.npy",
                "--metric",
                "fid",
                "--features",
                "raw",
                "--json",
                json,
            ],
        );
        json_value(&d.join(json))
    };
    let (model, noise) = (fid("x.npy", "x.json"), fid("noise.npy", "n.json"));
    println!("raw-pixel FID vs 500 digits: demo {model:.3}, N(0, I) {noise:.3}");
    assert!(model < 0.05 * noise, "demo samples FID {model} vs noise {noise}");

    fails(&d, &["demo", "--steps", "10", "--out", "demo", "--quiet"], "not empty");
    std::fs::remove_dir_all(&d).unwrap();
}

/// A run's config.toml without white space.
fn compact(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap().split_whitespace().collect()
}

/// `--model mlp` on images: the sample shape comes from the data, `--hidden`/`--layers` size the
/// MLP, samples are images; U-Net-only and MLP-only options are refused with a clear error.
#[test]
fn mlp_on_images_and_its_flags() {
    let d = tmp("mlp-images");
    ok(
        &d,
        &[
            "train",
            "--data",
            "digits",
            "--model",
            "mlp",
            "--hidden",
            "64",
            "--layers",
            "2",
            "--steps",
            "30",
            "--batch-size",
            "32",
            "--out",
            "m",
            "--quiet",
        ],
    );
    let cfg = compact(&d.join("m/config.toml"));
    for want in ["data_dim=64", "hidden=64", "layers=2", "sample_shape=[1,8,8,]"] {
        assert!(cfg.contains(want), "{want} missing from\n{cfg}");
    }
    ok(
        &d,
        &[
            "sample",
            "--run",
            "m",
            "--sampler",
            "ddim",
            "--steps",
            "5",
            "--n",
            "6",
            "--out",
            "s.npy",
            "--png",
            "s.png",
        ],
    );
    assert_eq!(read_npy(d.join("s.npy")).unwrap().shape, vec![6, 1, 8, 8]);
    assert!(d.join("s.png").exists());
    // images: every sampler's denoised estimate is clipped to [−1, 1] unless --no-clip
    let heun = ["sample", "--run", "m", "--sampler", "edm-heun", "--steps", "6", "--n", "50"];
    ok(&d, &[&heun[..], &["--out", "c.npy"]].concat());
    ok(&d, &[&heun[..], &["--out", "u.npy", "--no-clip"]].concat());
    let max = |f: &str| read_npy(d.join(f)).unwrap().data.iter().fold(0f32, |m, p| m.max(p.abs()));
    let (clipped, unclipped) = (max("c.npy"), max("u.npy"));
    println!("edm-heun on a 30-step MLP: max |x| {clipped} clipped, {unclipped} with --no-clip");
    assert!(clipped <= 1.0 && unclipped > 1.5, "{clipped} {unclipped}");
    // DDIM re-derives ε̂ from the clipped x̂₀ unless --keep-model-eps (diffusers' default)
    let ddim = ["sample", "--run", "m", "--sampler", "ddim", "--steps", "6", "--n", "50"];
    ok(&d, &[&ddim[..], &["--out", "r.npy"]].concat());
    ok(&d, &[&ddim[..], &["--out", "k.npy", "--keep-model-eps"]].concat());
    let (r, k) = (read_npy(d.join("r.npy")).unwrap().data, read_npy(d.join("k.npy")).unwrap().data);
    assert!(r.iter().zip(&k).any(|(a, b)| (a - b).abs() > 1e-3), "the two DDIM variants should differ");
    fails(&d, &[&heun[..], &["--out", "z.npy", "--clip", "0"]].concat(), "--clip");
    fails(&d, &[&heun[..], &["--out", "z.npy", "--clip", "1", "--no-clip"]].concat(), "cannot be used with");
    // iDDPM on the MLP: learned variance doubles the channels of its output
    ok(
        &d,
        &[
            "train",
            "--data",
            "digits",
            "--model",
            "mlp",
            "--method",
            "iddpm",
            "--hidden",
            "32",
            "--steps",
            "5",
            "--batch-size",
            "8",
            "--out",
            "i",
            "--quiet",
        ],
    );
    ok(
        &d,
        &["sample", "--run", "i", "--sampler", "ddpm-learned", "--steps", "5", "--n", "3", "--out", "l.npy"],
    );
    assert_eq!(read_npy(d.join("l.npy")).unwrap().shape, vec![3, 1, 8, 8]);

    let train = ["train", "--data", "digits", "--steps", "5", "--out", "bad", "--quiet"];
    fails(&d, &[&train[..], &["--model", "unet", "--hidden", "64"]].concat(), "--model mlp only");
    fails(&d, &[&train[..], &["--model", "mlp", "--hidden", "0"]].concat(), "hidden");
    fails(&d, &[&train[..], &["--model", "mlp", "--preset", "mnist"]].concat(), "has no MLP");
    assert!(!d.join("bad").exists(), "a refused run leaves no folder");
    std::fs::remove_dir_all(&d).unwrap();
}
