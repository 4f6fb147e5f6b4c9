//! Flow matching: on Gaussian data the trained velocity matches the closed-form marginal velocity
//! field; minibatch OT couples each example with nearer noise; training resumes exactly (with OT
//! coupling and with reflow's fixed couplings); couplings are checked.

mod common;
use candle_core::{Device, Tensor};
use common::*;
use rediffuse_core::flow::gaussian_velocity;
use rediffuse_core::NoiseSource;
use rediffuse_sample::continuous::FlowModel;
use rediffuse_train::config::{Coupling, FlowConfig};
use rediffuse_train::{load_run, read_metrics, Method, NoObserver, TrainConfig, Trainer};

fn flow_config(steps: usize, coupling: Coupling) -> TrainConfig {
    let mut c = small_config(steps);
    c.method = Method::Flow(FlowConfig { sigma_min: 0.0, coupling });
    c
}

/// N(μ, diag(s²)) points, μ = (0.5, −1), s = (0.5, 1.2).
fn gaussian(n: usize, seed: u64) -> Tensor {
    let z = NoiseSource::new(seed, 0, n).randn(&[2], &Device::Cpu).unwrap();
    let s = Tensor::new(&[0.5f32, 1.2], &Device::Cpu).unwrap();
    let m = Tensor::new(&[0.5f32, -1.0], &Device::Cpu).unwrap();
    z.broadcast_mul(&s).unwrap().broadcast_add(&m).unwrap()
}

#[test]
fn flow_matching_learns_the_gaussian_velocity_field() {
    let x = gaussian(4000, 1);
    let mut cfg = flow_config(3000, Coupling::Independent);
    cfg.batch_size = 256;
    cfg.log_every = 1000;
    let dir = temp_dir("flow-gauss");
    Trainer::create(&dir, cfg, x).unwrap().run(&mut NoObserver).unwrap();
    let run = load_run(&dir, true, &Device::Cpu).unwrap();
    let model = FlowModel::new(&run.denoiser, 0.0).unwrap();
    let (mean, var) = ([0.5, -1.0], [0.25, 1.44]);
    let pts = NoiseSource::new(9, 0, 200).randn(&[2], &Device::Cpu).unwrap();
    let (mut err2, mut ref2) = (0.0, 0.0);
    for t in [0.1, 0.3, 0.5, 0.7, 0.9] {
        // points from the marginal p_t itself: x_t = t·x₁ + (1 − t)·z
        let x1 = gaussian(200, 20 + (t * 10.0) as u64);
        let xt = (x1.affine(t, 0.0).unwrap() + pts.affine(1.0 - t, 0.0).unwrap()).unwrap();
        let v: Vec<f32> = model.velocity(&xt, &[t; 200]).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let xs: Vec<f64> =
            xt.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|&a| a as f64).collect();
        let want = gaussian_velocity(&xs, t, &mean, &var, 0.0);
        for (a, b) in v.iter().zip(&want) {
            err2 += (*a as f64 - b).powi(2);
            ref2 += b * b;
        }
    }
    let rel = (err2 / ref2).sqrt();
    println!("relative RMS error of the learned velocity: {rel:.4}");
    assert!(rel < 0.1, "{rel}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flow_resume_is_exact_with_ot_and_with_couplings() {
    let x = gaussian_mixture(300, 2);
    let key = |d: &std::path::Path| {
        read_metrics(&d.join("metrics.jsonl")).unwrap().iter().map(|r| (r.step, r.loss)).collect::<Vec<_>>()
    };
    let z = NoiseSource::new(5, 0, 300).randn(&[2], &Device::Cpu).unwrap();
    for (tag, coupling, fixed) in
        [("ot", Coupling::MinibatchOt, false), ("pairs", Coupling::Independent, true)]
    {
        let mut cfg = flow_config(30, coupling);
        cfg.log_every = 3;
        cfg.checkpoint_every = 7;
        let make = |d: &std::path::Path| {
            let t = Trainer::create(d, cfg.clone(), x.clone()).unwrap();
            if fixed {
                t.with_couplings(z.clone()).unwrap()
            } else {
                t
            }
        };
        let da = temp_dir(&format!("flow-{tag}-a"));
        make(&da).run(&mut NoObserver).unwrap();
        let db = temp_dir(&format!("flow-{tag}-b"));
        make(&db).run(&mut Recorder { stop_at: Some(11), ..Default::default() }).unwrap();
        let mut resumed = Trainer::resume(&db, x.clone()).unwrap();
        if fixed {
            resumed = resumed.with_couplings(z.clone()).unwrap();
        }
        resumed.run(&mut NoObserver).unwrap();
        assert_eq!(key(&da), key(&db), "{tag}");
        // the coupling changes the losses
        let mut c3 = flow_config(30, Coupling::Independent);
        c3.log_every = 3;
        let dd = temp_dir(&format!("flow-{tag}-d"));
        Trainer::create(&dd, c3, x.clone()).unwrap().run(&mut NoObserver).unwrap();
        assert_ne!(key(&da), key(&dd), "{tag}");
        for d in [da, db, dd] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    // couplings: flow runs only, the data's shape, finite
    let e = |r: rediffuse_train::Result<Trainer>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let d1 = temp_dir("flow-e1");
    assert!(e(Trainer::create(&d1, small_config(5), x.clone()).unwrap().with_couplings(z.clone()))
        .contains("flow"));
    let d2 = temp_dir("flow-e2");
    let short = z.narrow(0, 0, 10).unwrap();
    assert!(e(Trainer::create(&d2, flow_config(5, Coupling::Independent), x.clone())
        .unwrap()
        .with_couplings(short))
    .contains("shape"));
    let mut bad = flow_config(5, Coupling::Independent);
    bad.method = Method::Flow(FlowConfig { sigma_min: 1.0, coupling: Coupling::Independent });
    assert!(e(Trainer::create(&temp_dir("flow-e3"), bad, x.clone())).contains("sigma_min"));
    for d in [d1, d2] {
        let _ = std::fs::remove_dir_all(d);
    }
}
