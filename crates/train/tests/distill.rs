//! Progressive distillation: after one round the N-step student reproduces its teacher's 2N-step
//! DDIM output from the same x_T (per sample), far closer than the teacher's own N-step output;
//! a student resumes exactly; bad settings are errors.

mod common;
use candle_core::{Device, Tensor};
use common::*;
use rediffuse_core::NoiseSource;
use rediffuse_sample::dispatch::{sample, SamplerSpec, SigmaSchedule};
use rediffuse_train::checkpoint::{find_checkpoint, read_tensors, EMA_FILE};
use rediffuse_train::distill::DistillConfig;
use rediffuse_train::{load_run, read_metrics, Method, NoObserver, TrainConfig, Trainer};
use std::path::Path;

fn edm_config(steps: usize) -> TrainConfig {
    let mut c = small_config(steps);
    c.method = Method::preset("edm").unwrap();
    c.log_every = 100;
    c
}

fn student_config(teacher: &Path, steps: usize, n: usize) -> TrainConfig {
    let mut c = edm_config(steps);
    c.distill = Some(DistillConfig { teacher: teacher.display().to_string(), student_steps: n, rho: 7.0 });
    c
}

fn start_from_teacher(t: &mut Trainer, teacher: &Path) {
    let f = find_checkpoint(teacher).unwrap().join(EMA_FILE);
    t.init_from(read_tensors(&f, &Device::Cpu).unwrap(), &f).unwrap();
}

/// Euler (DDIM) with `steps` steps on the nested grid from fixed x_T.
fn ddim(run: &Path, steps: usize, z: &Tensor) -> Tensor {
    let run = load_run(run, true, &Device::Cpu).unwrap();
    let m = run
        .sample_model()
        .unwrap()
        .with_sigma_schedule(Some(SigmaSchedule::NestedKarras { rho: 7.0 }))
        .unwrap();
    let n = z.dim(0).unwrap();
    sample(
        &SamplerSpec::Euler { steps },
        &m,
        Some(z),
        &[2],
        &Device::Cpu,
        &mut NoiseSource::new(0, 0, n),
        None,
    )
    .unwrap()
    .0
}

fn rms(a: &Tensor, b: &Tensor) -> f64 {
    a.sub(b).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap().sqrt() as f64
}

#[test]
fn one_round_matches_the_teachers_two_steps() {
    let x = gaussian_mixture(2000, 3);
    let td = temp_dir("pd-teacher");
    Trainer::create(&td, edm_config(2000), x.clone()).unwrap().run(&mut NoObserver).unwrap();
    let sd = temp_dir("pd-student");
    let mut s = Trainer::create(&sd, student_config(&td, 2000, 4), x.clone()).unwrap();
    start_from_teacher(&mut s, &td);
    s.run(&mut NoObserver).unwrap();
    let z = NoiseSource::new(7, 0, 500).randn(&[2], &Device::Cpu).unwrap();
    let teacher8 = ddim(&td, 8, &z);
    let teacher4 = ddim(&td, 4, &z);
    let student4 = ddim(&sd, 4, &z);
    let (d_student, d_teacher) = (rms(&student4, &teacher8), rms(&teacher4, &teacher8));
    println!("RMS to the teacher's 8-step output: student (4 steps) {d_student:.4}, teacher (4 steps) {d_teacher:.4}");
    assert!(d_student < 0.1, "{d_student}");
    assert!(d_student < d_teacher / 3.0, "{d_student} vs {d_teacher}");
    // the student's own default grid is the nested one
    let run = load_run(&sd, true, &Device::Cpu).unwrap();
    let m = run.sample_model().unwrap();
    let (own, _) = sample(
        &SamplerSpec::Euler { steps: 4 },
        &m,
        Some(&z),
        &[2],
        &Device::Cpu,
        &mut NoiseSource::new(0, 0, 500),
        None,
    )
    .unwrap();
    assert_eq!(rms(&own, &student4), 0.0);

    // resume is exact
    let key = |d: &Path| {
        read_metrics(&d.join("metrics.jsonl")).unwrap().iter().map(|r| (r.step, r.loss)).collect::<Vec<_>>()
    };
    let mut cfg = student_config(&td, 20, 2);
    cfg.log_every = 3;
    cfg.checkpoint_every = 7;
    let (da, db) = (temp_dir("pd-a"), temp_dir("pd-b"));
    let mut a = Trainer::create(&da, cfg.clone(), x.clone()).unwrap();
    start_from_teacher(&mut a, &td);
    a.run(&mut NoObserver).unwrap();
    let mut b = Trainer::create(&db, cfg.clone(), x.clone()).unwrap();
    start_from_teacher(&mut b, &td);
    b.run(&mut Recorder { stop_at: Some(9), ..Default::default() }).unwrap();
    drop(b);
    Trainer::resume(&db, x.clone()).unwrap().run(&mut NoObserver).unwrap();
    assert_eq!(key(&da), key(&db));

    // errors: no steps, another method than the teacher's, a missing teacher
    let e = |c: TrainConfig| {
        Trainer::create(&temp_dir("pd-e"), c, x.clone()).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(e(student_config(&td, 5, 0)).contains("student_steps"));
    let mut other = student_config(&td, 5, 2);
    other.method = Method::preset("ddpm").unwrap();
    assert!(e(other).contains("another method"));
    assert!(!e(student_config(Path::new("no-such-teacher"), 5, 2)).is_empty());
    for d in [td, sd, da, db] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_ddpm_v_prediction_teacher_distils_too() {
    let x = gaussian_mixture(2000, 6);
    let td = temp_dir("pd-v-teacher");
    let mut tc = small_config(3000);
    tc.method = Method::Ddpm {
        schedule: rediffuse_core::BetaSchedule::cosine(),
        timesteps: 1000,
        prediction: rediffuse_core::Prediction::V,
        zero_terminal_snr: false,
    };
    Trainer::create(&td, tc.clone(), x.clone()).unwrap().run(&mut NoObserver).unwrap();
    let mut sc = tc;
    sc.steps = 2000;
    sc.distill = Some(DistillConfig { teacher: td.display().to_string(), student_steps: 4, rho: 7.0 });
    let sd = temp_dir("pd-v-student");
    let mut s = Trainer::create(&sd, sc, x.clone()).unwrap();
    start_from_teacher(&mut s, &td);
    s.run(&mut NoObserver).unwrap();
    let z = NoiseSource::new(8, 0, 500).randn(&[2], &Device::Cpu).unwrap();
    let (t8, t4, s4) = (ddim(&td, 8, &z), ddim(&td, 4, &z), ddim(&sd, 4, &z));
    let (ds, dt) = (rms(&s4, &t8), rms(&t4, &t8));
    println!("DDPM v-prediction: RMS to the teacher's 8 steps: student {ds:.4}, teacher 4 steps {dt:.4}");
    assert!(ds < dt / 2.0, "{ds} vs {dt}");
    for d in [td, sd] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
