//! Typed errors for bad run folders, corrupt checkpoints, bad data and bad configs.

mod common;

use candle_core::{Device, Tensor};
use common::{gaussian_mixture, small_config, temp_dir};
use rediffuse_train::checkpoint::{CHECKPOINT_DIR, EMA_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE};
use rediffuse_train::{load_run, NoObserver, TrainError, Trainer};
use std::fs;
use std::path::Path;

fn trained_run(tag: &str) -> std::path::PathBuf {
    let dir = temp_dir(tag);
    let mut tr = Trainer::create(&dir, small_config(4), gaussian_mixture(100, 0)).unwrap();
    tr.run(&mut NoObserver).unwrap();
    dir
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst.join(e.file_name()));
        } else {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn corrupt_and_missing_checkpoint_files() {
    let base = trained_run("corrupt-base");
    let cpu = Device::Cpu;
    let data = || gaussian_mixture(100, 0);
    let variant = |tag: &str, damage: &dyn Fn(&Path)| {
        let d = temp_dir(tag);
        copy_dir(&base, &d);
        damage(&d.join(CHECKPOINT_DIR));
        d
    };

    // truncated weights -> Corrupt for load_run and resume; the EMA file alone is still usable
    let d = variant("trunc", &|c| {
        let p = c.join(MODEL_FILE);
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert!(matches!(load_run(&d, false, &cpu), Err(TrainError::Corrupt { .. })));
    assert!(load_run(&d, true, &cpu).is_ok());
    assert!(matches!(Trainer::resume(&d, data()), Err(TrainError::Corrupt { .. })));
    fs::remove_dir_all(&d).unwrap();

    // missing EMA file
    let d = variant("noema", &|c| fs::remove_file(c.join(EMA_FILE)).unwrap());
    assert!(matches!(load_run(&d, true, &cpu), Err(TrainError::MissingFile(_))));
    assert!(matches!(Trainer::resume(&d, data()), Err(TrainError::MissingFile(_))));
    fs::remove_dir_all(&d).unwrap();

    // garbage state.json
    let d = variant("state", &|c| fs::write(c.join(STATE_FILE), b"{\"step\": 3").unwrap());
    assert!(matches!(load_run(&d, false, &cpu), Err(TrainError::Corrupt { .. })));
    assert!(matches!(Trainer::resume(&d, data()), Err(TrainError::Corrupt { .. })));
    fs::remove_dir_all(&d).unwrap();

    // optimizer state of a different model (weights file swapped in)
    let d = variant("opt", &|c| fs::copy(c.join(MODEL_FILE), c.join(OPTIMIZER_FILE)).map(|_| ()).unwrap());
    assert!(matches!(Trainer::resume(&d, data()), Err(TrainError::Corrupt { .. })));
    fs::remove_dir_all(&d).unwrap();

    // no checkpoint at all
    let d = variant("nockpt", &|c| fs::remove_dir_all(c).unwrap());
    assert!(matches!(load_run(&d, false, &cpu), Err(TrainError::MissingFile(_))));
    fs::remove_dir_all(&d).unwrap();

    // crash between the two renames of a checkpoint swap: the previous one is in checkpoint.old
    let d = variant("old", &|c| fs::rename(c, c.with_file_name("checkpoint.old")).unwrap());
    assert_eq!(load_run(&d, false, &cpu).unwrap().step, 4);
    assert_eq!(Trainer::resume(&d, data()).unwrap().step(), 4);
    fs::remove_dir_all(&d).unwrap();

    // broken config
    let d = variant("cfg", &|c| fs::write(c.with_file_name("config.toml"), b"steps = \"many\"").unwrap());
    assert!(matches!(load_run(&d, false, &cpu), Err(TrainError::ConfigParse { .. })));
    fs::remove_dir_all(&d).unwrap();

    // resuming on a data set of another size
    assert!(matches!(Trainer::resume(&base, gaussian_mixture(99, 0)), Err(TrainError::Data(_))));
    fs::remove_dir_all(&base).unwrap();
}

#[test]
fn refuses_non_empty_run_dir_and_keeps_user_files() {
    let d = temp_dir("nonempty");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("notes.txt"), b"mine").unwrap();
    let r = Trainer::create(&d, small_config(2), gaussian_mixture(10, 0));
    assert!(matches!(r, Err(TrainError::RunDirNotEmpty(_))));
    assert_eq!(fs::read(d.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    // a plain file in the way
    let f = d.join("notes.txt");
    assert!(matches!(
        Trainer::create(&f, small_config(2), gaussian_mixture(10, 0)),
        Err(TrainError::RunDirNotEmpty(_))
    ));
    fs::remove_dir_all(&d).unwrap();
    // an existing empty directory is fine
    fs::create_dir_all(&d).unwrap();
    assert!(Trainer::create(&d, small_config(2), gaussian_mixture(10, 0)).is_ok());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_data_and_config_are_typed_errors() {
    let d = temp_dir("baddata");
    let cpu = Device::Cpu;
    let bad = [
        Tensor::zeros((10, 3), candle_core::DType::F32, &cpu).unwrap(),
        Tensor::zeros((0, 2), candle_core::DType::F32, &cpu).unwrap(),
        Tensor::zeros(10, candle_core::DType::F32, &cpu).unwrap(),
        Tensor::new(&[[0.0f32, f32::NAN], [1.0, 2.0]], &cpu).unwrap(),
    ];
    for data in bad {
        let dims = data.dims().to_vec();
        match Trainer::create(&d, small_config(2), data) {
            Err(TrainError::Data(_)) => {}
            Err(e) => panic!("{dims:?}: wrong error {e}"),
            Ok(_) => panic!("{dims:?}: accepted"),
        }
        assert!(!d.exists(), "no run folder may be created for bad data");
    }
    let mut cfg = small_config(2);
    cfg.lr = f64::NAN;
    match Trainer::create(&d, cfg, gaussian_mixture(10, 0)) {
        Err(TrainError::InvalidConfig { field, .. }) => assert_eq!(field, "lr"),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("accepted lr = NaN"),
    }
    assert!(!d.exists());
}

/// A run that diverges between two log steps does not overwrite its last good checkpoint with
/// non-finite weights: the checkpoint step fails with `NonFiniteLoss` and resuming starts from
/// the previous checkpoint.
#[test]
fn divergence_never_reaches_a_checkpoint() {
    let x = common::gaussian_mixture(256, 1);
    let dir = common::temp_dir("diverge");
    let mut cfg = common::small_config(40);
    cfg.log_every = 1000;
    cfg.checkpoint_every = 10;
    // a sane start: 10 good steps, checkpointed
    cfg.steps = 10;
    rediffuse_train::Trainer::create(&dir, cfg.clone(), x.clone())
        .unwrap()
        .run(&mut rediffuse_train::NoObserver)
        .unwrap();
    // then an absurd learning rate blows the weights up before the next checkpoint
    let mut text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    text = text.replace("lr = 0.002", "lr = 1e38").replace("steps = 10", "steps = 40");
    std::fs::write(dir.join("config.toml"), text).unwrap();
    let mut t = rediffuse_train::Trainer::resume(&dir, x.clone()).unwrap();
    let err = t.run(&mut rediffuse_train::NoObserver).expect_err("the diverged run must fail");
    // the blown-up weights give non-finite losses: those steps are skipped, the checkpoint of
    // step 20 falls inside the streak and is not written, and the streak ends the run
    match err {
        rediffuse_train::TrainError::NonFiniteLoss { step, streak, checkpoint, .. } => {
            assert_eq!(streak, rediffuse_train::MAX_NONFINITE_STREAK);
            assert_eq!(checkpoint, Some(10));
            assert!((21..=40).contains(&step), "stopped at step {step}");
        }
        e => panic!("expected NonFiniteLoss, got {e}"),
    }
    drop(t);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 10, "the good checkpoint was overwritten");
    let w = rediffuse_train::checkpoint::read_tensors(
        &dir.join("checkpoint/model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    for (name, v) in w {
        let s = v.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(s.is_finite(), "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Counts the skipped steps the trainer reports.
#[derive(Default)]
struct SkipCounter {
    skipped: Vec<u64>,
}
impl rediffuse_train::TrainObserver for SkipCounter {
    fn on_skipped_step(&mut self, step: u64, value: f64, _streak: u64) {
        assert!(!value.is_finite());
        self.skipped.push(step);
    }
}

/// One absurd example (1e25: its squared error overflows f32) makes the loss of every batch
/// holding it infinite: exactly those steps are skipped and reported, the run finishes with
/// finite weights, `metrics.jsonl` counts the skipped steps, and resuming halfway reproduces it.
#[test]
fn non_finite_steps_are_skipped() {
    let good = gaussian_mixture(255, 3);
    let outlier = Tensor::new(&[[1e25f32, -1e25]], &Device::Cpu).unwrap();
    let x = Tensor::cat(&[&good, &outlier], 0).unwrap();
    let mut cfg = small_config(60);
    cfg.batch_size = 32;
    cfg.log_every = 5;
    cfg.checkpoint_every = 10;
    let dir = temp_dir("skip");
    let mut obs = SkipCounter::default();
    let summary = Trainer::create(&dir, cfg.clone(), x.clone()).unwrap().run(&mut obs).unwrap();
    assert_eq!(summary.step, 60);
    // 256 rows in batches of 32: one batch in 8 holds the outlier
    assert!((7..=9).contains(&obs.skipped.len()), "skipped {:?}", obs.skipped);
    let records = rediffuse_train::read_metrics(&dir.join("metrics.jsonl")).unwrap();
    let logged: f64 = records.iter().filter_map(|r| r.eval.get("skipped_steps")).sum();
    assert_eq!(logged as usize, obs.skipped.len());
    assert!(records.iter().all(|r| r.loss.is_finite() && r.loss < 10.0));
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["skipped_steps"], obs.skipped.len() as u64);
    for file in [MODEL_FILE, EMA_FILE] {
        let w = rediffuse_train::checkpoint::read_tensors(&dir.join(CHECKPOINT_DIR).join(file), &Device::Cpu)
            .unwrap();
        for (name, v) in w {
            let s = v.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(s.is_finite(), "{file}: {name}");
        }
    }
    // the same run stopped at step 30 and resumed: identical metrics and weights
    let dir2 = temp_dir("skip-resumed");
    let mut half = cfg.clone();
    half.steps = 30;
    Trainer::create(&dir2, half, x.clone()).unwrap().run(&mut NoObserver).unwrap();
    let text = fs::read_to_string(dir2.join("config.toml")).unwrap().replace("steps = 30", "steps = 60");
    fs::write(dir2.join("config.toml"), text).unwrap();
    Trainer::resume(&dir2, x).unwrap().run(&mut NoObserver).unwrap();
    let strip = |d: &Path| -> Vec<(u64, u64, u64)> {
        rediffuse_train::read_metrics(&d.join("metrics.jsonl"))
            .unwrap()
            .iter()
            .map(|r| (r.step, r.loss.to_bits(), r.eval.get("skipped_steps").copied().unwrap_or(0.0) as u64))
            .collect()
    };
    assert_eq!(strip(&dir), strip(&dir2));
    assert_eq!(
        fs::read(dir.join("checkpoint").join(MODEL_FILE)).unwrap(),
        fs::read(dir2.join("checkpoint").join(MODEL_FILE)).unwrap()
    );
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&dir2).unwrap();
}
