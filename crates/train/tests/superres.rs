//! Super-resolution runs: the conditioning reaches the network (a run trained on it differs from
//! one without), resume is exact, the sampling view needs low-res input, and bad configs are
//! errors naming the field.

mod common;
use candle_core::{Device, Tensor};
use common::*;
use rediffuse_core::NoiseSource;
use rediffuse_nn::unet::UnetConfig;
use rediffuse_nn::ModelConfig;
use rediffuse_sample::dispatch::{sample, SamplerSpec};
use rediffuse_train::superres::sampling_condition;
use rediffuse_train::{load_run, read_metrics, Method, NoObserver, SuperResConfig, TrainConfig, Trainer};

fn images(n: usize) -> Tensor {
    Tensor::randn(0f32, 0.5, (n, 1, 8, 8), &Device::Cpu).unwrap().clamp(-1.0, 1.0).unwrap()
}

fn sr_config(steps: usize) -> TrainConfig {
    let unet = UnetConfig {
        image_size: 8,
        in_channels: 3,
        out_channels: 1,
        base_channels: 8,
        channel_mults: vec![1, 2],
        groups: 4,
        time_embed_dim: 8,
        temb_dim: 16,
        ..UnetConfig::speed_bench()
    };
    let mut cfg = TrainConfig::new("images", ModelConfig::Unet(unet), Method::preset("edm").unwrap());
    cfg.steps = steps;
    cfg.batch_size = 16;
    cfg.log_every = 3;
    cfg.checkpoint_every = 7;
    cfg.super_res = Some(SuperResConfig::new(2));
    cfg
}

#[test]
fn super_res_resume_is_exact_and_sampling_needs_lowres() {
    let x = images(64);
    let cfg = sr_config(20);
    let da = temp_dir("sr-a");
    Trainer::create(&da, cfg.clone(), x.clone()).unwrap().run(&mut NoObserver).unwrap();
    let db = temp_dir("sr-b");
    let mut b = Trainer::create(&db, cfg.clone(), x.clone()).unwrap();
    b.run(&mut Recorder { stop_at: Some(9), ..Default::default() }).unwrap();
    drop(b);
    Trainer::resume(&db, x.clone()).unwrap().run(&mut NoObserver).unwrap();
    let key = |d: &std::path::Path| {
        read_metrics(&d.join("metrics.jsonl")).unwrap().iter().map(|r| (r.step, r.loss)).collect::<Vec<_>>()
    };
    assert_eq!(key(&da), key(&db));
    // the augmentation range changes what is trained: the conditioning is used
    let dc = temp_dir("sr-c");
    let mut cfg_c = cfg.clone();
    cfg_c.super_res = Some(SuperResConfig { factor: 2, aug_max: 1.0 });
    Trainer::create(&dc, cfg_c, x.clone()).unwrap().run(&mut NoObserver).unwrap();
    assert_ne!(key(&da), key(&dc));

    // sampling: only through the conditioned view, which every sampler runs on
    let run = load_run(&da, true, &Device::Cpu).unwrap();
    let err = run.sample_model().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("super-resolution"), "{err}");
    let low = rediffuse_core::superres::downsample_area(&x.narrow(0, 0, 4).unwrap(), 2).unwrap();
    let cond = sampling_condition(&low, 2, 0.1, 0, 0).unwrap();
    let m = run.super_res_sample_model(cond.clone(), None).unwrap();
    let spec = SamplerSpec::EdmHeun { steps: 4, rho: 7.0 };
    let (s, _) =
        sample(&spec, &m, None, &[1, 8, 8], &Device::Cpu, &mut NoiseSource::new(1, 0, 4), None).unwrap();
    assert_eq!(s.dims(), &[4, 1, 8, 8]);
    let bad = cond.narrow(1, 0, 1).unwrap();
    assert!(run.super_res_sample_model(bad, None).is_err());
    for d in [da, db, dc] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn super_res_config_errors() {
    let x = images(8);
    let e = |cfg: TrainConfig| {
        Trainer::create(&temp_dir("sr-e"), cfg, x.clone()).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let mut c = sr_config(2);
    c.super_res = Some(SuperResConfig { factor: 3, aug_max: 0.5 });
    assert!(e(c).contains("divide"));
    let mut c = sr_config(2);
    c.super_res = None;
    assert!(e(c).contains("super_res"));
    let mut c = sr_config(2);
    c.super_res = Some(SuperResConfig { factor: 2, aug_max: -0.1 });
    assert!(e(c).contains("aug_max"));
    // config round trip keeps [super_res]
    let c = sr_config(2);
    let back = TrainConfig::from_toml_str(&c.to_toml_string().unwrap()).unwrap();
    assert_eq!(back, c);
}
