//! Class-conditional training: the labels of a mixture's components are learned (the
//! conditional model's samples land on their component, the null label's on all of them),
//! label dropout follows `p_uncond`, resume is exact, and bad labels are errors.

mod common;
use candle_core::{Device, Tensor};
use common::*;
use rediffuse_core::NoiseSource;
use rediffuse_nn::{MlpConfig, ModelConfig};
use rediffuse_sample::dispatch::{sample, SamplerSpec};
use rediffuse_train::{load_run, read_metrics, NoObserver, Trainer};

/// The mixture of `gaussian_mixture` with its component index as the label.
fn labelled(n: usize) -> (Tensor, Tensor) {
    let x = gaussian_mixture(n, 5);
    let v: Vec<Vec<f32>> = x.to_vec2().unwrap();
    let y: Vec<u32> = v.iter().map(|p| u32::from(p[0] > 0.0) + 2 * u32::from(p[1] > 0.0)).collect();
    (x, Tensor::from_vec(y, n, &Device::Cpu).unwrap())
}

fn cond_config(steps: usize) -> rediffuse_train::TrainConfig {
    let mut cfg = small_config(steps);
    cfg.model = ModelConfig::Mlp(MlpConfig {
        hidden: 64,
        layers: 2,
        time_embed_dim: 16,
        num_classes: Some(4),
        ..MlpConfig::new(2)
    });
    cfg
}

#[test]
fn class_conditional_mixture_and_guidance() {
    let (x, y) = labelled(1000);
    let mut cfg = cond_config(2500);
    cfg.log_every = 500;
    let dir = temp_dir("class-cond");
    let mut t = Trainer::create_with_labels(&dir, cfg, x, Some(y)).unwrap();
    t.run(&mut NoObserver).unwrap();
    let run = load_run(&dir, true, &Device::Cpu).unwrap();
    let spec = SamplerSpec::Ddim(rediffuse_sample::DdimOptions { steps: 50, ..Default::default() });
    let n = 200;
    // per class: the fraction of samples in the component's quadrant
    for (w, min_hit) in [(1.0, 0.9), (3.0, 0.95)] {
        for k in 0..4u32 {
            let model = run.guided_sample_model(&vec![k; n], w).unwrap();
            let (s, _) =
                sample(&spec, &model, None, &[2], &Device::Cpu, &mut NoiseSource::new(3, 0, n), None)
                    .unwrap();
            let pts: Vec<Vec<f32>> = s.to_vec2().unwrap();
            let hit = pts.iter().filter(|p| u32::from(p[0] > 0.0) + 2 * u32::from(p[1] > 0.0) == k).count();
            let frac = hit as f64 / n as f64;
            println!("w = {w}, class {k}: {frac:.3} of samples in its component");
            assert!(frac >= min_hit, "w = {w}, class {k}: {frac}");
        }
    }
    // w = 0 (unconditional): every component
    let model = run.guided_sample_model(&vec![0; n], 0.0).unwrap();
    let (s, _) =
        sample(&spec, &model, None, &[2], &Device::Cpu, &mut NoiseSource::new(3, 0, n), None).unwrap();
    let pts: Vec<Vec<f32>> = s.to_vec2().unwrap();
    let quadrants: std::collections::HashSet<u32> =
        pts.iter().map(|p| u32::from(p[0] > 0.0) + 2 * u32::from(p[1] > 0.0)).collect();
    assert_eq!(quadrants.len(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn class_conditional_resume_is_exact_and_labels_are_checked() {
    let (x, y) = labelled(300);
    let mut cfg = cond_config(30);
    cfg.log_every = 3;
    cfg.checkpoint_every = 7;
    let da = temp_dir("cc-a");
    Trainer::create_with_labels(&da, cfg.clone(), x.clone(), Some(y.clone()))
        .unwrap()
        .run(&mut NoObserver)
        .unwrap();
    let db = temp_dir("cc-b");
    let mut b = Trainer::create_with_labels(&db, cfg.clone(), x.clone(), Some(y.clone())).unwrap();
    b.run(&mut Recorder { stop_at: Some(11), ..Default::default() }).unwrap();
    drop(b);
    Trainer::resume_with_labels(&db, x.clone(), Some(y.clone())).unwrap().run(&mut NoObserver).unwrap();
    let key = |d: &std::path::Path| {
        read_metrics(&d.join("metrics.jsonl")).unwrap().iter().map(|r| (r.step, r.loss)).collect::<Vec<_>>()
    };
    assert_eq!(key(&da), key(&db));
    // label dropout changes what is trained
    let dc = temp_dir("cc-c");
    let mut cfg_c = cfg.clone();
    cfg_c.p_uncond = 0.0;
    Trainer::create_with_labels(&dc, cfg_c, x.clone(), Some(y.clone()))
        .unwrap()
        .run(&mut NoObserver)
        .unwrap();
    assert_ne!(key(&da), key(&dc));

    // no labels, labels for an unconditional model, wrong length, out of range, bad p_uncond
    let e = |r: rediffuse_train::Result<Trainer>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e(Trainer::create_with_labels(&temp_dir("cc-1"), cfg.clone(), x.clone(), None)).contains("labels")
    );
    assert!(e(Trainer::create_with_labels(&temp_dir("cc-2"), small_config(5), x.clone(), Some(y.clone())))
        .contains("unconditional"));
    let short = y.narrow(0, 0, 10).unwrap();
    assert!(e(Trainer::create_with_labels(&temp_dir("cc-3"), cfg.clone(), x.clone(), Some(short)))
        .contains("labels"));
    let big = Tensor::from_vec(vec![7u32; 300], 300, &Device::Cpu).unwrap();
    assert!(e(Trainer::create_with_labels(&temp_dir("cc-4"), cfg.clone(), x.clone(), Some(big)))
        .contains("out of range"));
    let mut bad = cfg.clone();
    bad.p_uncond = 1.5;
    assert!(e(Trainer::create_with_labels(&temp_dir("cc-5"), bad, x, Some(y))).contains("p_uncond"));
    for d in [da, db, dc] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
