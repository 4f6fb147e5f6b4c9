//! The KL autoencoder learns the embedded digits, its latents get a unit-variance scale factor,
//! and it is saved as a diffusers `AutoencoderKL` folder that loads back with the same outputs.

use candle_core::{DType, Device, Tensor};
use rediffuse_data::images::{ImageSpec, Split};
use rediffuse_nn::diffusers::DiffusersFolder;
use rediffuse_nn::AutoencoderKlConfig;
use rediffuse_train::autoencoder::*;

fn small() -> AutoencoderKlConfig {
    AutoencoderKlConfig {
        in_channels: 1,
        out_channels: 1,
        down_block_types: vec!["DownEncoderBlock2D".into(); 2],
        up_block_types: vec!["UpDecoderBlock2D".into(); 2],
        block_out_channels: vec![16, 32],
        layers_per_block: 1,
        latent_channels: 2,
        norm_num_groups: 8,
        sample_size: 8,
        ..AutoencoderKlConfig::default()
    }
}

/// PSNR (dB) of `y` against `x`, both in [−1, 1] (peak-to-peak 2).
fn psnr(x: &Tensor, y: &Tensor) -> f64 {
    let mse = (x - y).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    10.0 * (4.0 / mse).log10()
}

#[test]
fn autoencoder_learns_digits_and_round_trips_as_diffusers() {
    let data = ImageSpec::Digits { size: 8 }.load(None, 0, Split::Train).unwrap().images;
    let tc = AeTrainConfig { steps: 300, batch_size: 64, lr: 2e-3, kl_weight: 1e-3, seed: 0 };
    let mut log = Vec::new();
    let (ae, vm) = train_autoencoder(&small(), &data, &tc, |s| log.push(s)).unwrap();
    let first: f64 = log[..10].iter().map(|s| s.mse).sum::<f64>() / 10.0;
    let last: f64 = log[log.len() - 10..].iter().map(|s| s.mse).sum::<f64>() / 10.0;
    let x = data.narrow(0, 0, 256).unwrap().to_dtype(DType::F32).unwrap();
    let q = ae.encode(&x).unwrap();
    let rec = ae.decode(&q.mean).unwrap();
    let p = psnr(&x, &rec);
    eprintln!(
        "MSE {first:.4} -> {last:.4}, PSNR {p:.2} dB, scaling_factor {:.4}",
        ae.config().scaling_factor
    );
    assert!(last < 0.25 * first, "{first} -> {last}");
    assert!(p > 16.0, "PSNR {p}");
    assert_eq!(q.mean.dims(), &[256, 2, 4, 4]);
    // the scale factor makes the latents unit-variance
    let z = (q.mean * ae.config().scaling_factor).unwrap();
    let std = z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let m = std.iter().map(|&v| v as f64).sum::<f64>() / std.len() as f64;
    let s = (std.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / std.len() as f64).sqrt();
    assert!((0.7..1.3).contains(&s), "scaled latent std {s}");

    let dir = std::env::temp_dir().join(format!("rediffuse-ae-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    save_diffusers_autoencoder(&dir, &ae, &vm).unwrap();
    let loaded = DiffusersFolder::read(&dir, &Device::Cpu).unwrap().autoencoder_kl().unwrap();
    assert_eq!(loaded.config(), ae.config());
    let d = (loaded.decode(&loaded.encode(&x).unwrap().mean).unwrap() - &rec).unwrap().abs().unwrap();
    assert_eq!(d.flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap(), 0.0);
    let e = save_diffusers_autoencoder(&dir, &ae, &vm).unwrap_err().to_string();
    assert!(e.contains("not overwriting"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();

    let bad = AeTrainConfig { lr: f64::NAN, ..tc.clone() };
    assert!(train_autoencoder(&small(), &data, &bad, |_| {}).is_err());
    let bad = AeTrainConfig { kl_weight: -1.0, ..tc };
    assert!(train_autoencoder(&small(), &data, &bad, |_| {}).is_err());
}
