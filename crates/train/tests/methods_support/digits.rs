//! Helpers of the per-method digits tests: the embedded 8×8 UCI digits split into a training part
//! and a held-out part, flattened to `[N, 64]` for the MLP; sample-quality scores (FID on the raw
//! 64 pixels and on the features of the built-in digits classifier, the Inception Score of its
//! logits, improved precision/recall, pixel statistics) with the pass/fail check of the tests;
//! and bad baselines the scores must reject (the data's Gaussian fit,
//! pure noise, noisy or blurred digits).
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rediffuse_data::images::{ImageSpec, Split};
use rediffuse_eval::features::{
    extract_features, extract_logits, fid, inception_score_from_logits, precision_recall, ClassifierFeatures,
    FeatureExtractor, FeatureMatrix, FeatureStats, RawFeatures,
};
use rediffuse_nn::classifier::ClassifierConfig;
use rediffuse_nn::{MlpConfig, ModelConfig};
use rediffuse_train::classifier::{train_classifier, ClassifierTrainConfig, LabeledImages};
use rediffuse_train::init::sorted_params;
use rediffuse_train::{load_run, LoadedRun, Method, NoObserver, TrainConfig, Trainer};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

/// Images held out of diffusion training; the reference set of every score.
pub const N_HELD: usize = 500;
/// Pixels per image.
pub const DIM: usize = 64;

/// The digits in [−1, 1], flattened, split by a seeded permutation.
pub struct Digits {
    /// `[1297, 64]` training images.
    pub train: Tensor,
    /// Labels of `train`.
    pub train_labels: Vec<u32>,
    /// `[500, 64]` held-out images.
    pub held: Tensor,
}

/// One-time process set-up, called first by every digits test: each test computes on one
/// thread (`rediffuse_nn::ops::init_threads(Some(1))`, which also sets `CANDLE_NUM_THREADS=1`
/// before any tensor exists). On a shared 2-core machine candle's spin-waiting element-wise
/// pool made training 3–4× slower; with one thread per test, results are also the same on
/// every machine (the kernels' reductions depend on the thread count).
pub fn setup() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| rediffuse_nn::ops::init_threads(Some(1)));
}

/// The split (computed once per test process).
pub fn digits() -> &'static Digits {
    static D: OnceLock<Digits> = OnceLock::new();
    D.get_or_init(|| {
        let batch = ImageSpec::Digits { size: 8 }.load(Some(1797), 11, Split::Train).unwrap();
        let n = batch.images.dim(0).unwrap();
        let flat = batch.images.reshape((n, DIM)).unwrap();
        let labels = batch.labels.unwrap().to_dtype(DType::U32).unwrap().to_vec1::<u32>().unwrap();
        Digits {
            train: flat.narrow(0, N_HELD, n - N_HELD).unwrap(),
            train_labels: labels[N_HELD..].to_vec(),
            held: flat.narrow(0, 0, N_HELD).unwrap(),
        }
    })
}

/// `[n, 64]` as `[n, 1, 8, 8]`.
pub fn as_images(x: &Tensor) -> Tensor {
    let n = x.dim(0).unwrap();
    x.to_dtype(DType::F32).unwrap().reshape((n, 1, 8, 8)).unwrap()
}

/// Quality figures of a set of flattened digit samples.
#[derive(Debug, Clone, Copy)]
pub struct Scores {
    /// FID with the 64 raw pixel values as features, against the held-out digits.
    pub raw_fid: f64,
    /// FID on the digits classifier's penultimate features, against the held-out digits.
    pub clf_fid: f64,
    /// Inception Score of the classifier's logits (10 splits).
    pub is: f64,
    /// Mean, minimum and maximum pixel value.
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Fraction of pixels outside [−1.1, 1.1].
    pub outside: f64,
    /// Samples with a non-finite pixel (left out of every other figure).
    pub nonfinite: usize,
    /// Improved precision (k = 3) on raw pixels and on classifier features, recall on the latter.
    pub prec_raw: f64,
    pub prec_clf: f64,
    pub recall_clf: f64,
}

impl std::fmt::Display for Scores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "raw-FID {:7.3}  clf-FID {:7.3}  IS {:5.2}  mean {:+.3} range [{:+.2}, {:+.2}] outside {:.4}",
            self.raw_fid, self.clf_fid, self.is, self.mean, self.min, self.max, self.outside
        )?;
        write!(f, "  P_raw {:.3} P_clf {:.3} R_clf {:.3}", self.prec_raw, self.prec_clf, self.recall_clf)?;
        if self.nonfinite > 0 {
            write!(f, "  NON-FINITE {}", self.nonfinite)?;
        }
        Ok(())
    }
}

