//! Cold diffusion training: the L1 restoration loss falls, training resumes exactly, and bad
//! degradation settings are errors naming the field.

mod common;
use candle_core::{Device, Tensor};
use common::*;
use rediffuse_core::degradation::Degradation;
use rediffuse_nn::{MlpConfig, ModelConfig};
use rediffuse_train::config::ColdConfig;
use rediffuse_train::{read_metrics, Method, NoObserver, TrainConfig, Trainer};

fn images() -> Tensor {
    // smooth random 6×6 images: a few bumps each
    Tensor::randn(0f32, 1.0, (128, 1, 3, 3), &Device::Cpu)
        .unwrap()
        .upsample_nearest2d(6, 6)
        .unwrap()
        .tanh()
        .unwrap()
}

fn cold_config(steps: usize, degradation: Degradation) -> TrainConfig {
    let mut c = small_config(steps);
    c.model = ModelConfig::Mlp(MlpConfig {
        hidden: 64,
        layers: 2,
        time_embed_dim: 16,
        ..MlpConfig::for_shape(&[1, 6, 6])
    });
    c.method = Method::Cold(ColdConfig { degradation, levels: 6, noise: 0.01 });
    c.log_every = 3;
    c.checkpoint_every = 7;
    c
}

#[test]
fn cold_resume_is_exact_and_settings_are_checked() {
    let x = images();
    let key = |d: &std::path::Path| {
        read_metrics(&d.join("metrics.jsonl")).unwrap().iter().map(|r| (r.step, r.loss)).collect::<Vec<_>>()
    };
    for (tag, deg) in [
        ("blur", Degradation::Blur { size: 1.5 }),
        ("mask", Degradation::Mask { seed: 2 }),
        ("pix", Degradation::Pixelate),
    ] {
        let (da, db) = (temp_dir(&format!("cold-{tag}-a")), temp_dir(&format!("cold-{tag}-b")));
        Trainer::create(&da, cold_config(30, deg), x.clone()).unwrap().run(&mut NoObserver).unwrap();
        let mut b = Trainer::create(&db, cold_config(30, deg), x.clone()).unwrap();
        b.run(&mut Recorder { stop_at: Some(11), ..Default::default() }).unwrap();
        drop(b);
        Trainer::resume(&db, x.clone()).unwrap().run(&mut NoObserver).unwrap();
        let k = key(&da);
        assert_eq!(k, key(&db), "{tag}");
        assert!(k.last().unwrap().1 < k[0].1, "{tag}: the loss did not fall: {k:?}");
        for d in [da, db] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    let e = |c: TrainConfig| {
        Trainer::create(&temp_dir("cold-e"), c, x.clone()).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(e(cold_config(5, Degradation::Blur { size: 0.0 })).contains("blur size"));
    let mut c = cold_config(5, Degradation::Pixelate);
    c.method = Method::Cold(ColdConfig { degradation: Degradation::Pixelate, levels: 0, noise: 0.0 });
    assert!(e(c).contains("levels"));
    let mut c = cold_config(5, Degradation::Pixelate);
    c.method = Method::Cold(ColdConfig { degradation: Degradation::Pixelate, levels: 3, noise: -1.0 });
    assert!(e(c).contains("noise"));
}
