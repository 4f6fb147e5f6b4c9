//! Cold diffusion (`train --method cold`, `sample --sampler cold|cold-naive`, `data degrade`) on
//! the digits: a masking run restores half-masked digits far better than the masked input (PSNR),
//! both samplers generate from blurred-then-noised starts, and bad settings are clean errors.

mod common;
use common::*;

fn psnr(d: &std::path::Path, a: &str, b: &str) -> f64 {
    let json = format!("psnr-{a}-{b}.json");
    ok(d, &["eval", "--metric", "psnr", "--samples", a, "--data", b, "--json", &json]);
    json_value(&d.join(json))
}

#[test]
fn cold_restoration_and_generation() {
    let d = tmp("cold");
    ok(&d, &["data", "export", "digits", "--n", "200", "--seed", "5", "--out", "x.npy"]);
    #[rustfmt::skip]
    ok(&d, &["train", "--data", "digits", "--model", "mlp", "--preset", "digits", "--method", "cold",
        "--degradation", "mask", "--cold-levels", "10", "--steps", "800", "--out", "mask", "--quiet"]);
    ok(&d, &["data", "degrade", "x.npy", "--run", "mask", "--level", "5", "--out", "x5.npy"]);
    #[rustfmt::skip]
    ok(&d, &["sample", "--run", "mask", "--sampler", "cold", "--init-noise", "x5.npy", "--cold-from", "5",
        "--n", "200", "--out", "r5.npy", "--quiet"]);
    let (masked, restored) = (psnr(&d, "x5.npy", "x.npy"), psnr(&d, "r5.npy", "x.npy"));
    println!("half-masked digits: PSNR {masked:.2} dB masked, {restored:.2} dB restored");
    assert!(restored > masked + 3.0, "{masked} -> {restored}");

    #[rustfmt::skip]
    ok(&d, &["train", "--data", "digits", "--model", "mlp", "--preset", "digits", "--method", "cold",
        "--degradation", "blur", "--blur-size", "2", "--cold-levels", "10", "--steps", "300", "--out", "blur", "--quiet"]);
    for sampler in ["cold", "cold-naive"] {
        let out = format!("{sampler}.npy");
        ok(
            &d,
            &[
                "sample",
                "--run",
                "blur",
                "--sampler",
                sampler,
                "--n",
                "16",
                "--out",
                &out,
                "--png",
                &format!("{sampler}.png"),
                "--quiet",
            ],
        );
        let s = rediffuse_data::npy::read_npy(d.join(&out)).unwrap();
        assert_eq!(s.shape, vec![16, 1, 8, 8]);
        assert!(s.data.iter().all(|v| v.is_finite()));
    }

    fails(&d, &["sample", "--run", "blur", "--sampler", "ddim", "--n", "4", "--out", "e.npy"], "cold");
    fails(
        &d,
        &["sample", "--run", "blur", "--sampler", "cold", "--cold-from", "3", "--n", "4", "--out", "e.npy"],
        "--init-noise",
    );
    fails(
        &d,
        &[
            "sample",
            "--run",
            "blur",
            "--sampler",
            "cold",
            "--init-noise",
            "x5.npy",
            "--cold-from",
            "11",
            "--n",
            "200",
            "--out",
            "e.npy",
        ],
        "1..=10",
    );
    #[rustfmt::skip]
    fails(&d, &["train", "--data", "digits", "--model", "unet", "--preset", "digits", "--method", "cold", "--blur-size", "0", "--out", "e1"], "blur size");
    #[rustfmt::skip]
    fails(&d, &["train", "--data", "digits", "--model", "unet", "--preset", "digits", "--method", "cold", "--cold-levels", "0", "--out", "e2"], "cold-levels");
    fails(&d, &["train", "--data", "digits", "--degradation", "mask", "--out", "e3"], "--method cold");
    fails(&d, &["data", "degrade", "x.npy", "--run", "mask", "--level", "11", "--out", "e.npy"], "0..=10");
    assert!(!d.join("e.npy").exists() && !d.join("e1").exists() && !d.join("e2").exists());
    let _ = std::fs::remove_dir_all(&d);
}
