//! Training the built-in feature network ([`rediffuse_nn::Classifier`]) with cross-entropy
//! and AdamW, measuring its accuracy, and writing its folder:
//!
//! ```text
//! DIR/classifier.safetensors   weights (names of ClassifierConfig::parameter_shapes)
//! DIR/classifier.toml          format, data, [model] (ClassifierConfig), [train] (ClassifierTrainConfig)
//! DIR/metrics.json             ClassifierMetrics (test accuracy, counts, final loss, time)
//! ```
//! Every file is written atomically; a folder that already holds files is refused.

use crate::batcher::Batcher;
use crate::error::{Result, TrainError};
use crate::fsutil::{save_safetensors_atomic, write_atomic};
use crate::init::{sorted_params, SeededInit};
use crate::optim::{AdamW, AdamWConfig};
use crate::rng::derive_rng;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::StandardNormal;
use rediffuse_nn::classifier::{
    Classifier, ClassifierConfig, CLASSIFIER_CONFIG_FILE, CLASSIFIER_WEIGHTS_FILE,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `format` value of `classifier.toml`.
pub const CLASSIFIER_FORMAT: &str = "rediffuse-classifier";
/// Metrics file inside a classifier folder.
pub const CLASSIFIER_METRICS_FILE: &str = "metrics.json";

/// Optimisation hyper-parameters of the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierTrainConfig {
    /// Optimisation steps (>= 1).
    pub steps: usize,
    /// Images per step (>= 1).
    pub batch_size: usize,
    /// Peak learning rate (> 0, finite).
    pub lr: f64,
    /// Linear warm-up steps before the cosine decay.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay (>= 0).
    pub weight_decay: f64,
    /// Seed of the initialisation and of the data order.
    pub seed: u64,
}

impl ClassifierTrainConfig {
    /// Check every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(TrainError::invalid("steps", "must be >= 1"));
        }
        if self.batch_size == 0 {
            return Err(TrainError::invalid("batch_size", "must be >= 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(TrainError::invalid("lr", format!("must be finite and > 0, got {}", self.lr)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(TrainError::invalid(
                "weight_decay",
                format!("must be finite and >= 0, got {}", self.weight_decay),
            ));
        }
        Ok(())
    }

    /// Learning rate of step `k = 1 … steps`: linear warm-up to `lr`, then cosine decay to 0
    /// (Loshchilov & Hutter 2017, SGDR Eq. (5) with a single cycle and η_min = 0).
    pub fn lr_at(&self, k: usize) -> f64 {
        if self.warmup_steps > 0 && k <= self.warmup_steps {
            return self.lr * k as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = (k.saturating_sub(self.warmup_steps)) as f64 / span;
        0.5 * self.lr * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
    }
}

/// Images `[N, C, H, W]` with their class labels.
#[derive(Debug, Clone)]
pub struct LabeledImages {
    images: Tensor,
    labels: Vec<u32>,
    num_classes: usize,
}

impl LabeledImages {
    /// Validate: 4-D finite images, one label per image, every label `< num_classes`.
    pub fn new(images: Tensor, labels: Vec<u32>, num_classes: usize) -> Result<Self> {
        let dims = images.dims().to_vec();
        if dims.len() != 4 || dims[1..].contains(&0) {
            return Err(TrainError::Data(format!("images must be [N, C, H, W], got {dims:?}")));
        }
        if dims[0] != labels.len() {
            return Err(TrainError::Data(format!("{} images but {} labels", dims[0], labels.len())));
        }
        if dims[0] == 0 {
            return Err(TrainError::Data("no images".into()));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= num_classes) {
            return Err(TrainError::Data(format!("label {bad} is not below num_classes = {num_classes}")));
        }
        let finite =
            images.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| v.is_finite());
        if !finite {
            return Err(TrainError::Data("images contain NaN or infinite values".into()));
        }
        Ok(Self { images: images.to_dtype(DType::F32)?, labels, num_classes })
    }

    /// From a `[N]` u32 label tensor.
    pub fn from_label_tensor(images: Tensor, labels: &Tensor, num_classes: usize) -> Result<Self> {
        let labels = labels.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?;
        Self::new(images, labels, num_classes)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn images(&self) -> &Tensor {
        &self.images
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Per-image shape `[C, H, W]`.
    pub fn image_shape(&self) -> [usize; 3] {
        let d = self.images.dims();
        [d[1], d[2], d[3]]
    }

    /// The examples at `idx` (each `< len`).
    pub fn select(&self, idx: &[usize]) -> Result<Self> {
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.len()) {
            return Err(TrainError::Data(format!("index {bad} out of range 0..{}", self.len())));
        }
        let t = Tensor::from_vec(
            idx.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            idx.len(),
            self.images.device(),
        )?;
        Ok(Self {
            images: self.images.index_select(&t, 0)?,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
        })
    }
}

