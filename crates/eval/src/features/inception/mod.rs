//! Inception-v3 exactly as used by pytorch-fid (`pytorch_fid/inception.py`, `InceptionV3`
//! with `use_fid_inception=True`): bilinear resize to 299×299 (`align_corners=False`), the
//! [−1, 1] input range, torchvision's Inception3 stem, the FID-patched Mixed blocks
//! (`FIDInceptionA/C` and `FIDInceptionE_1` average-pool without padded zeros,
//! `FIDInceptionE_2` max-pool) and global average pooling to the 2048-d pool3 features.
//! Logits for the Inception Score come from the 1008-way `fc` layer when present.
//!
//! # Weights
//! Tensors are read from a safetensors file keyed by the state-dict names of pytorch-fid's
//! FID Inception (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_var`, …,
//! `fc.weight`, `fc.bias`), i.e. the keys of the official `pt_inception-2015-12-05-6726825d.pth`.
//! Convert it once with
//!
//! ```text
//! python -c "import torch, safetensors.torch as st; sd = torch.load('pt_inception-2015-12-05-6726825d.pth', map_location='cpu'); st.save_file({k: v.contiguous() for k, v in sd.items()}, 'inception.safetensors')"
//! ```
//!
//! BatchNorm (eps 1e-3) is folded into the convolutions at load time.

mod blocks;
pub mod spec;
pub mod synthetic;

use super::error::{FeatureError, Result};
use super::FeatureExtractor;
use blocks::{
    global_avg_pool, max_pool_3s2, resize_bilinear, BlockA, BlockB, BlockC, BlockD, BlockE, ConvBn,
    ConvStore, EPool,
};
use candle_core::{DType, Device, Tensor};
use spec::{conv_specs, parameter_specs, ParamRole, BN_EPS, FEATURE_DIM, INPUT_SIZE};
use std::collections::HashMap;
use std::path::Path;

/// pytorch-fid's Inception-v3 (pool3 features, optional fc logits).
pub struct InceptionV3Fid {
    stem0: [ConvBn; 3],
    stem1: [ConvBn; 2],
    mixed_5: [BlockA; 3],
    mixed_6a: BlockB,
    mixed_6: [BlockC; 4],
    mixed_7a: BlockD,
    mixed_7b: BlockE,
    mixed_7c: BlockE,
    /// `(weightᵀ [2048, 1008], bias [1, 1008])`.
    fc: Option<(Tensor, Tensor)>,
    fingerprint: u64,
    device: Device,
}