/// The feature networks and the held-out reference statistics.
pub struct Scorer {
    raw: RawFeatures,
    clf: ClassifierFeatures,
    raw_held: FeatureStats,
    clf_held: FeatureStats,
    raw_held_f: FeatureMatrix,
    clf_held_f: FeatureMatrix,
    /// Mean training loss of the classifier over its last 100 steps.
    pub clf_final_loss: f64,
}

/// Train the digits classifier (on the training part only, 400 steps) once per test process.
pub fn scorer() -> &'static Scorer {
    static S: OnceLock<Scorer> = OnceLock::new();
    S.get_or_init(|| {
        let t0 = Instant::now();
        let d = digits();
        let dev = Device::Cpu;
        let data = LabeledImages::new(as_images(&d.train), d.train_labels.clone(), 10).unwrap();
        let model = ClassifierConfig::new(1, 8, 10);
        let cfg = ClassifierTrainConfig {
            steps: 400,
            batch_size: 64,
            lr: 3e-3,
            warmup_steps: 20,
            weight_decay: 1e-4,
            seed: 0,
        };
        let trained = train_classifier(&model, &cfg, &data, &dev, &mut |_| {}).unwrap();
        let tensors =
            sorted_params(&trained.varmap).into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        let clf = ClassifierFeatures::from_tensors(&model, tensors, &dev).unwrap();
        let raw = RawFeatures::new(1, 8, 8).unwrap();
        let held = as_images(&d.held);
        let raw_held_f = extract_features(&raw, &held, 256).unwrap();
        let clf_held_f = extract_features(&clf, &held, 256).unwrap();
        let raw_held = FeatureStats::from_features(&raw_held_f, raw.id()).unwrap();
        let clf_held = FeatureStats::from_features(&clf_held_f, clf.id()).unwrap();
        println!(
            "classifier trained in {:.1} s (final loss {:.3})",
            t0.elapsed().as_secs_f64(),
            trained.final_loss
        );
        Scorer { raw, clf, raw_held, clf_held, raw_held_f, clf_held_f, clf_final_loss: trained.final_loss }
    })
}

impl Scorer {
    /// Score flattened samples `[n, 64]` against the held-out digits; samples with a non-finite
    /// pixel are counted and left out (at least 10 must remain).
    pub fn score(&self, x: &Tensor) -> Scores {
        let rows: Vec<Vec<f32>> = x.to_dtype(DType::F32).unwrap().to_vec2().unwrap();
        let n = rows.len();
        let v: Vec<f32> = rows.into_iter().filter(|r| r.iter().all(|p| p.is_finite())).flatten().collect();
        let kept = v.len() / DIM;
        assert!(kept >= 10, "only {kept} of {n} samples are finite");
        let images = Tensor::from_vec(v.clone(), (kept, 1, 8, 8), &Device::Cpu).unwrap();
        let raw_f = extract_features(&self.raw, &images, 256).unwrap();
        let clf_f = extract_features(&self.clf, &images, 256).unwrap();
        let raw_fid =
            fid(&FeatureStats::from_features(&raw_f, self.raw.id()).unwrap(), &self.raw_held).unwrap();
        let clf_fid =
            fid(&FeatureStats::from_features(&clf_f, self.clf.id()).unwrap(), &self.clf_held).unwrap();
        let pr_raw = precision_recall(&self.raw_held_f, &raw_f, 3).unwrap();
        let pr_clf = precision_recall(&self.clf_held_f, &clf_f, 3).unwrap();
        let logits = extract_logits(&self.clf, &images, 256).unwrap().unwrap();
        let is = inception_score_from_logits(&logits, 10).unwrap().mean;
        let mean = v.iter().map(|&p| p as f64).sum::<f64>() / v.len() as f64;
        let min = v.iter().fold(f32::INFINITY, |m, &p| m.min(p)) as f64;
        let max = v.iter().fold(f32::NEG_INFINITY, |m, &p| m.max(p)) as f64;
        let outside = v.iter().filter(|p| p.abs() > 1.1).count() as f64 / v.len() as f64;
        Scores {
            raw_fid,
            clf_fid,
            is,
            mean,
            min,
            max,
            outside,
            nonfinite: n - kept,
            prec_raw: pr_raw.precision,
            prec_clf: pr_clf.precision,
            recall_clf: pr_clf.recall,
        }
    }
}

