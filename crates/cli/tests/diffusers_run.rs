//! A diffusers pipeline folder (`unet/` + `scheduler/scheduler_config.json`) is a run for
//! `rediffuse sample --run`: 10 DDIM steps from fixed noise reproduce diffusers' `DDIMScheduler`
//! loop on the same UNet2DModel (`bench/diffusers_golden.py` makes the fixture).

mod common;
use candle_core::Device;
use common::*;
use rediffuse_data::npy::{read_npy, write_npy, NpyDtype};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../nn/tests/fixtures/diffusers/unet2d")
}

fn pipeline(d: &Path) -> PathBuf {
    let pipe = d.join("pipe");
    std::fs::create_dir_all(pipe.join("unet")).unwrap();
    std::fs::create_dir_all(pipe.join("scheduler")).unwrap();
    for f in ["config.json", "diffusion_pytorch_model.safetensors"] {
        std::fs::copy(fixture().join(f), pipe.join("unet").join(f)).unwrap();
    }
    std::fs::copy(fixture().join("scheduler_config.json"), pipe.join("scheduler/scheduler_config.json"))
        .unwrap();
    pipe
}

#[test]
fn ddim_on_a_diffusers_pipeline_matches_diffusers() {
    let d = tmp("diffusers-run");
    pipeline(&d);
    let g = candle_core::safetensors::load(fixture().join("golden.safetensors"), &Device::Cpu).unwrap();
    let z = g["ddim_noise"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want = g["ddim_10"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    write_npy(d.join("z.npy"), &[3, 1, 8, 8], &z, NpyDtype::F32).unwrap();
    ok(
        &d,
        &[
            "sample",
            "--run",
            "pipe",
            "--sampler",
            "ddim",
            "--eta",
            "0",
            "--steps",
            "10",
            "--init-noise",
            "z.npy",
            "--n",
            "3",
            "--no-clip",
            "--out",
            "s.npy",
            "--quiet",
        ],
    );
    let ours = read_npy(d.join("s.npy")).unwrap();
    assert_eq!(ours.shape, vec![3, 1, 8, 8]);
    let worst = want.iter().zip(&ours.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!("DDIM 10 steps on the diffusers UNet2DModel: max |Δ| = {worst:.2e} (max |x| {scale:.2})");
    // the random network drives x to ~190, so f32 rounding over 10 steps is relative
    assert!(worst <= 1e-5 * scale.max(1.0), "max |Δ| {worst:.3e} from diffusers (max |x| {scale})");
    assert!(scale > 0.1);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_diffusers_folders_are_errors() {
    let d = tmp("diffusers-run-bad");
    let pipe = pipeline(&d);
    let sched = pipe.join("scheduler/scheduler_config.json");
    let text = std::fs::read_to_string(&sched).unwrap();
    std::fs::write(&sched, text.replace("\"linear\"", "\"exotic\"")).unwrap();
    fails(&d, &["sample", "--run", "pipe", "--n", "2", "--out", "s.npy"], "beta_schedule `exotic`");
    std::fs::write(&sched, text.replace("\"epsilon\"", "\"flow\"")).unwrap();
    fails(&d, &["sample", "--run", "pipe", "--n", "2", "--out", "s.npy"], "prediction_type `flow`");
    std::fs::write(&sched, "{ not json").unwrap();
    fails(&d, &["sample", "--run", "pipe", "--n", "2", "--out", "s.npy"], "scheduler_config.json");
    std::fs::write(&sched, &text).unwrap();
    std::fs::remove_file(pipe.join("unet/diffusion_pytorch_model.safetensors")).unwrap();
    fails(
        &d,
        &["sample", "--run", "pipe", "--n", "2", "--out", "s.npy"],
        "diffusion_pytorch_model.safetensors",
    );
    assert!(!d.join("s.npy").exists());
    std::fs::remove_dir_all(&d).unwrap();
}