/// A seeded hold-out split of `0..n`: `(train, test)` with `round(n·test_fraction)` test
/// indices (at least 1 of each), both in increasing order. For data sets without a test split.
pub fn holdout_split(n: usize, test_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(TrainError::invalid("test_fraction", format!("must lie in (0, 1), got {test_fraction}")));
    }
    if n < 2 {
        return Err(TrainError::Data(format!("cannot split {n} examples")));
    }
    let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n - 1);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut derive_rng(seed, "holdout"));
    let mut test = idx.split_off(n - n_test);
    idx.sort_unstable();
    test.sort_unstable();
    Ok((idx, test))
}

/// Row-wise `log softmax(z)_c = z_c − m − log Σ_j exp(z_j − m)` with `m = max_j z_j` held
/// constant (the result does not depend on `m`, so no gradient flows through it).
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let m = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&m)?;
    let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// Mean cross-entropy `−(1/B) Σ_b log softmax(z_b)_{y_b}` of logits `[B, C]` and labels `y`.
pub fn cross_entropy(logits: &Tensor, labels: &[u32]) -> Result<Tensor> {
    let (b, c) = logits.dims2()?;
    if labels.len() != b {
        return Err(TrainError::Data(format!("{b} logit rows but {} labels", labels.len())));
    }
    let mut onehot = vec![0f32; b * c];
    for (i, &y) in labels.iter().enumerate() {
        if y as usize >= c {
            return Err(TrainError::Data(format!("label {y} is not below {c} classes")));
        }
        onehot[i * c + y as usize] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (b, c), logits.device())?.to_dtype(logits.dtype())?;
    Ok((log_softmax(logits)? * onehot)?.sum_all()?.affine(-1.0 / b as f64, 0.0)?)
}

/// Progress of one step, handed to the observer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierStep {
    /// Step number `k = 1 … steps`.
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
}

/// A trained network with its parameters.
pub struct TrainedClassifier {
    pub model: Classifier,
    pub varmap: VarMap,
    /// Mean loss over the last `min(100, steps)` steps.
    pub final_loss: f64,
}

