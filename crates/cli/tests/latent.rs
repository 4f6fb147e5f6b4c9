//! Latent diffusion end to end: `train --latent AE` trains on the autoencoder's scaled latents,
//! keeps its own copy of the autoencoder, resumes without the original, evaluates FID on decoded
//! samples, and `sample` decodes (`--latents-out` gives the latents, whose decoding is `--out`).

mod common;
use candle_core::{DType, Device, Tensor};
use common::*;
use rediffuse_data::npy::read_npy_tensor;
use rediffuse_train::latent::LatentCodec;

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn latent_diffusion_trains_samples_decodes_and_resumes() {
    let d = tmp("latent");
    let dev = Device::Cpu;
    ok(&d, &["train-autoencoder", "--data", "digits", "--out", "ae", "--steps", "60", "-q"]);
    let codec = LatentCodec::open(&d.join("ae"), &dev).unwrap();
    // the scale factor makes the data's latents about unit-variance (LDM §4.3.2)
    let digits = rediffuse_cli_data(&d);
    let z = codec.encode(&digits).unwrap();
    assert_eq!(z.dims(), &[1797, 2, 4, 4]);
    let std = z.flatten_all().unwrap().var(0).unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
    assert!((0.7..1.4).contains(&std), "latent std {std}");

    ok(
        &d,
        &[
            "train",
            "--data",
            "digits",
            "--latent",
            "ae",
            "--steps",
            "40",
            "--batch-size",
            "64",
            "--eval-every",
            "40",
            "--eval-n",
            "64",
            "--out",
            "run",
            "-q",
        ],
    );
    let config = std::fs::read_to_string(d.join("run/config.toml")).unwrap();
    assert!(config.contains("[latent]") && config.contains("autoencoder = \"ae\""), "{config}");
    // the model sees 2×4×4 latents (an MLP on 32 values)
    assert!(config.contains("data_dim = 32"), "{config}");
    assert!(
        d.join("run/vae/config.json").exists()
            && d.join("run/vae/diffusion_pytorch_model.safetensors").exists()
    );
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"fid\""), "{metrics}");

    // the run is self-contained: the original autoencoder folder is not needed any more
    std::fs::rename(d.join("ae"), d.join("ae-moved")).unwrap();
    ok(&d, &["train", "--resume", "--out", "run", "--steps", "60", "-q"]);
    ok(
        &d,
        &[
            "sample",
            "--run",
            "run",
            "--sampler",
            "ddim",
            "--steps",
            "10",
            "--n",
            "12",
            "--out",
            "x.npy",
            "--latents-out",
            "z.npy",
            "--png",
            "x.png",
            "-q",
        ],
    );
    let x = read_npy_tensor(d.join("x.npy"), &dev).unwrap();
    let z = read_npy_tensor(d.join("z.npy"), &dev).unwrap();
    assert_eq!(x.dims(), &[12, 1, 8, 8]);
    assert_eq!(z.dims(), &[12, 2, 4, 4]);
    // --out is the decoding of --latents-out by the run's copy of the autoencoder
    let run_codec = LatentCodec::of_run(&d.join("run"), &dev).unwrap();
    assert!(max_abs(&run_codec.decode(&z).unwrap(), &x) < 1e-5);
    let lo = x.min_all().unwrap().to_scalar::<f32>().unwrap();
    let hi = x.max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!((-1.0..=1.0).contains(&lo) && (-1.0..=1.0).contains(&hi), "{lo} {hi}");
    // the latents are not clipped to [−1, 1] like images
    assert!(z.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 1.0);
    // same seed, other batch size: the same samples (up to the GEMMs' blocking)
    ok(
        &d,
        &[
            "sample",
            "--run",
            "run",
            "--sampler",
            "ddim",
            "--steps",
            "10",
            "--n",
            "12",
            "--batch-size",
            "5",
            "--out",
            "y.npy",
            "-q",
        ],
    );
    assert!(max_abs(&read_npy_tensor(d.join("y.npy"), &dev).unwrap(), &x) < 1e-5);

    // any method and network: a flow-matching DiT on the 2×4×4 latents (1×1 patches)
    ok(
        &d,
        &[
            "train",
            "--data",
            "digits",
            "--latent",
            "ae-moved",
            "--method",
            "flow",
            "--model",
            "dit",
            "--preset",
            "digits",
            "--patch-size",
            "1",
            "--steps",
            "5",
            "--batch-size",
            "32",
            "--out",
            "flow",
            "-q",
        ],
    );
    let flow = std::fs::read_to_string(d.join("flow/config.toml")).unwrap();
    assert!(flow.contains("image_size = 4") && flow.contains("channels = 2"), "{flow}");
    ok(
        &d,
        &[
            "sample",
            "--run",
            "flow",
            "--sampler",
            "euler",
            "--steps",
            "4",
            "--n",
            "3",
            "--out",
            "f.npy",
            "-q",
        ],
    );
    assert_eq!(read_npy_tensor(d.join("f.npy"), &dev).unwrap().dims(), &[3, 1, 8, 8]);
    // a DiT whose patches do not tile the latents is refused
    fails(
        &d,
        &[
            "train",
            "--data",
            "digits",
            "--latent",
            "ae-moved",
            "--model",
            "dit",
            "--preset",
            "digits",
            "--patch-size",
            "3",
            "--out",
            "bad",
        ],
        "patch",
    );
    assert!(!d.join("bad").exists());

    // pixel-space tools refuse latent runs; a pixel run has no latents to write
    fails(&d, &["inpaint", "--run", "run", "--image", "x.npy", "--mask", "left", "--out", "i.npy"], "latent");
    fails(&d, &["eval", "--metric", "nll", "--run", "run", "--data", "digits"], "latent");
    std::fs::remove_dir_all(d.join("run/vae")).unwrap();
    fails(&d, &["sample", "--run", "run", "--n", "2", "--out", "w.npy"], "vae");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_latent_settings_are_errors() {
    let d = tmp("latent-bad");
    fails(&d, &["train", "--data", "digits", "--latent", "nowhere", "--out", "r"], "autoencoder");
    ok(&d, &["train-autoencoder", "--data", "digits", "--out", "ae", "--steps", "2", "-q"]);
    fails(&d, &["train", "--data", "moons", "--latent", "ae", "--out", "r"], "autoencoder takes");
    fails(
        &d,
        &[
            "train",
            "--data",
            "digits",
            "--model",
            "unet",
            "--preset",
            "digits",
            "--latent",
            "ae",
            "--super-res",
            "2",
            "--out",
            "r",
        ],
        "super-res",
    );
    fails(&d, &["train", "--data", "digits", "--latent", "ae", "--method", "cold", "--out", "r"], "latent");
    assert!(!d.join("r").exists());
    // a pixel run has no latents
    ok(&d, &["train", "--data", "moons", "--steps", "5", "--out", "p", "-q"]);
    fails(
        &d,
        &["sample", "--run", "p", "--n", "2", "--out", "x.npy", "--latents-out", "z.npy"],
        "latent-diffusion",
    );
    assert!(!d.join("x.npy").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

/// The 8×8 digits as the CLI loads them (exported by `data export`).
fn rediffuse_cli_data(d: &std::path::Path) -> Tensor {
    ok(d, &["data", "export", "digits", "--out", "digits.npy"]);
    read_npy_tensor(d.join("digits.npy"), &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap()
}
