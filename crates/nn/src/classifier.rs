//! A small CNN classifier for low-resolution images (MNIST / Fashion-MNIST 28×28, the UCI
//! digits 8×8 or 16×16). It is rediffuse's built-in feature network for FID / KID / IS on
//! those sets: its penultimate activations are the features, its logits the class scores.
//!
//! ```text
//! h = SiLU(GN(conv3×3(x)))                                   stem, channels[0], full size
//! for each c in channels:
//!     h = SiLU(GN(conv3×3, stride 2 (h)))                    halves the side: s → ⌈s/2⌉
//!     h = SiLU(GN(conv3×3(h)))
//! f = SiLU(W_f · flatten(h) + b_f)                           features, [B, feature_dim]
//! logits = W_o · f + b_o                                     [B, num_classes]
//! ```
//! GN is GroupNorm (Wu & He 2018) fused with SiLU in [`crate::ops::group_norm`].
//! Parameter names: `convs.{j}.{weight,bias}`, `norms.{j}.{weight,bias}` (j = 0 is the stem,
//! then two per stage), `feature.{weight,bias}`, `head.{weight,bias}`.

use crate::error::NnError;
use crate::ops::{conv2d, group_norm, linear, silu};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Weights file inside a classifier folder.
pub const CLASSIFIER_WEIGHTS_FILE: &str = "classifier.safetensors";
/// Configuration file inside a classifier folder (TOML, the network under `[model]`).
pub const CLASSIFIER_CONFIG_FILE: &str = "classifier.toml";

const GN_EPS: f64 = 1e-5;

fn default_channels() -> Vec<usize> {
    vec![32, 64]
}
fn default_feature_dim() -> usize {
    128
}
fn default_num_classes() -> usize {
    10
}
fn default_groups() -> usize {
    8
}

/// Hyper-parameters of [`Classifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Image channels (1 for grey images).
    pub in_channels: usize,
    /// Side length of the square input images.
    pub image_size: usize,
    /// Channels of the stem and the stages (one stride-2 stage per entry; default `[32, 64]`).
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
    /// Width of the penultimate (feature) layer (default 128).
    #[serde(default = "default_feature_dim")]
    pub feature_dim: usize,
    /// Number of classes (default 10).
    #[serde(default = "default_num_classes")]
    pub num_classes: usize,
    /// GroupNorm groups; must divide every entry of `channels` (default 8).
    #[serde(default = "default_groups")]
    pub groups: usize,
    /// A noise-conditioned classifier p(y | x_σ, σ) for classifier guidance (Dhariwal & Nichol
    /// 2021), trained on x_σ = x₀ + σ·n with ln σ uniform over this range [σ_min, σ_max]: it sees
    /// x_σ/√(1 + σ²) and an extra input channel holding ¼ ln σ ([`Classifier::forward_at`]).
    /// `None` (omitted): a classifier of clean images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_range: Option<[f64; 2]>,
}

impl ClassifierConfig {
    /// Default network for `in_channels × image_size × image_size` images and `num_classes` classes.
    pub fn new(in_channels: usize, image_size: usize, num_classes: usize) -> Self {
        Self {
            in_channels,
            image_size,
            channels: default_channels(),
            feature_dim: default_feature_dim(),
            num_classes,
            groups: default_groups(),
            noise_range: None,
        }
    }