/// Mean pixel value of the held-out digits.
pub fn held_mean() -> f64 {
    digits().held.mean_all().unwrap().to_scalar::<f32>().unwrap() as f64
}

/// The first `n` training images (a real set disjoint from the held-out one): its scores are the
/// noise floor of a perfect model.
pub fn real_subset(n: usize) -> Tensor {
    digits().train.narrow(0, 0, n).unwrap()
}

/// `n` draws from the Gaussian with the training images' mean and covariance: right first and
/// second pixel moments, no digit shapes.
pub fn gaussian_fit(n: usize, seed: u64) -> Tensor {
    let x: Vec<Vec<f32>> = digits().train.to_vec2().unwrap();
    let m = x.len() as f64;
    let mut mu = [0.0f64; DIM];
    for r in &x {
        for (a, &v) in mu.iter_mut().zip(r) {
            *a += v as f64 / m;
        }
    }
    let mut cov = vec![0.0f64; DIM * DIM];
    for r in &x {
        for i in 0..DIM {
            for j in 0..DIM {
                cov[i * DIM + j] += (r[i] as f64 - mu[i]) * (r[j] as f64 - mu[j]) / (m - 1.0);
            }
        }
    }
    // Cholesky of Σ + 1e-6·I (constant-zero border pixels make Σ singular)
    let mut l = vec![0.0f64; DIM * DIM];
    for i in 0..DIM {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * DIM + k] * l[j * DIM + k]).sum();
            if i == j {
                l[i * DIM + i] = (cov[i * DIM + i] + 1e-6 - s).max(0.0).sqrt();
            } else {
                l[i * DIM + j] = (cov[i * DIM + j] - s) / l[j * DIM + j];
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let z: Vec<f64> = (0..DIM).map(|_| rng.sample(StandardNormal)).collect();
        for i in 0..DIM {
            out.push((mu[i] + (0..=i).map(|k| l[i * DIM + k] * z[k]).sum::<f64>()) as f32);
        }
    }
    Tensor::from_vec(out, (n, DIM), &Device::Cpu).unwrap()
}

/// `n` draws of N(0, I) (what an untrained sampler started from noise looks like).
pub fn pure_noise(n: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n * DIM).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    Tensor::from_vec(v, (n, DIM), &Device::Cpu).unwrap()
}

/// Real training images plus Gaussian noise of standard deviation `std`.
pub fn noisy_real(n: usize, std: f64, seed: u64) -> Tensor {
    let noise = pure_noise(n, seed).affine(std, 0.0).unwrap();
    (real_subset(n) + noise).unwrap()
}

/// Real training images blurred with a 3×3 box filter (edges: mean over the pixels inside).
pub fn blurred_real(n: usize) -> Tensor {
    let x: Vec<Vec<f32>> = real_subset(n).to_vec2().unwrap();
    let mut out = Vec::with_capacity(n * DIM);
    for img in &x {
        for r in 0..8i32 {
            for c in 0..8i32 {
                let (mut s, mut k) = (0.0f32, 0.0f32);
                for dr in -1..=1 {
                    for dc in -1..=1 {
                        let (rr, cc) = (r + dr, c + dc);
                        if (0..8).contains(&rr) && (0..8).contains(&cc) {
                            s += img[(rr * 8 + cc) as usize];
                            k += 1.0;
                        }
                    }
                }
                out.push(s / k);
            }
        }
    }
    Tensor::from_vec(out, (n, DIM), &Device::Cpu).unwrap()
}

