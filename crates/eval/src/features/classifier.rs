//! `ClassifierFeatures`: rediffuse's own small CNN classifier ([`rediffuse_nn::Classifier`],
//! trained by `rediffuse train-classifier`) as a feature network for FID / KID / IS on small
//! grey-scale image sets. Features are its penultimate activations, logits its class scores.
//!
//! A classifier folder holds `classifier.safetensors` and `classifier.toml` (the network's
//! configuration under `[model]`; other tables are ignored here).

use super::error::{FeatureError, Result};
use super::inception::{fnv1a64, FNV_OFFSET};
use super::FeatureExtractor;
use candle_core::{Device, Tensor};
use rediffuse_nn::classifier::{
    Classifier, ClassifierConfig, CLASSIFIER_CONFIG_FILE, CLASSIFIER_WEIGHTS_FILE,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The part of `classifier.toml` the extractor needs.
#[derive(Deserialize)]
struct ModelSection {
    model: ClassifierConfig,
}

/// The built-in classifier as a [`FeatureExtractor`].
pub struct ClassifierFeatures {
    net: Classifier,
    fingerprint: u64,
    device: Device,
}

/// FNV-1a over the parameter names (sorted) and their f32 little-endian values.
fn fingerprint(tensors: &HashMap<String, Tensor>) -> Result<u64> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut h = FNV_OFFSET;
    for name in names {
        h = fnv1a64(name.as_bytes(), h);
        let values = tensors[name].to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        for v in values {
            h = fnv1a64(&v.to_le_bytes(), h);
        }
    }
    Ok(h)
}

impl ClassifierFeatures {
    /// Load a classifier folder (`classifier.toml` + `classifier.safetensors`).
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join(CLASSIFIER_CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|source| FeatureError::Io { path: cfg_path.clone(), source })?;
        let section: ModelSection = toml::from_str(&text)
            .map_err(|e| FeatureError::Weights { path: cfg_path.clone(), reason: e.to_string() })?;
        let weights = dir.join(CLASSIFIER_WEIGHTS_FILE);
        if !weights.is_file() {
            return Err(FeatureError::Weights { path: weights, reason: "file not found".into() });
        }
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
            .map_err(|e| FeatureError::Weights { path: weights.clone(), reason: e.to_string() })?;
        Self::from_tensors(&section.model, tensors, device).map_err(|e| match e {
            FeatureError::Weights { reason, .. } => FeatureError::Weights { path: weights, reason },
            other => other,
        })
    }

    /// Build from a configuration and named tensors (as stored in the weights file).
    pub fn from_tensors(
        config: &ClassifierConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        let fingerprint = fingerprint(&tensors)?;
        let net = Classifier::from_tensors(config, tensors, device)
            .map_err(|e| FeatureError::Weights { path: "<memory>".into(), reason: e.to_string() })?;
        Ok(Self { net, fingerprint, device: device.clone() })
    }

    /// FNV-1a hash of the parameter names and values, part of [`FeatureExtractor::id`].
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn config(&self) -> &ClassifierConfig {
        self.net.config()
    }

    fn run(&self, images: &Tensor) -> Result<rediffuse_nn::ClassifierOutput> {
        self.net.config().check_input(images.dims()).map_err(|e| FeatureError::Shape(e.to_string()))?;
        self.net.forward(&images.to_device(&self.device)?).map_err(|e| match e {
            rediffuse_nn::NnError::Candle(c) => FeatureError::Candle(c),
            other => FeatureError::Shape(other.to_string()),
        })
    }
}

impl FeatureExtractor for ClassifierFeatures {
    fn id(&self) -> String {
        let [c, h, w] = self.net.config().input_shape();
        format!("classifier/{c}x{h}x{w}/f{}/{:016x}", self.dim(), self.fingerprint)
    }

    fn dim(&self) -> usize {
        self.net.config().feature_dim
    }

    fn features(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.run(images)?.features)
    }

    fn logits(&self, images: &Tensor) -> Option<Result<Tensor>> {
        Some(self.run(images).map(|o| o.logits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn random_classifier(seed: f64) -> (ClassifierConfig, HashMap<String, Tensor>) {
        let cfg = ClassifierConfig { channels: vec![8], feature_dim: 16, ..ClassifierConfig::new(1, 8, 10) };
        let tensors = cfg
            .parameter_shapes()
            .into_iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n: usize = shape.iter().product();
                let v: Vec<f32> =
                    (0..n).map(|k| ((k as f64 * 0.37 + i as f64 + seed).sin() * 0.3) as f32).collect();
                (name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
            })
            .collect();
        (cfg, tensors)
    }

    #[test]
    fn features_logits_id_and_shape_errors() {
        let (cfg, tensors) = random_classifier(0.0);
        let f = ClassifierFeatures::from_tensors(&cfg, tensors.clone(), &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (5, 1, 8, 8), &Device::Cpu).unwrap();
        assert_eq!(f.features(&x).unwrap().dims(), &[5, 16]);
        assert_eq!(f.logits(&x).unwrap().unwrap().dims(), &[5, 10]);
        assert_eq!(f.dim(), 16);
        // the id is stable for equal weights and changes with any weight
        let same = ClassifierFeatures::from_tensors(&cfg, tensors, &Device::Cpu).unwrap();
        assert_eq!(f.id(), same.id());
        assert!(f.id().starts_with("classifier/1x8x8/f16/"), "{}", f.id());
        let (_, other) = random_classifier(1.0);
        assert_ne!(f.id(), ClassifierFeatures::from_tensors(&cfg, other, &Device::Cpu).unwrap().id());
        let wrong = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(f.features(&wrong), Err(FeatureError::Shape(_))));
        // loading a folder without weights is a clear error
        let dir = std::env::temp_dir().join(format!("rediffuse-clf-feat-{}", std::process::id()));
        assert!(matches!(ClassifierFeatures::load(&dir, &Device::Cpu), Err(FeatureError::Io { .. })));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(CLASSIFIER_CONFIG_FILE), "[model]\nin_channels = 1\nimage_size = 8\n")
            .unwrap();
        assert!(matches!(ClassifierFeatures::load(&dir, &Device::Cpu), Err(FeatureError::Weights { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
