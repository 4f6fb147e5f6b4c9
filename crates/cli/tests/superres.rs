//! Super-resolution and cascades (`train --super-res`, `sample --lowres`, `sample --cascade`) on
//! the digits, 8×8 → 16×16: the model uses its low-res input (its samples match their own
//! ground truth far better than another image's, and downsample back to the input), a cascade
//! feeds the base run's samples through the SR run, and bad input is a clean error.

mod common;
use common::*;

fn psnr(d: &std::path::Path, samples: &str, truth: &str, n: &str) -> f64 {
    let json = format!("psnr-{samples}-{truth}.json");
    ok(d, &["eval", "--metric", "psnr", "--samples", samples, "--data", truth, "--n", n, "--json", &json]);
    json_value(&d.join(json))
}

#[test]
fn super_resolution_and_cascade_on_digits() {
    let d = tmp("superres");
    ok(&d, &["data", "export", "digits:16", "--out", "hr.npy"]);
    ok(&d, &["data", "resize", "hr.npy", "--size", "8", "--filter", "area", "--out", "lo.npy"]);
    ok(&d, &["data", "resize", "lo.npy", "--size", "16", "--filter", "bicubic", "--out", "bicubic.npy"]);
    #[rustfmt::skip]
    ok(&d, &["train", "--data", "hr.npy", "--model", "unet", "--preset", "digits", "--method", "edm",
        "--super-res", "2", "--steps", "300", "--batch-size", "64", "--lr", "2e-3", "--out", "sr", "--quiet"]);
    let cfg = std::fs::read_to_string(d.join("sr/config.toml")).unwrap();
    assert!(cfg.contains("[super_res]") && cfg.contains("in_channels = 3"), "{cfg}");
    let n = "100";
    let sample = |lowres: &str, out: &str| {
        #[rustfmt::skip]
        ok(&d, &["sample", "--run", "sr", "--lowres", lowres, "--n", n, "--sampler", "edm-heun",
            "--steps", "12", "--aug-level", "0", "--out", out, "--quiet"]);
    };
    sample("lo.npy", "sr.npy");
    // the same low-res images in another order: sample k is conditioned on image k + 1
    let lo = rediffuse_data::npy::read_npy(d.join("lo.npy")).unwrap();
    let (rows, per) = (lo.shape[0], lo.data.len() / lo.shape[0]);
    let mut rolled = lo.data[per..].to_vec();
    rolled.extend_from_slice(&lo.data[..per]);
    rediffuse_data::npy::write_npy(
        d.join("rolled.npy"),
        &lo.shape,
        &rolled,
        rediffuse_data::npy::NpyDtype::F32,
    )
    .unwrap();
    assert_eq!(rows, 1797);
    sample("rolled.npy", "sr_other.npy");
    let own = psnr(&d, "sr.npy", "hr.npy", n);
    let other = psnr(&d, "sr_other.npy", "hr.npy", n);
    let bicubic = psnr(&d, "bicubic.npy", "hr.npy", n);
    // consistency: the samples' block means reproduce the input
    ok(&d, &["data", "resize", "sr.npy", "--size", "8", "--filter", "area", "--out", "sr_lo.npy"]);
    let consistency = psnr(&d, "sr_lo.npy", "lo.npy", n);
    println!("PSNR: SR {own:.2} dB, SR on another image {other:.2} dB, bicubic {bicubic:.2} dB; SR downsampled vs input {consistency:.2} dB");
    assert!(own > 20.0, "SR PSNR {own}");
    assert!(own > other + 6.0, "conditioning unused? {own} vs {other}");
    assert!(consistency > 24.0, "consistency {consistency}");

    // cascade: an 8×8 base run, then the SR run on its samples
    #[rustfmt::skip]
    ok(&d, &["train", "--data", "lo.npy", "--model", "mlp", "--method", "edm", "--steps", "300",
        "--out", "base", "--quiet"]);
    #[rustfmt::skip]
    ok(&d, &["sample", "--cascade", "base,sr", "--n", "16", "--sampler", "edm-heun", "--steps", "12",
        "--aug-level", "0", "--out", "cascade.npy", "--lowres-out", "cascade_lo.npy", "--png", "cascade.png",
        "--quiet"]);
    let c = rediffuse_data::npy::read_npy(d.join("cascade.npy")).unwrap();
    let cl = rediffuse_data::npy::read_npy(d.join("cascade_lo.npy")).unwrap();
    assert_eq!((c.shape.as_slice(), cl.shape.as_slice()), (&[16, 1, 16, 16][..], &[16, 1, 8, 8][..]));
    assert!(d.join("cascade.png").exists());
    ok(
        &d,
        &["data", "resize", "cascade.npy", "--size", "8", "--filter", "area", "--out", "cascade_back.npy"],
    );
    let chained = psnr(&d, "cascade_back.npy", "cascade_lo.npy", "16");
    println!("cascade: final samples downsampled vs the base stage's samples {chained:.2} dB");
    assert!(chained > 20.0, "the SR stage did not follow the base stage: {chained} dB");

    // bad input
    fails(&d, &["sample", "--run", "sr", "--n", "4", "--out", "e.npy"], "--lowres");
    fails(
        &d,
        &["sample", "--run", "sr", "--lowres", "hr.npy", "--n", "4", "--out", "e.npy"],
        "shape [1, 8, 8]",
    );
    fails(
        &d,
        &["sample", "--run", "sr", "--lowres", "lo.npy", "--n", "4000", "--out", "e.npy"],
        "fewer than",
    );
    #[rustfmt::skip]
    fails(&d, &["sample", "--run", "sr", "--lowres", "lo.npy", "--n", "4", "--aug-level", "2", "--out", "e.npy"], "aug-level");
    fails(
        &d,
        &["sample", "--run", "base", "--lowres", "lo.npy", "--n", "4", "--out", "e.npy"],
        "super-resolution",
    );
    fails(&d, &["sample", "--cascade", "sr,sr", "--n", "4", "--out", "e.npy"], "base model");
    fails(&d, &["sample", "--cascade", "base,base", "--n", "4", "--out", "e.npy"], "not a super-resolution");
    fails(&d, &["sample", "--cascade", "base", "--n", "4", "--out", "e.npy"], "at least two");
    fails(
        &d,
        &["sample", "--cascade", "base,sr", "--class", "1", "--n", "4", "--out", "e.npy"],
        "class-conditional",
    );
    #[rustfmt::skip]
    fails(&d, &["train", "--data", "hr.npy", "--model", "mlp", "--super-res", "2", "--steps", "2", "--out", "e1"], "U-Net");
    #[rustfmt::skip]
    fails(&d, &["train", "--data", "hr.npy", "--model", "unet", "--preset", "digits", "--super-res", "3", "--steps", "2", "--out", "e2"], "divide");
    #[rustfmt::skip]
    fails(&d, &["train", "--data", "hr.npy", "--model", "unet", "--preset", "digits", "--super-res", "2", "--aug-max", "1.5", "--steps", "2", "--out", "e3"], "aug_max");
    fails(&d, &["data", "resize", "hr.npy", "--size", "5", "--filter", "area", "--out", "e.npy"], "divide");
    fails(&d, &["eval", "--metric", "psnr", "--samples", "lo.npy", "--data", "hr.npy"], "same shape");
    assert!(!d.join("e.npy").exists() && !d.join("e1").exists() && !d.join("e2").exists());
    let _ = std::fs::remove_dir_all(&d);
}
