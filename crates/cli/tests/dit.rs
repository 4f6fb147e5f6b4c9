//! `rediffuse train --model dit`: the digits DiT preset trains (its loss falls over 100 steps),
//! samples of the right shape come out of two different samplers through the ordinary
//! `Denoiser` adapters, the size flags reach the config, a class-conditional DiT samples with
//! classifier-free guidance, and bad sizes are clean errors.

mod common;
use common::*;

/// `(step, loss)` of every metrics record.
fn losses(path: &std::path::Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((v["step"].as_u64()?, v["loss"].as_f64()?))
        })
        .collect()
}

/// The samples in `dir/file`: shape and values, all required finite.
fn samples(dir: &std::path::Path, file: &str) -> (Vec<usize>, Vec<f32>) {
    let a = rediffuse_data::npy::read_npy(dir.join(file)).unwrap();
    assert!(a.data.iter().all(|v| v.is_finite()), "{file}: non-finite samples");
    (a.shape, a.data)
}

#[test]
fn dit_trains_on_digits_and_samples() {
    let d = tmp("dit");
    #[rustfmt::skip]
    ok(&d, &["train", "--data", "digits", "--model", "dit", "--preset", "digits", "--steps", "100",
        "--batch-size", "64", "--warmup-steps", "20", "--log-every", "10", "--seed", "1", "--out", "run", "--quiet"]);
    let cfg = std::fs::read_to_string(d.join("run/config.toml")).unwrap();
    assert!(
        cfg.contains("kind = \"dit\"") && cfg.contains("patch_size = 2") && cfg.contains("width = 96"),
        "{cfg}"
    );
    let l = losses(&d.join("run/metrics.jsonl"));
    assert_eq!(l.len(), 10, "{l:?}");
    let first = l[..3].iter().map(|p| p.1).sum::<f64>() / 3.0;
    let last = l[l.len() - 3..].iter().map(|p| p.1).sum::<f64>() / 3.0;
    println!("DiT digits preset, 100 steps of 64: loss {first:.4} (steps 10-30) -> {last:.4} (steps 80-100)");
    assert!(l.iter().all(|p| p.1.is_finite()));
    assert!(last < 0.8 * first, "loss did not decrease: {l:?}");

    for (sampler, steps) in [("ddim", "20"), ("dpmpp-2m", "10")] {
        let out = format!("{sampler}.npy");
        ok(
            &d,
            &[
                "sample",
                "--run",
                "run",
                "--sampler",
                sampler,
                "--steps",
                steps,
                "--n",
                "8",
                "--out",
                &out,
                "--quiet",
            ],
        );
        let (shape, v) = samples(&d, &out);
        assert_eq!(shape, [8, 1, 8, 8], "{sampler}");
        assert!(v.iter().any(|x| x.abs() > 1e-3), "{sampler}: all-zero samples");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn dit_flags_class_conditioning_and_errors() {
    let d = tmp("dit-flags");
    // size flags on the 16×16 digits, class-conditional, learned σ through iDDPM
    #[rustfmt::skip]
    ok(&d, &["train", "--data", "digits:16", "--model", "dit", "--preset", "digits", "--width", "32", "--depth", "1",
        "--heads", "2", "--patch-size", "4", "--class-cond", "--method", "iddpm", "--steps", "5", "--batch-size", "8",
        "--out", "c", "--quiet"]);
    let cfg = std::fs::read_to_string(d.join("c/config.toml")).unwrap();
    for want in [
        "image_size = 16",
        "patch_size = 4",
        "width = 32",
        "depth = 1",
        "num_heads = 2",
        "num_classes = 10",
        "learn_sigma = true",
    ] {
        assert!(cfg.contains(want), "{want} missing:\n{cfg}");
    }
    #[rustfmt::skip]
    ok(&d, &["sample", "--run", "c", "--sampler", "ddpm-learned", "--steps", "5", "--n", "4", "--class", "3",
        "--guidance-scale", "2", "--out", "g.npy", "--quiet"]);
    assert_eq!(samples(&d, "g.npy").0, [4, 1, 16, 16]);
    #[rustfmt::skip]
    ok(&d, &["sample", "--run", "c", "--sampler", "edm-heun", "--steps", "4", "--n", "4", "--out", "h.npy", "--quiet"]);
    assert_eq!(samples(&d, "h.npy").0, [4, 1, 16, 16]);

    let train = ["train", "--data", "digits", "--steps", "2", "--quiet"];
    let with = |extra: &[&'static str]| [&train[..], extra].concat();
    fails(&d, &with(&["--model", "dit", "--patch-size", "3", "--out", "e1"]), "patch_size");
    fails(&d, &with(&["--model", "dit", "--heads", "5", "--out", "e2"]), "num_heads");
    fails(&d, &with(&["--model", "dit", "--width", "0", "--out", "e3"]), "width");
    fails(&d, &with(&["--model", "unet", "--width", "64", "--out", "e4"]), "--model dit only");
    fails(&d, &with(&["--model", "dit", "--preset", "cifar10", "--out", "e5"]), "no DiT");
    fails(&d, &with(&["--model", "dit", "--super-res", "2", "--out", "e6"]), "U-Net");
    std::fs::remove_dir_all(&d).unwrap();
}