    /// Check the hyper-parameters; the error names the offending field.
    pub fn validate(&self) -> Result<(), NnError> {
        let positive = |field: &'static str, v: usize| {
            if v == 0 {
                Err(NnError::invalid(field, "must be >= 1"))
            } else {
                Ok(())
            }
        };
        positive("in_channels", self.in_channels)?;
        positive("image_size", self.image_size)?;
        positive("feature_dim", self.feature_dim)?;
        positive("groups", self.groups)?;
        if self.num_classes < 2 {
            return Err(NnError::invalid("num_classes", format!("must be >= 2, got {}", self.num_classes)));
        }
        if let Some([lo, hi]) = self.noise_range {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo) {
                return Err(NnError::invalid(
                    "noise_range",
                    format!("need 0 < σ_min < σ_max, got [{lo}, {hi}]"),
                ));
            }
        }
        if self.channels.is_empty() {
            return Err(NnError::invalid("channels", "needs at least one stage"));
        }
        if let Some(c) = self.channels.iter().find(|&&c| c == 0 || c % self.groups != 0) {
            return Err(NnError::invalid(
                "channels",
                format!("{c} is not a positive multiple of groups = {}", self.groups),
            ));
        }
        Ok(())
    }

    /// Side length after the stride-2 stages (`s → ⌈s/2⌉` per stage).
    pub fn final_size(&self) -> usize {
        self.channels.iter().fold(self.image_size, |s, _| s.div_ceil(2))
    }

    /// Input width of the feature layer: `channels.last · final_size²`.
    pub fn flat_dim(&self) -> usize {
        self.channels.last().copied().unwrap_or(0) * self.final_size() * self.final_size()
    }

    /// Per-sample input shape `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        [self.in_channels, self.image_size, self.image_size]
    }

    /// `(cin, cout, stride)` of every convolution, stem first.
    fn conv_plan(&self) -> Vec<(usize, usize, usize)> {
        let cin = self.in_channels + usize::from(self.noise_range.is_some());
        let mut plan = vec![(cin, self.channels[0], 1)];
        let mut prev = self.channels[0];
        for &c in &self.channels {
            plan.push((prev, c, 2));
            plan.push((c, c, 1));
            prev = c;
        }
        plan
    }

    /// Name and shape of every parameter, in a stable order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (j, (cin, cout, _)) in self.conv_plan().into_iter().enumerate() {
            out.push((format!("convs.{j}.weight"), vec![cout, cin, 3, 3]));
            out.push((format!("convs.{j}.bias"), vec![cout]));
            out.push((format!("norms.{j}.weight"), vec![cout]));
            out.push((format!("norms.{j}.bias"), vec![cout]));
        }
        out.push(("feature.weight".into(), vec![self.feature_dim, self.flat_dim()]));
        out.push(("feature.bias".into(), vec![self.feature_dim]));
        out.push(("head.weight".into(), vec![self.num_classes, self.feature_dim]));
        out.push(("head.bias".into(), vec![self.num_classes]));
        out
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        self.parameter_shapes().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }

    /// Check `[N, C, H, W]` input dimensions against the configuration.
    pub fn check_input(&self, dims: &[usize]) -> Result<(), NnError> {
        if dims.len() != 4 || dims[1..] != self.input_shape() {
            return Err(NnError::DataShape {
                got: dims.to_vec(),
                reason: format!("the classifier takes images [N, {:?}]", self.input_shape()),
            });
        }
        Ok(())
    }
}

/// PyTorch's default conv/linear initialisation bound `1/√fan_in`.
fn fan_in_init(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

#[derive(Debug, Clone)]
struct ConvNorm {
    weight: Tensor,
    bias: Tensor,
    gamma: Tensor,
    beta: Tensor,
    stride: usize,
}

#[derive(Debug, Clone)]
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn new(vb: VarBuilder, din: usize, dout: usize) -> candle_core::Result<Self> {
        let init = fan_in_init(din);
        Ok(Self {
            weight: vb.get_with_hints((dout, din), "weight", init)?,
            bias: vb.get_with_hints(dout, "bias", init)?,
        })
    }
}

/// The classifier described in the module documentation.
#[derive(Debug, Clone)]
pub struct Classifier {
    config: ClassifierConfig,
    convs: Vec<ConvNorm>,
    groups: usize,
    feature: Dense,
    head: Dense,
}

/// Penultimate features and logits of a batch.
#[derive(Debug, Clone)]
pub struct ClassifierOutput {
    /// `[B, feature_dim]`, after the SiLU.
    pub features: Tensor,
    /// `[B, num_classes]`.
    pub logits: Tensor,
}

