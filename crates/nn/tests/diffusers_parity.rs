//! diffusers checkpoints load and reproduce diffusers' outputs (max |Δ| <= 1e-4). The fixtures
//! (tiny random models and their outputs) are made by `bench/diffusers_golden.py`.

use candle_core::{DType, Device, Tensor};
use rediffuse_nn::diffusers::{DiffusersFolder, WEIGHTS_FILE};
use rediffuse_nn::{DiffusionNet, NnError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusers").join(name)
}

fn golden(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("golden.safetensors"), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn labels(g: &HashMap<String, Tensor>) -> Tensor {
    g["class_labels"].to_dtype(DType::I64).unwrap()
}

fn check(what: &str, got: &Tensor, want: &Tensor) {
    let d = max_abs_diff(got, want);
    let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    println!("{what}: max |Δ| = {d:.2e} (max |output| {scale:.2})");
    assert!(d <= TOL, "{what}: max |Δ| = {d} > {TOL}");
    assert!(scale > 1e-2, "{what}: degenerate golden output");
}

#[test]
fn unet2d_matches_diffusers() {
    let f = DiffusersFolder::read(&fixture("unet2d"), &Device::Cpu).unwrap();
    let (cfg, net, _) = f.unet2d().unwrap();
    assert_eq!(cfg.channel_mults, [1, 2]);
    assert_eq!(cfg.attention_resolutions, [4]);
    let g = golden("unet2d");
    let y = net.forward(&g["sample"], &g["timestep"], false).unwrap();
    check("UNet2DModel", &y, &g["output"]);
}

#[test]
fn class_conditional_unet2d_matches_diffusers() {
    let f = DiffusersFolder::read(&fixture("unet2d_cond"), &Device::Cpu).unwrap();
    let (cfg, net, _) = f.unet2d().unwrap();
    assert_eq!(cfg.num_classes, Some(3));
    assert!(!cfg.mid_attention && !cfg.flip_sin_to_cos);
    let g = golden("unet2d_cond");
    let y = net.forward_with_labels(&g["sample"], &g["timestep"], Some(&labels(&g)), false).unwrap();
    check("UNet2DModel (classes)", &y, &g["output"]);
}

#[test]
fn dit_matches_diffusers() {
    let f = DiffusersFolder::read(&fixture("dit"), &Device::Cpu).unwrap();
    let net = f.dit().unwrap();
    assert_eq!(net.num_classes(), Some(5));
    let g = golden("dit");
    let y = net.forward_with_labels(&g["sample"], &g["timestep"], Some(&labels(&g))).unwrap();
    check("DiTTransformer2DModel", &y, &g["output"]);
}

#[test]
fn autoencoder_kl_matches_diffusers() {
    let f = DiffusersFolder::read(&fixture("autoencoderkl"), &Device::Cpu).unwrap();
    let vae = f.autoencoder_kl().unwrap();
    let g = golden("autoencoderkl");
    let q = vae.encode(&g["sample"]).unwrap();
    check("AutoencoderKL mean", &q.mean, &g["latent_mean"]);
    check("AutoencoderKL logvar", &q.logvar, &g["latent_logvar"]);
    check("AutoencoderKL decode(mean)", &vae.decode(&q.mean).unwrap(), &g["decoded"]);
    check("AutoencoderKL decode(z)", &vae.decode(&g["z"]).unwrap(), &g["decoded_z"]);
}

/// A copy of a fixture folder whose weights `edit` changes.
fn edited(name: &str, edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> tempdir::Dir {
    let dir = tempdir::Dir::new(name);
    let src = fixture(name);
    std::fs::copy(src.join("config.json"), dir.0.join("config.json")).unwrap();
    let mut t = candle_core::safetensors::load(src.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
    edit(&mut t);
    candle_core::safetensors::save(&t, dir.0.join(WEIGHTS_FILE)).unwrap();
    dir
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("rediffuse-diffusers-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn missing_mismatched_and_unexpected_keys_are_named() {
    let dir = edited("unet2d", |t| {
        t.remove("conv_in.bias");
        t.remove("mid_block.attentions.0.to_q.weight");
        t.insert("conv_out.weight".into(), Tensor::zeros((2, 4, 3, 3), DType::F32, &Device::Cpu).unwrap());
        t.insert("extra.weight".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
    });
    let f = DiffusersFolder::read(&dir.0, &Device::Cpu).unwrap();
    let Err(NnError::Weights(r)) = f.unet2d() else { panic!("bad weights accepted") };
    assert_eq!(r.missing, ["conv_in.bias", "mid_block.attentions.0.to_q.weight"]);
    assert_eq!(r.mismatched, [("conv_out.weight".to_string(), vec![2, 4, 3, 3], vec![1, 4, 3, 3])]);
    assert_eq!(r.unexpected, ["extra.weight"]);

    let dir = edited("dit", |t| {
        t.remove("transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight");
    });
    let f = DiffusersFolder::read(&dir.0, &Device::Cpu).unwrap();
    let e = f.dit().err().expect("missing key accepted").to_string();
    assert!(e.contains("transformer_blocks.1.norm1.emb.class_embedder.embedding_table.weight"), "{e}");
    let dir = edited("autoencoderkl", |t| {
        t.remove("decoder.up_blocks.0.upsamplers.0.conv.weight");
    });
    let e = DiffusersFolder::read(&dir.0, &Device::Cpu).unwrap().autoencoder_kl().err().unwrap().to_string();
    assert!(e.contains("decoder.up_blocks.0.upsamplers.0.conv.weight"), "{e}");
}

#[test]
fn bad_folders_and_unsupported_options_are_errors() {
    // missing folder, wrong class, missing weights, corrupt weights, unsupported options
    let e = DiffusersFolder::read(Path::new("/nonexistent/model"), &Device::Cpu).err().unwrap();
    assert!(e.to_string().contains("config.json"), "{e}");
    let f = DiffusersFolder::read(&fixture("dit"), &Device::Cpu).unwrap();
    assert!(f.unet2d().err().unwrap().to_string().contains("not a `UNet2DModel`"));

    let dir = tempdir::Dir::new("bad");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("unet2d").join("config.json")).unwrap())
            .unwrap();
    let write = |v: &serde_json::Value| std::fs::write(dir.0.join("config.json"), v.to_string()).unwrap();
    write(&cfg);
    let e = DiffusersFolder::read(&dir.0, &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains(WEIGHTS_FILE) && e.contains("missing"), "{e}");
    std::fs::write(dir.0.join(WEIGHTS_FILE), b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    assert!(DiffusersFolder::read(&dir.0, &Device::Cpu).is_err());
    std::fs::copy(fixture("unet2d").join(WEIGHTS_FILE), dir.0.join(WEIGHTS_FILE)).unwrap();
    for (key, value, needle) in [
        ("resnet_time_scale_shift", serde_json::json!("scale_shift"), "resnet_time_scale_shift"),
        ("time_embedding_type", serde_json::json!("fourier"), "time_embedding_type"),
        ("center_input_sample", serde_json::json!(true), "center_input_sample"),
        ("some_new_option", serde_json::json!(1), "some_new_option"),
        (
            "down_block_types",
            serde_json::json!(["DownBlock2D", "CrossAttnDownBlock2D"]),
            "CrossAttnDownBlock2D",
        ),
        ("norm_num_groups", serde_json::json!(3), "groups"),
        ("block_out_channels", serde_json::json!("wide"), "config.json"),
    ] {
        let mut c = cfg.clone();
        c[key] = value;
        write(&c);
        let e = DiffusersFolder::read(&dir.0, &Device::Cpu).unwrap().unet2d().err().expect(key).to_string();
        assert!(e.contains(needle), "{key}: {e}");
    }
}