/// Train a fresh classifier on `data` (parameters from `SeededInit` with `train.seed`, data
/// order from the seeded batcher, AdamW with warm-up + cosine learning rate).
pub fn train_classifier(
    model_config: &ClassifierConfig,
    train: &ClassifierTrainConfig,
    data: &LabeledImages,
    device: &Device,
    observer: &mut dyn FnMut(ClassifierStep),
) -> Result<TrainedClassifier> {
    train.validate()?;
    model_config.validate()?;
    model_config.check_input(data.images().dims())?;
    if data.num_classes() > model_config.num_classes {
        return Err(TrainError::Data(format!(
            "data have {} classes, the model {}",
            data.num_classes(),
            model_config.num_classes
        )));
    }
    let varmap = VarMap::new();
    let model = Classifier::new(model_config, SeededInit::var_builder(&varmap, train.seed, device))?;
    let adam = AdamWConfig { weight_decay: train.weight_decay, ..AdamWConfig::default() };
    let mut opt = AdamW::new(sorted_params(&varmap), adam)?;
    let images = data.images().to_device(device)?;
    let mut batcher = Batcher::new(data.len(), train.seed);
    let mut idx = Vec::with_capacity(train.batch_size);
    let mut recent = std::collections::VecDeque::with_capacity(100);
    // noise-conditioned classifiers: ln σ uniform over the range, x_σ = x₀ + σ·n
    let mut noise_rng = crate::rng::derive_rng(train.seed, "classifier-noise");
    for k in 1..=train.steps {
        batcher.next_batch(train.batch_size, &mut idx);
        let x = images.index_select(&Tensor::from_slice(&idx, idx.len(), device)?, 0)?;
        let y: Vec<u32> = idx.iter().map(|&i| data.labels()[i as usize]).collect();
        let logits = match model_config.noise_range {
            None => model.forward(&x)?.logits,
            Some([lo, hi]) => {
                let sig: Vec<f64> = (0..idx.len())
                    .map(|_| (lo.ln() + (hi / lo).ln() * noise_rng.random::<f64>()).exp())
                    .collect();
                let n: Vec<f32> = (0..x.elem_count()).map(|_| noise_rng.sample(StandardNormal)).collect();
                let per = x.elem_count() / idx.len();
                let scaled: Vec<f32> = n.iter().enumerate().map(|(i, v)| v * sig[i / per] as f32).collect();
                let x_sigma = x.add(&Tensor::from_vec(scaled, x.shape(), device)?)?;
                model.forward_at(&x_sigma, &sig)?.logits
            }
        };
        let loss = cross_entropy(&logits, &y)?;
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: k as u64,
                loss: value,
                streak: 1,
                checkpoint: None,
            });
        }
        let lr = train.lr_at(k);
        opt.step(&loss.backward()?, lr, 1.0)?;
        if recent.len() == 100 {
            recent.pop_front();
        }
        recent.push_back(value);
        observer(ClassifierStep { step: k, loss: value, lr });
    }
    let final_loss = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
    Ok(TrainedClassifier { model, varmap, final_loss })
}

/// Accuracy of a noise-conditioned classifier on `data` noised to level `sigma` (noise seeded
/// with `seed`).
pub fn accuracy_at(
    model: &Classifier,
    data: &LabeledImages,
    sigma: f64,
    seed: u64,
    batch_size: usize,
) -> Result<f64> {
    if batch_size == 0 {
        return Err(TrainError::invalid("batch_size", "must be >= 1"));
    }
    let mut rng = crate::rng::derive_rng(seed, "classifier-eval-noise");
    let mut correct = 0usize;
    for start in (0..data.len()).step_by(batch_size) {
        let len = batch_size.min(data.len() - start);
        let x = data.images().narrow(0, start, len)?;
        let n: Vec<f32> =
            (0..x.elem_count()).map(|_| rng.sample::<f32, _>(StandardNormal) * sigma as f32).collect();
        let x = x.add(&Tensor::from_vec(n, x.shape(), x.device())?)?;
        let pred = model.forward_at(&x, &vec![sigma; len])?.logits.argmax(1)?.to_vec1::<u32>()?;
        correct += pred.iter().zip(&data.labels()[start..start + len]).filter(|(p, y)| p == y).count();
    }
    Ok(correct as f64 / data.len() as f64)
}

/// Fraction of `data` whose arg-max logit equals the label (evaluated in batches).
pub fn accuracy(model: &Classifier, data: &LabeledImages, batch_size: usize) -> Result<f64> {
    if batch_size == 0 {
        return Err(TrainError::invalid("batch_size", "must be >= 1"));
    }
    let mut correct = 0usize;
    for start in (0..data.len()).step_by(batch_size) {
        let len = batch_size.min(data.len() - start);
        let x = data.images().narrow(0, start, len)?;
        let pred = model.forward(&x)?.logits.argmax(1)?.to_vec1::<u32>()?;
        correct += pred.iter().zip(&data.labels()[start..start + len]).filter(|(p, y)| p == y).count();
    }
    Ok(correct as f64 / data.len() as f64)
}