/// 64-bit FNV-1a hash.
pub(crate) fn fnv1a64(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

impl InceptionV3Fid {
    /// Load from a safetensors file with pytorch-fid state-dict names (see module docs).
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| FeatureError::Weights { path: path.to_path_buf(), reason: e.to_string() })?;
        Self::from_tensors(&tensors, device).map_err(|e| match e {
            FeatureError::Weights { reason, .. } => {
                FeatureError::Weights { path: path.to_path_buf(), reason }
            }
            other => other,
        })
    }

    /// Build from a state dict already in memory (names as in the safetensors file).
    pub fn from_tensors(tensors: &HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let bad = |reason: String| FeatureError::Weights { path: "<memory>".into(), reason };
        let mut values: HashMap<String, Vec<f32>> = HashMap::new();
        let mut fingerprint = FNV_OFFSET;
        let mut fc_present = 0;
        for (name, shape, role) in parameter_specs() {
            let is_fc = matches!(role, ParamRole::FcWeight | ParamRole::FcBias);
            let Some(t) = tensors.get(&name) else {
                if is_fc {
                    continue;
                }
                return Err(bad(format!("missing tensor `{name}`")));
            };
            if t.dims() != shape.as_slice() {
                return Err(bad(format!("tensor `{name}` has shape {:?}, expected {shape:?}", t.dims())));
            }
            let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(bad(format!("tensor `{name}` holds non-finite values")));
            }
            fingerprint = fnv1a64(name.as_bytes(), fingerprint);
            for x in &v {
                fingerprint = fnv1a64(&x.to_le_bytes(), fingerprint);
            }
            fc_present += usize::from(is_fc);
            values.insert(name, v);
        }
        if fc_present == 1 {
            return Err(bad("only one of `fc.weight` / `fc.bias` is present".into()));
        }
        let mut store = ConvStore(HashMap::new());
        for c in conv_specs() {
            let get = |suffix: &str| &values[&format!("{}.{suffix}", c.name)];
            let (w, gamma, beta) = (get("conv.weight"), get("bn.weight"), get("bn.bias"));
            let (mean, var) = (get("bn.running_mean"), get("bn.running_var"));
            let per_out = w.len() / c.out_channels;
            let mut wf = Vec::with_capacity(w.len());
            let mut bf = Vec::with_capacity(c.out_channels);
            for o in 0..c.out_channels {
                let denom = var[o] as f64 + BN_EPS;
                if denom <= 0.0 {
                    return Err(bad(format!("{}.bn.running_var[{o}] = {} is below -eps", c.name, var[o])));
                }
                let scale = gamma[o] as f64 / denom.sqrt();
                wf.extend(w[o * per_out..(o + 1) * per_out].iter().map(|&x| (x as f64 * scale) as f32));
                bf.push((beta[o] as f64 - mean[o] as f64 * scale) as f32);
            }
            let weight =
                Tensor::from_vec(wf, (c.out_channels, c.in_channels, c.kernel.0, c.kernel.1), device)?;
            let bias = Tensor::from_vec(bf, (1, c.out_channels, 1, 1), device)?;
            store.0.insert(c.name.clone(), ConvBn { weight, bias, stride: c.stride, padding: c.padding });
        }
        let fc = if fc_present == 2 {
            let classes = spec::NUM_CLASSES;
            let w = Tensor::from_vec(values["fc.weight"].clone(), (classes, FEATURE_DIM), device)?;
            let b = Tensor::from_vec(values["fc.bias"].clone(), (1, classes), device)?;
            Some((w.t()?.contiguous()?, b))
        } else {
            None
        };
        let s = &mut store;
        Ok(Self {
            stem0: [s.take("Conv2d_1a_3x3")?, s.take("Conv2d_2a_3x3")?, s.take("Conv2d_2b_3x3")?],
            stem1: [s.take("Conv2d_3b_1x1")?, s.take("Conv2d_4a_3x3")?],
            mixed_5: [BlockA::new(s, "Mixed_5b")?, BlockA::new(s, "Mixed_5c")?, BlockA::new(s, "Mixed_5d")?],
            mixed_6a: BlockB::new(s, "Mixed_6a")?,
            mixed_6: [
                BlockC::new(s, "Mixed_6b")?,
                BlockC::new(s, "Mixed_6c")?,
                BlockC::new(s, "Mixed_6d")?,
                BlockC::new(s, "Mixed_6e")?,
            ],
            mixed_7a: BlockD::new(s, "Mixed_7a")?,
            mixed_7b: BlockE::new(s, "Mixed_7b", EPool::AvgExcludePad)?,
            mixed_7c: BlockE::new(s, "Mixed_7c", EPool::Max)?,
            fc,
            fingerprint,
            device: device.clone(),
        })
    }

    /// Whether the weights include the fc layer (needed for logits / Inception Score).
    pub fn has_logits(&self) -> bool {
        self.fc.is_some()
    }

    /// FNV-1a hash of the parameter names and f32 values, part of [`FeatureExtractor::id`].
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Validate `[N, C, H, W]` (C = 1 or 3), move to the model device, f32, 3 channels,
    /// resized to 299×299.
    fn prepare(&self, images: &Tensor) -> Result<Tensor> {
        let dims = images.dims();
        if dims.len() != 4 || !(dims[1] == 1 || dims[1] == 3) || dims[2] == 0 || dims[3] == 0 {
            return Err(FeatureError::Shape(format!(
                "Inception expects [N, 1|3, H, W] images, got {dims:?}"
            )));
        }
        let mut x = images.to_device(&self.device)?.to_dtype(DType::F32)?;
        if dims[1] == 1 {
            x = x.repeat((1, 3, 1, 1))?;
        }
        // pytorch-fid resizes (0, 1) inputs and then maps them to 2x − 1; bilinear weights sum
        // to 1, so resizing the [−1, 1] images directly is the same map.
        resize_bilinear(&x, INPUT_SIZE, &self.device)
    }

    /// Outputs of pytorch-fid's four blocks: `[N, 64, 73, 73]` (first max pool),
    /// `[N, 192, 35, 35]` (second max pool), `[N, 768, 17, 17]` (pre-aux) and the
    /// `[N, 2048]` pool3 features.
    pub fn block_outputs(&self, images: &Tensor) -> Result<[Tensor; 4]> {
        let x = self.prepare(images)?;
        let mut h = x;
        for l in &self.stem0 {
            h = l.forward(&h)?;
        }
        let b0 = max_pool_3s2(&h)?;
        let mut h = b0.clone();
        for l in &self.stem1 {
            h = l.forward(&h)?;
        }
        let b1 = max_pool_3s2(&h)?;
        let mut h = b1.clone();
        for b in &self.mixed_5 {
            h = b.forward(&h)?;
        }
        h = self.mixed_6a.forward(&h)?;
        for b in &self.mixed_6 {
            h = b.forward(&h)?;
        }
        let b2 = h.clone();
        h = self.mixed_7a.forward(&h)?;
        h = self.mixed_7b.forward(&h)?;
        h = self.mixed_7c.forward(&h)?;
        let b3 = global_avg_pool(&h)?;
        Ok([b0, b1, b2, b3])
    }

    fn pool3(&self, images: &Tensor) -> Result<Tensor> {
        let [_, _, _, f] = self.block_outputs(images)?;
        Ok(f)
    }

    /// Pool3 features and fc logits in one pass (logits `None` without fc weights).
    pub fn features_and_logits(&self, images: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let f = self.pool3(images)?;
        let logits = match &self.fc {
            Some((wt, b)) => Some(f.matmul(wt)?.broadcast_add(b)?),
            None => None,
        };
        Ok((f, logits))
    }
}

impl FeatureExtractor for InceptionV3Fid {
    fn id(&self) -> String {
        format!("inception-v3-fid/pool3/{:016x}", self.fingerprint)
    }

    fn dim(&self) -> usize {
        FEATURE_DIM
    }

    fn features(&self, images: &Tensor) -> Result<Tensor> {
        self.pool3(images)
    }

    fn logits(&self, images: &Tensor) -> Option<Result<Tensor>> {
        let (wt, b) = self.fc.as_ref()?;
        Some(self.pool3(images).and_then(|f| Ok(f.matmul(wt)?.broadcast_add(b)?)))
    }
}
