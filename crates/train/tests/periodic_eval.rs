//! `Trainer::run_with` and a `PeriodicEval`: called at the configured steps with the EMA
//! weights, its values land in that step's metrics record, failures become `TrainError::Eval`.

mod common;

use candle_core::{Device, Tensor};
use common::{gaussian_mixture, small_config, temp_dir};
use rediffuse_core::Denoiser;
use rediffuse_train::{
    load_run, read_metrics, EvalFeatures, LoadedRun, NoObserver, PeriodicEval, PeriodicEvalConfig,
    TrainError, Trainer,
};
use std::collections::BTreeMap;

/// The model's output on a fixed input, summed: a fingerprint of the weights it was given.
fn fingerprint(run: &LoadedRun) -> f64 {
    let x = Tensor::new(&[[0.3f32, -0.7], [1.1, 0.2]], &Device::Cpu).unwrap();
    let t = Tensor::new(&[5f32, 50.0], &Device::Cpu).unwrap();
    let y = run.denoiser.forward(&x, &t).unwrap();
    y.sum_all().unwrap().to_scalar::<f32>().unwrap() as f64
}

struct Probe {
    steps: Vec<u64>,
    fail_at: Option<u64>,
}

impl PeriodicEval for Probe {
    fn evaluate(&mut self, run: &LoadedRun) -> Result<BTreeMap<String, f64>, String> {
        assert!(run.ema, "the evaluator gets the EMA weights");
        self.steps.push(run.step);
        if self.fail_at == Some(run.step) {
            return Err("probe failure".into());
        }
        Ok(BTreeMap::from([("probe".to_string(), fingerprint(run)), ("dropped".to_string(), f64::NAN)]))
    }
}

fn config(steps: usize, every: usize) -> rediffuse_train::TrainConfig {
    let mut c = small_config(steps);
    c.log_every = 20;
    c.eval = Some(PeriodicEvalConfig { every, n: 10, features: EvalFeatures::Raw, sampler_steps: None });
    c
}

#[test]
fn evaluator_sees_ema_weights_at_eval_steps() {
    let dir = temp_dir("periodic");
    let mut t = Trainer::create(&dir, config(70, 30), gaussian_mixture(512, 1)).unwrap();
    let mut probe = Probe { steps: vec![], fail_at: None };
    t.run_with(&mut NoObserver, Some(&mut probe)).unwrap();
    assert_eq!(probe.steps, vec![30, 60, 70]);
    let rec = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = rec.iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![20, 30, 40, 60, 70], "log steps and evaluation steps");
    for r in &rec {
        let evaluated = [30, 60, 70].contains(&r.step);
        assert_eq!(r.eval.contains_key("probe"), evaluated, "step {}", r.step);
        assert_eq!(r.eval.contains_key("eval_s"), evaluated);
        assert!(!r.eval.contains_key("dropped"), "non-finite values are not logged");
    }
    // the value at the last step is the fingerprint of the checkpoint's EMA weights
    let ema = load_run(&dir, true, &Device::Cpu).unwrap();
    let plain = load_run(&dir, false, &Device::Cpu).unwrap();
    let logged = rec.last().unwrap().eval["probe"];
    assert!((logged - fingerprint(&ema)).abs() < 1e-6, "{logged} vs EMA {}", fingerprint(&ema));
    assert!((logged - fingerprint(&plain)).abs() > 1e-6, "EMA and raw weights should differ");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluator_failure_is_a_typed_error_and_no_evaluator_means_no_metrics() {
    let dir = temp_dir("periodic-fail");
    let mut t = Trainer::create(&dir, config(50, 20), gaussian_mixture(256, 2)).unwrap();
    let mut probe = Probe { steps: vec![], fail_at: Some(40) };
    match t.run_with(&mut NoObserver, Some(&mut probe)) {
        Err(TrainError::Eval { step: 40, reason }) => assert!(reason.contains("probe failure")),
        other => panic!("expected an evaluation error at step 40, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = temp_dir("periodic-none");
    let mut t = Trainer::create(&dir, config(40, 20), gaussian_mixture(256, 2)).unwrap();
    t.run(&mut NoObserver).unwrap();
    let rec = read_metrics(&dir.join("metrics.jsonl")).unwrap();
    assert_eq!(rec.iter().map(|r| r.step).collect::<Vec<_>>(), vec![20, 40]);
    assert!(rec.iter().all(|r| r.eval.is_empty()));
    std::fs::remove_dir_all(&dir).unwrap();

    let mut bad = config(40, 0);
    assert!(matches!(bad.validate(), Err(TrainError::InvalidConfig { field, .. }) if field == "eval.every"));
    bad.eval.as_mut().unwrap().every = 5;
    bad.eval.as_mut().unwrap().n = 1;
    assert!(matches!(bad.validate(), Err(TrainError::InvalidConfig { field, .. }) if field == "eval.n"));
}