impl Classifier {
    /// Build the network, creating or loading its variables through `vb`.
    pub fn new(config: &ClassifierConfig, vb: VarBuilder) -> Result<Self, NnError> {
        config.validate()?;
        let mut convs = Vec::new();
        for (j, (cin, cout, stride)) in config.conv_plan().into_iter().enumerate() {
            let cv = vb.pp("convs").pp(j);
            let nv = vb.pp("norms").pp(j);
            let init = fan_in_init(cin * 9);
            convs.push(ConvNorm {
                weight: cv.get_with_hints((cout, cin, 3, 3), "weight", init)?,
                bias: cv.get_with_hints(cout, "bias", init)?,
                gamma: nv.get_with_hints(cout, "weight", Init::Const(1.0))?,
                beta: nv.get_with_hints(cout, "bias", Init::Const(0.0))?,
                stride,
            });
        }
        Ok(Self {
            config: config.clone(),
            convs,
            groups: config.groups,
            feature: Dense::new(vb.pp("feature"), config.flat_dim(), config.feature_dim)?,
            head: Dense::new(vb.pp("head"), config.feature_dim, config.num_classes)?,
        })
    }

    /// Build from named tensors (e.g. a loaded safetensors file). Every parameter of
    /// [`ClassifierConfig::parameter_shapes`] must be present with its shape, and nothing else.
    pub fn from_tensors(
        config: &ClassifierConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, NnError> {
        config.validate()?;
        let expected = config.parameter_shapes();
        for (name, shape) in &expected {
            match tensors.get(name) {
                None => return Err(NnError::invalid("weights", format!("missing tensor `{name}`"))),
                Some(t) if t.dims() != shape.as_slice() => {
                    return Err(NnError::invalid(
                        "weights",
                        format!("`{name}` has shape {:?}, the configuration needs {shape:?}", t.dims()),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = tensors.keys().find(|k| !expected.iter().any(|(n, _)| n == *k)) {
            return Err(NnError::invalid(
                "weights",
                format!("unexpected tensor `{extra}` (different model?)"),
            ));
        }
        let mut f32_tensors = HashMap::with_capacity(tensors.len());
        for (k, t) in tensors {
            f32_tensors.insert(k, t.to_dtype(DType::F32)?.to_device(device)?);
        }
        Self::new(config, VarBuilder::from_tensors(f32_tensors, DType::F32, device))
    }

    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// Features and logits of images `[B, C, H, W]` (values in [−1, 1]).
    pub fn forward(&self, x: &Tensor) -> Result<ClassifierOutput, NnError> {
        if self.config.noise_range.is_some() {
            return Err(NnError::invalid(
                "classifier",
                "a noise-conditioned classifier needs the noise level (forward_at); it is no feature network",
            ));
        }
        self.config.check_input(x.dims())?;
        self.body(x.to_dtype(DType::F32)?)
    }

    /// Features and logits of noisy images x_σ `[B, C, H, W]` at per-sample noise levels `sigma`
    /// (a noise-conditioned classifier): the network sees x_σ/√(1 + σ²) and a channel of ¼ ln σ.
    /// Differentiable in `x` (classifier guidance takes ∇ₓ log p(y | x, σ)).
    pub fn forward_at(&self, x: &Tensor, sigma: &[f64]) -> Result<ClassifierOutput, NnError> {
        if self.config.noise_range.is_none() {
            return Err(NnError::invalid("classifier", "not noise-conditioned: use forward"));
        }
        self.config.check_input(x.dims())?;
        let (b, _, h, w) = x.dims4()?;
        if sigma.len() != b || sigma.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(NnError::invalid("sigma", format!("need {b} finite noise levels > 0")));
        }
        let dev = x.device();
        let scale: Vec<f32> = sigma.iter().map(|s| (1.0 / (1.0 + s * s).sqrt()) as f32).collect();
        let level: Vec<f32> = sigma.iter().map(|s| (0.25 * s.ln()) as f32).collect();
        let x = x.to_dtype(DType::F32)?.broadcast_mul(&Tensor::from_vec(scale, (b, 1, 1, 1), dev)?)?;
        let chan = Tensor::from_vec(level, (b, 1, 1, 1), dev)?.broadcast_as((b, 1, h, w))?.contiguous()?;
        self.body(Tensor::cat(&[&x, &chan], 1)?)
    }

    fn body(&self, x: Tensor) -> Result<ClassifierOutput, NnError> {
        let mut h = x;
        for c in &self.convs {
            h = conv2d(&h, &c.weight, Some(&c.bias), c.stride, 1)?;
            h = group_norm(&h, &c.gamma, &c.beta, self.groups, GN_EPS, true)?;
        }
        let b = h.dim(0)?;
        let flat = h.reshape((b, self.config.flat_dim()))?;
        let features = silu(&linear(&flat, &self.feature.weight, Some(&self.feature.bias))?)?;
        let logits = linear(&features, &self.head.weight, Some(&self.head.bias))?;
        Ok(ClassifierOutput { features, logits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    #[test]
    fn shapes_parameters_and_errors() {
        let cfg = ClassifierConfig { channels: vec![8, 16], ..ClassifierConfig::new(1, 28, 10) };
        assert_eq!(cfg.final_size(), 7);
        assert_eq!(ClassifierConfig::new(1, 8, 10).final_size(), 2);
        let vm = VarMap::new();
        let net = Classifier::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        // hand count: stem 1→8, stage 8→8 (s2) 8→8, stage 8→16 (s2) 16→16, each conv + GN affine;
        // feature 16·7·7 → 128, head 128 → 10
        let conv = |i: usize, o: usize| o * i * 9 + o + 2 * o;
        let hand = conv(1, 8)
            + conv(8, 8)
            + conv(8, 8)
            + conv(8, 16)
            + conv(16, 16)
            + (784 * 128 + 128)
            + (128 * 10 + 10);
        assert_eq!(cfg.param_count(), hand);
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n, hand);
        let x = Tensor::zeros((3, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        let out = net.forward(&x).unwrap();
        assert_eq!(out.features.dims(), &[3, 128]);
        assert_eq!(out.logits.dims(), &[3, 10]);
        let bad = Tensor::zeros((3, 1, 27, 28), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(net.forward(&bad), Err(NnError::DataShape { .. })));
        // round trip through named tensors gives the same outputs; wrong files are rejected
        let x = Tensor::randn(0f32, 1.0, (2, 1, 28, 28), &Device::Cpu).unwrap();
        let tensors: HashMap<String, Tensor> =
            vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        let loaded = Classifier::from_tensors(&cfg, tensors.clone(), &Device::Cpu).unwrap();
        let (a, b) = (net.forward(&x).unwrap().logits, loaded.forward(&x).unwrap().logits);
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
        let mut missing = tensors.clone();
        missing.remove("head.bias");
        assert!(Classifier::from_tensors(&cfg, missing, &Device::Cpu).is_err());
        let mut extra = tensors;
        extra.insert("extra".into(), Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap());
        assert!(Classifier::from_tensors(&cfg, extra, &Device::Cpu).is_err());
    }

    #[test]
    fn invalid_configs() {
        let base = ClassifierConfig::new(1, 8, 10);
        assert!(base.validate().is_ok());
        for bad in [
            ClassifierConfig { channels: vec![12], ..base.clone() },
            ClassifierConfig { channels: vec![], ..base.clone() },
            ClassifierConfig { num_classes: 1, ..base.clone() },
            ClassifierConfig { image_size: 0, ..base.clone() },
            ClassifierConfig { groups: 0, ..base.clone() },
        ] {
            assert!(matches!(bad.validate(), Err(NnError::InvalidConfig { .. })), "{bad:?}");
        }
        let toml_like = serde_json::json!({"in_channels": 1, "image_size": 28});
        let cfg: ClassifierConfig = serde_json::from_value(toml_like).unwrap();
        assert_eq!(cfg, ClassifierConfig::new(1, 28, 10));
    }
}