/// Contents of `classifier.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierFile {
    /// Always [`CLASSIFIER_FORMAT`].
    pub format: String,
    /// Data set the network was trained on (as named on the command line).
    pub data: String,
    pub model: ClassifierConfig,
    pub train: ClassifierTrainConfig,
}

/// Contents of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierMetrics {
    /// Accuracy on the held-out test images.
    pub test_accuracy: f64,
    /// Accuracy on the training images.
    pub train_accuracy: f64,
    pub n_train: usize,
    pub n_test: usize,
    /// Where the test images come from (`test split` or a seeded hold-out fraction).
    pub test_source: String,
    pub steps: usize,
    /// Mean loss over the last steps.
    pub final_loss: f64,
    pub train_seconds: f64,
}

/// Refuse a folder that exists and holds anything; create it otherwise.
pub fn prepare_classifier_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?;
        if entries.next().is_some() {
            return Err(TrainError::RunDirNotEmpty(dir.to_path_buf()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))
}

/// Write the weights, `classifier.toml` and `metrics.json` (each atomically) into `dir`,
/// which must be empty or absent.
pub fn save_classifier(
    dir: &Path,
    trained: &TrainedClassifier,
    file: &ClassifierFile,
    metrics: &ClassifierMetrics,
) -> Result<()> {
    prepare_classifier_dir(dir)?;
    let tensors =
        sorted_params(&trained.varmap).into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
    save_safetensors_atomic(&tensors, &dir.join(CLASSIFIER_WEIGHTS_FILE))?;
    let toml =
        toml::to_string_pretty(file).map_err(|e| TrainError::invalid("classifier.toml", e.to_string()))?;
    write_atomic(&dir.join(CLASSIFIER_CONFIG_FILE), toml.as_bytes())?;
    let json = serde_json::to_string_pretty(metrics)
        .map_err(|e| TrainError::invalid("metrics.json", e.to_string()))?;
    write_atomic(&dir.join(CLASSIFIER_METRICS_FILE), json.as_bytes())
}

/// Load the network of a classifier folder (`classifier.toml` + `classifier.safetensors`).
pub fn load_classifier(dir: &Path, device: &Device) -> Result<Classifier> {
    let file = read_classifier_file(dir)?;
    let weights = dir.join(CLASSIFIER_WEIGHTS_FILE);
    if !weights.is_file() {
        return Err(TrainError::MissingFile(weights));
    }
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .map_err(|e| TrainError::corrupt(&weights, e.to_string()))?;
    Classifier::from_tensors(&file.model, tensors, device)
        .map_err(|e| TrainError::corrupt(&weights, e.to_string()))
}

