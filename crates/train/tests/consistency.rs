//! Consistency models: distillation from an EDM teacher gives one-step samples far better than the
//! teacher's one step; training and distillation resume exactly (the target network is
//! checkpointed); bad settings are errors.

mod common;
use candle_core::Device;
use common::*;
use rediffuse_core::NoiseSource;
use rediffuse_sample::dispatch::{sample, SamplerSpec};
use rediffuse_train::consistency::{ConsistencyConfig, ConsistencyLoss, IndexSampling};
use rediffuse_train::{load_run, read_metrics, Method, NoObserver, TrainConfig, Trainer};
use std::path::Path;

fn cm_config(steps: usize, c: ConsistencyConfig) -> TrainConfig {
    let mut cfg = small_config(steps);
    cfg.method = Method::Consistency(c);
    cfg.log_every = 3;
    cfg.checkpoint_every = 7;
    cfg
}

/// Mean distance of each sample to the nearest mixture centre (±1, ±1).
fn off_centre(run: &Path, spec: &SamplerSpec) -> f64 {
    let r = load_run(run, true, &Device::Cpu).unwrap();
    let m = r.sample_model().unwrap();
    let (x, _) = sample(spec, &m, None, &[2], &Device::Cpu, &mut NoiseSource::new(3, 0, 500), None).unwrap();
    let v: Vec<Vec<f32>> = x.to_vec2().unwrap();
    v.iter().map(|p| (((p[0].abs() - 1.0).powi(2) + (p[1].abs() - 1.0).powi(2)) as f64).sqrt()).sum::<f64>()
        / 500.0
}

#[test]
fn consistency_distillation_and_exact_resume() {
    let x = gaussian_mixture(2000, 4);
    let td = temp_dir("cm-teacher");
    let mut tc = small_config(2000);
    tc.method = Method::preset("edm").unwrap();
    Trainer::create(&td, tc, x.clone()).unwrap().run(&mut NoObserver).unwrap();
    let cd = ConsistencyConfig { teacher: Some(td.display().to_string()), ..Default::default() };
    let sd = temp_dir("cm-student");
    Trainer::create(&sd, cm_config(2000, cd.clone()), x.clone()).unwrap().run(&mut NoObserver).unwrap();
    let one = SamplerSpec::Consistency { steps: 1 };
    let (student, teacher) = (off_centre(&sd, &one), off_centre(&td, &SamplerSpec::Euler { steps: 2 }));
    println!(
        "mean distance to the nearest centre: CD 1 step {student:.4}, teacher Euler 2 steps {teacher:.4}"
    );
    assert!(student < 0.4, "{student}");
    assert!(student < teacher / 2.0, "{student} vs {teacher}");

    let key = |d: &Path| {
        read_metrics(&d.join("metrics.jsonl")).unwrap().iter().map(|r| (r.step, r.loss)).collect::<Vec<_>>()
    };
    let ct = ConsistencyConfig {
        loss: ConsistencyLoss::PseudoHuber,
        index_sampling: IndexSampling::Lognormal { p_mean: -1.1, p_std: 2.0 },
        ..Default::default()
    };
    for (tag, c) in [("cd", cd), ("ct", ct), ("ct-l2", ConsistencyConfig::default())] {
        let (da, db) = (temp_dir(&format!("cm-{tag}-a")), temp_dir(&format!("cm-{tag}-b")));
        Trainer::create(&da, cm_config(20, c.clone()), x.clone()).unwrap().run(&mut NoObserver).unwrap();
        let mut b = Trainer::create(&db, cm_config(20, c.clone()), x.clone()).unwrap();
        b.run(&mut Recorder { stop_at: Some(9), ..Default::default() }).unwrap();
        drop(b);
        assert!(db.join("checkpoint/target.safetensors").exists());
        Trainer::resume(&db, x.clone()).unwrap().run(&mut NoObserver).unwrap();
        assert_eq!(key(&da), key(&db), "{tag}");
        for d in [da, db] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    let e = |c: ConsistencyConfig| {
        Trainer::create(&temp_dir("cm-e"), cm_config(5, c), x.clone())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(
        e(ConsistencyConfig { steps: 1, teacher: Some("t".into()), ..Default::default() }).contains("steps")
    );
    assert!(e(ConsistencyConfig { sigma_min: 0.0, ..Default::default() }).contains("sigma_min"));
    assert!(e(ConsistencyConfig { s0: 1, ..Default::default() }).contains("s0"));
    assert!(!e(ConsistencyConfig { teacher: Some("no-such-run".into()), ..Default::default() }).is_empty());
    for d in [td, sd] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
