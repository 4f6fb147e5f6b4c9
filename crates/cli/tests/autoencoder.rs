//! `rediffuse train-autoencoder` writes a diffusers AutoencoderKL folder, refuses to overwrite
//! one and rejects bad hyper-parameters.

mod common;
use common::*;

#[test]
fn train_autoencoder_writes_a_diffusers_folder() {
    let d = tmp("train-autoencoder");
    let out = ok(&d, &["train-autoencoder", "--data", "digits", "--out", "ae", "--steps", "30", "-q"]);
    assert!(out.contains("PSNR") && out.contains("2×4×4 latents"), "{out}");
    let f = rediffuse_nn::diffusers::DiffusersFolder::read(&d.join("ae"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(f.class_name, "AutoencoderKL");
    let ae = f.autoencoder_kl().unwrap();
    assert!(ae.config().scaling_factor > 0.0 && ae.config().scaling_factor.is_finite());
    let before = std::fs::read(d.join("ae/config.json")).unwrap();
    fails(&d, &["train-autoencoder", "--data", "digits", "--out", "ae", "--steps", "2"], "not overwriting");
    assert_eq!(std::fs::read(d.join("ae/config.json")).unwrap(), before);
    fails(&d, &["train-autoencoder", "--data", "digits", "--out", "b", "--lr=-1"], "lr");
    fails(&d, &["train-autoencoder", "--data", "digits", "--out", "b", "--kl-weight", "nan"], "kl_weight");
    fails(&d, &["train-autoencoder", "--data", "digits", "--out", "b", "--channels", "16,30"], "groups");
    fails(
        &d,
        &["train-autoencoder", "--data", "digits", "--out", "b", "--channels", "8,8,8,8,8"],
        "divisible",
    );
    fails(&d, &["train-autoencoder", "--data", "moons", "--out", "b"], "image set");
    assert!(!d.join("b").exists());
    std::fs::remove_dir_all(&d).unwrap();
}
