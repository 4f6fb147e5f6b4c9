//! The built-in classifier learns the embedded digits: seeded, saved atomically, reloadable.

use candle_core::Device;
use rediffuse_data::images::{ImageSpec, Split};
use rediffuse_nn::classifier::{Classifier, ClassifierConfig, CLASSIFIER_WEIGHTS_FILE};
use rediffuse_train::classifier::*;
use rediffuse_train::TrainError;

fn digits() -> LabeledImages {
    let batch = ImageSpec::Digits { size: 8 }.load(None, 0, Split::Train).unwrap();
    LabeledImages::from_label_tensor(batch.images, &batch.labels.unwrap(), 10).unwrap()
}

#[test]
fn digits_classifier_reaches_95_percent_and_round_trips() {
    let dev = Device::Cpu;
    let all = digits();
    let (tr, te) = holdout_split(all.len(), 0.2, 0).unwrap();
    let (train, test) = (all.select(&tr).unwrap(), all.select(&te).unwrap());
    let model = ClassifierConfig::new(1, 8, 10);
    let cfg = ClassifierTrainConfig {
        steps: 400,
        batch_size: 64,
        lr: 3e-3,
        warmup_steps: 20,
        weight_decay: 1e-4,
        seed: 0,
    };
    let mut losses = Vec::new();
    let trained = train_classifier(&model, &cfg, &train, &dev, &mut |s| losses.push(s.loss)).unwrap();
    assert_eq!(losses.len(), 400);
    let acc = accuracy(&trained.model, &test, 128).unwrap();
    eprintln!("digits hold-out accuracy {acc:.4}, final loss {:.4}", trained.final_loss);
    assert!(acc >= 0.95, "test accuracy {acc}");
    assert!(losses[0] > 1.5 && trained.final_loss < 0.2, "{} -> {}", losses[0], trained.final_loss);

    // save, refuse to overwrite, reload bit-exactly
    let dir = std::env::temp_dir().join(format!("rediffuse-clf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = ClassifierFile {
        format: CLASSIFIER_FORMAT.into(),
        data: "digits".into(),
        model: model.clone(),
        train: cfg.clone(),
    };
    let metrics = ClassifierMetrics {
        test_accuracy: acc,
        train_accuracy: accuracy(&trained.model, &train, 128).unwrap(),
        n_train: train.len(),
        n_test: test.len(),
        test_source: "hold-out 20%".into(),
        steps: cfg.steps,
        final_loss: trained.final_loss,
        train_seconds: 0.0,
    };
    save_classifier(&dir, &trained, &file, &metrics).unwrap();
    assert!(matches!(save_classifier(&dir, &trained, &file, &metrics), Err(TrainError::RunDirNotEmpty(_))));
    assert_eq!(read_classifier_file(&dir).unwrap(), file);
    let tensors = candle_core::safetensors::load(dir.join(CLASSIFIER_WEIGHTS_FILE), &dev).unwrap();
    let reloaded = Classifier::from_tensors(&file.model, tensors, &dev).unwrap();
    assert_eq!(accuracy(&reloaded, &test, 64).unwrap(), acc);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();

    // same seed, same model
    let again = train_classifier(
        &model,
        &ClassifierTrainConfig { steps: 5, ..cfg.clone() },
        &train,
        &dev,
        &mut |_| {},
    )
    .unwrap();
    let again2 =
        train_classifier(&model, &ClassifierTrainConfig { steps: 5, ..cfg }, &train, &dev, &mut |_| {})
            .unwrap();
    assert_eq!(again.final_loss, again2.final_loss);
}