/// Read `classifier.toml` of a classifier folder.
pub fn read_classifier_file(dir: &Path) -> Result<ClassifierFile> {
    let path = dir.join(CLASSIFIER_CONFIG_FILE);
    if !path.exists() {
        return Err(TrainError::MissingFile(path));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let file: ClassifierFile = toml::from_str(&text)
        .map_err(|e| TrainError::ConfigParse { path: path.clone(), reason: e.to_string() })?;
    if file.format != CLASSIFIER_FORMAT {
        return Err(TrainError::corrupt(
            &path,
            format!("format is `{}`, not {CLASSIFIER_FORMAT}", file.format),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn cross_entropy_value_and_gradient_match_closed_form() {
        let z = [[2.0f32, -1.0, 0.5], [0.0, 0.0, 0.0], [30.0, -40.0, 5.0]];
        let y = [0u32, 2, 1];
        let var = Var::new(&z, &Device::Cpu).unwrap();
        let loss = cross_entropy(var.as_tensor(), &y).unwrap();
        // closed form in f64: CE = mean_b (log Σ_j e^{z_bj} − z_b,y_b), ∂CE/∂z = (softmax − onehot)/B
        let mut want = 0.0;
        let mut grad_want = Vec::new();
        for (row, &label) in z.iter().zip(&y) {
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
            let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            want += (m + s.ln() - row[label as usize] as f64) / 3.0;
            for (c, &v) in row.iter().enumerate() {
                let p = (v as f64 - m).exp() / s;
                grad_want.push((p - if c == label as usize { 1.0 } else { 0.0 }) / 3.0);
            }
        }
        let got = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-5 * want.max(1.0), "{got} vs {want}");
        let grads = loss.backward().unwrap();
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in g.iter().zip(&grad_want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
        // log-softmax rows exponentiate to probability vectors, also for huge logits
        let p =
            log_softmax(var.as_tensor()).unwrap().exp().unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap();
        assert!(p.iter().all(|s| (s - 1.0).abs() < 1e-6), "{p:?}");
        assert!(cross_entropy(var.as_tensor(), &[0, 3, 1]).is_err());
        assert!(cross_entropy(var.as_tensor(), &[0, 1]).is_err());
    }

    #[test]
    fn holdout_split_is_seeded_disjoint_and_complete() {
        let (a, b) = holdout_split(1797, 0.2, 7).unwrap();
        assert_eq!(b.len(), 359);
        assert_eq!(a.len() + b.len(), 1797);
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1797).collect::<Vec<_>>());
        assert_eq!(holdout_split(1797, 0.2, 7).unwrap(), (a.clone(), b.clone()));
        assert_ne!(holdout_split(1797, 0.2, 8).unwrap().1, b);
        assert!(holdout_split(10, 0.0, 0).is_err());
        assert!(holdout_split(10, f64::NAN, 0).is_err());
        assert!(holdout_split(1, 0.5, 0).is_err());
    }

    #[test]
    fn lr_schedule_and_config_validation() {
        let c = ClassifierTrainConfig {
            steps: 110,
            batch_size: 8,
            lr: 1e-2,
            warmup_steps: 10,
            weight_decay: 0.0,
            seed: 0,
        };
        assert!((c.lr_at(5) - 5e-3).abs() < 1e-15);
        assert!((c.lr_at(10) - 1e-2).abs() < 1e-15);
        assert!((c.lr_at(60) - 5e-3).abs() < 1e-12);
        assert!(c.lr_at(110).abs() < 1e-15);
        assert!(c.validate().is_ok());
        for bad in [
            ClassifierTrainConfig { steps: 0, ..c.clone() },
            ClassifierTrainConfig { batch_size: 0, ..c.clone() },
            ClassifierTrainConfig { lr: f64::NAN, ..c.clone() },
            ClassifierTrainConfig { lr: -1.0, ..c.clone() },
            ClassifierTrainConfig { weight_decay: -1.0, ..c.clone() },
        ] {
            assert!(matches!(bad.validate(), Err(TrainError::InvalidConfig { .. })), "{bad:?}");
        }
    }

    #[test]
    fn labeled_images_reject_bad_input() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((3, 1, 4, 4), DType::F32, &dev).unwrap();
        assert!(LabeledImages::new(x.clone(), vec![0, 1], 10).is_err());
        assert!(LabeledImages::new(x.clone(), vec![0, 1, 10], 10).is_err());
        assert!(LabeledImages::new(x.reshape((3, 16)).unwrap(), vec![0, 1, 2], 10).is_err());
        let nan = x.affine(0.0, f64::NAN).unwrap();
        assert!(LabeledImages::new(nan, vec![0, 1, 2], 10).is_err());
        let ok = LabeledImages::new(x, vec![0, 1, 2], 10).unwrap();
        assert_eq!(ok.select(&[2, 0]).unwrap().labels(), &[2, 0]);
        assert!(ok.select(&[3]).is_err());
    }
}