/// Largest Euclidean distance between two training images (Song & Ermon's rule for σ_max) and
/// the pixel standard deviation (EDM's σ_data).
pub fn data_scales() -> (f64, f64) {
    let x: Vec<Vec<f32>> = digits().train.to_vec2().unwrap();
    let mut dmax = 0.0f64;
    for i in 0..x.len() {
        for j in 0..i {
            let d: f64 = x[i].iter().zip(&x[j]).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
            dmax = dmax.max(d);
        }
    }
    let all: Vec<f64> = x.iter().flatten().map(|&v| v as f64).collect();
    let m = all.iter().sum::<f64>() / all.len() as f64;
    let var = all.iter().map(|v| (v - m).powi(2)).sum::<f64>() / all.len() as f64;
    (dmax.sqrt(), var.sqrt())
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-digits-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Residual MLP on the 64 flattened pixels (hidden 256, 3 blocks, 0.3 M parameters), batch 128,
/// AdamW 2e-3 with 100 warm-up steps, gradient-norm clip 1, EMA 0.999.
pub fn digits_config(method: Method, steps: usize) -> TrainConfig {
    let mlp = MlpConfig { hidden: 256, ..MlpConfig::new(DIM) };
    let mut c = TrainConfig::new("digits-flat", ModelConfig::Mlp(mlp), method);
    c.steps = steps;
    c.batch_size = 128;
    c.lr = 2e-3;
    c.warmup_steps = 100;
    c.grad_clip = Some(1.0);
    c.log_every = 500;
    c.checkpoint_every = 1_000_000;
    c.seed = 7;
    c
}

/// Train `method` on the training part for `steps` steps; returns the loaded (EMA) run, the
/// logged losses, the run folder and the training time in seconds.
pub fn train_digits(tag: &str, config: TrainConfig) -> (LoadedRun, Vec<f64>, PathBuf, f64) {
    let dir = temp_dir(tag);
    let t0 = Instant::now();
    let steps = config.steps;
    let mut tr = Trainer::create(&dir, config, digits().train.clone()).unwrap();
    tr.run(&mut NoObserver).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let losses: Vec<f64> =
        rediffuse_train::read_metrics(&dir.join("metrics.jsonl")).unwrap().iter().map(|r| r.loss).collect();
    println!("[{tag}] trained {steps} steps in {secs:.1} s, losses {losses:.3?}");
    (load_run(&dir, true, &Device::Cpu).unwrap(), losses, dir, secs)
}

/// Scores of the two reference sets of a sample size: real training digits (the noise floor of
/// a perfect model) and the data's Gaussian fit (right pixel moments, no digit shapes).
pub struct References {
    pub floor: Scores,
    pub gauss: Scores,
}

pub fn references(n: usize) -> References {
    let s = scorer();
    References { floor: s.score(&real_subset(n)), gauss: s.score(&gaussian_fit(n, 1)) }
}

/// Bounds of the digits quality check (chosen from measurements, see `methods_digits.rs`).
pub const RAW_FID_FLOOR_FACTOR: f64 = 4.0;
pub const CLF_FID_GAUSS_FACTOR: f64 = 0.8;
pub const MIN_RAW_PRECISION: f64 = 0.3;
pub const MAX_OUTSIDE: f64 = 0.15;
pub const MAX_MEAN_ERROR: f64 = 0.05;

/// The reasons `s` fails the digits quality check (empty: it passes):
/// no non-finite sample; mean pixel within 0.05 of the held-out mean and at most 15% of pixels
/// outside [−1.1, 1.1]; raw-pixel FID ≤ 4 × the real-vs-real floor; classifier FID ≤ 0.8 × that
/// of the Gaussian fit; raw-pixel precision ≥ 0.3 (the Gaussian fit has 0.12).
pub fn quality_failures(s: &Scores, refs: &References) -> Vec<String> {
    let mut out = Vec::new();
    if s.nonfinite > 0 {
        out.push(format!("{} non-finite samples", s.nonfinite));
    }
    let m = held_mean();
    if (s.mean - m).abs() > MAX_MEAN_ERROR {
        out.push(format!("mean pixel {:.3} vs held-out {m:.3}", s.mean));
    }
    if s.outside > MAX_OUTSIDE {
        out.push(format!("{:.3} of pixels outside [-1.1, 1.1]", s.outside));
    }
    let raw_max = RAW_FID_FLOOR_FACTOR * refs.floor.raw_fid;
    if s.raw_fid > raw_max {
        out.push(format!("raw-pixel FID {:.3} > {raw_max:.3}", s.raw_fid));
    }
    let clf_max = CLF_FID_GAUSS_FACTOR * refs.gauss.clf_fid;
    if s.clf_fid > clf_max {
        out.push(format!("classifier FID {:.3} > {clf_max:.3}", s.clf_fid));
    }
    if s.prec_raw < MIN_RAW_PRECISION {
        out.push(format!("raw-pixel precision {:.3} < {MIN_RAW_PRECISION}", s.prec_raw));
    }
    out
}
