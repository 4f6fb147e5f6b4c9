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
    assert!(matches!(err, rediffuse_train::TrainError::NonFiniteLoss { step: 20, .. }), "{err}");
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
