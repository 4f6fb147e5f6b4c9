//! Time-conditioned residual MLP ε-model for low-dimensional data (2-D toy sets, small vectors,
//! small images such as the 8×8 digits, which it sees as flat vectors).
//!
//! ```text
//! e    = W_t2·SiLU(W_t1·sinusoidal(t) + b_t1) + b_t2                 time embedding, [B, hidden]
//! h_0  = W_in·[x, e] + b_in                                           [B, hidden]
//! h_l  = h_{l−1} + W_l·SiLU(h_{l−1}) + b_l,  l = 1 … layers           residual blocks
//! out  = W_out·SiLU(h_L) + b_out                                      [B, data_dim·(1 + learn_sigma)]
//! ```
//! With `learn_sigma` the output has two halves (iDDPM, seed 002): the prediction `[:, :d]` and
//! the variance interpolation v `[:, d:]` (see `rediffuse_core::vlb::VarianceMode::LearnedRange`).
//! With a `sample_shape` (e.g. `[1, 8, 8]`) it takes `[B, ..sample_shape]`, flattens it to
//! `[B, d]` and returns `[B, ..sample_shape]` (learned variance: `[B, 2C, H, W]`, the channel
//! halves being the two output halves), so image samplers, grids and metrics apply unchanged.
//! With `num_classes` = K the time embedding gets a learned class embedding added,
//! e ← e + E[y] with E `[K + 1, hidden]` (row K: the null label of classifier-free guidance).
//! Parameter names (stable, used in checkpoints): `time_embed.linear_1.{weight,bias}`,
//! `time_embed.linear_2.*`, `class_embedding.weight` (class-conditional only), `input.*`,
//! `blocks.{l}.*` (l = 0 … layers−1), `output.*`.

use crate::embedding::SinusoidalEmbedding;
use crate::error::NnError;
use crate::net::DiffusionNet;
use crate::ops::{linear, silu};
use candle_core::{bail, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

fn default_hidden() -> usize {
    128
}
fn default_layers() -> usize {
    3
}
fn default_time_embed_dim() -> usize {
    64
}

/// Hyper-parameters of [`Mlp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Dimension of one data sample (2 for 2-D toy sets).
    pub data_dim: usize,
    /// Width of the hidden layers (default 128).
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// Number of residual blocks (default 3).
    #[serde(default = "default_layers")]
    pub layers: usize,
    /// Dimension of the sinusoidal timestep embedding (default 64, >= 2).
    #[serde(default = "default_time_embed_dim")]
    pub time_embed_dim: usize,
    /// Output `2 * data_dim` values: the prediction and iDDPM's variance interpolation v
    /// (default false; omitted from configs when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learn_sigma: bool,
    /// Shape of one sample when samples are not vectors (images `[C, H, W]`); its product is
    /// `data_dim`. `None` (omitted from configs): samples are `[data_dim]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_shape: Option<Vec<usize>>,
    /// Class-conditional on K classes (labels 0..K, K = null label); `None` (omitted): unconditional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
}

impl MlpConfig {
    /// Defaults for `data_dim`-dimensional data.
    pub fn new(data_dim: usize) -> Self {
        Self {
            data_dim,
            hidden: default_hidden(),
            layers: default_layers(),
            time_embed_dim: default_time_embed_dim(),
            learn_sigma: false,
            sample_shape: None,
            num_classes: None,
        }
    }

    /// Defaults for samples of shape `shape` (e.g. images `[C, H, W]`), seen as flat vectors.
    pub fn for_shape(shape: &[usize]) -> Self {
        let d = shape.iter().product();
        match shape {
            [_] => Self::new(d),
            _ => Self { sample_shape: Some(shape.to_vec()), ..Self::new(d) },
        }
    }

    /// Shape of one data sample: `sample_shape`, or `[data_dim]`.
    pub fn sample_shape(&self) -> Vec<usize> {
        self.sample_shape.clone().unwrap_or_else(|| vec![self.data_dim])
    }

    /// Shape of one output: the sample shape, its first axis doubled with `learn_sigma`.
    fn output_shape(&self) -> Vec<usize> {
        let mut s = self.sample_shape();
        s[0] *= if self.learn_sigma { 2 } else { 1 };
        s
    }

    /// Width of the output: `data_dim`, doubled with `learn_sigma`.
    pub fn out_dim(&self) -> usize {
        self.data_dim * if self.learn_sigma { 2 } else { 1 }
    }

    pub fn validate(&self) -> std::result::Result<(), NnError> {
        if self.data_dim == 0 {
            return Err(NnError::invalid("data_dim", "must be >= 1"));
        }
        if self.hidden == 0 {
            return Err(NnError::invalid("hidden", "must be >= 1"));
        }
        if let Some(shape) = &self.sample_shape {
            if shape.is_empty() || shape.iter().product::<usize>() != self.data_dim {
                return Err(NnError::invalid(
                    "sample_shape",
                    format!("{shape:?} must be non-empty with product data_dim = {}", self.data_dim),
                ));
            }
        }
        if self.num_classes == Some(0) {
            return Err(NnError::invalid("num_classes", "must be >= 1 (or absent for an unconditional MLP)"));
        }
        if self.time_embed_dim < 2 {
            return Err(NnError::invalid(
                "time_embed_dim",
                format!("must be >= 2, got {}", self.time_embed_dim),
            ));
        }
        Ok(())
    }

    /// Number of trainable scalars:
    /// `e·h + h + h² + h` (time MLP) `+ (d + h)·h + h` (input) `+ L·(h² + h)` (blocks) `+ h·o + o`
    /// (output, o = [`MlpConfig::out_dim`]) `+ (K + 1)·h` (class embedding, K classes).
    pub fn param_count(&self) -> usize {
        let (d, h, l, e, o) = (self.data_dim, self.hidden, self.layers, self.time_embed_dim, self.out_dim());
        let classes = self.num_classes.map_or(0, |k| (k + 1) * h);
        e * h + h + h * h + h + (d + h) * h + h + l * (h * h + h) + h * o + o + classes
    }

    /// Data samples must have the shape [`MlpConfig::sample_shape`].
    pub fn check_data_shape(&self, sample_shape: &[usize]) -> std::result::Result<(), NnError> {
        let want = self.sample_shape();
        if sample_shape != want.as_slice() {
            return Err(NnError::DataShape {
                got: sample_shape.to_vec(),
                reason: format!("the MLP expects samples of shape {want:?}"),
            });
        }
        Ok(())
    }
}

/// A dense layer's parameters, `weight` `[out, in]`, `bias` `[out]`.
#[derive(Debug, Clone)]
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    /// PyTorch's default `nn.Linear` initialisation: weight and bias ~ U(−1/√in, 1/√in).
    fn new(vb: VarBuilder, d_in: usize, d_out: usize) -> Result<Self> {
        let bound = 1.0 / (d_in as f64).sqrt();
        let init = Init::Uniform { lo: -bound, up: bound };
        Ok(Self {
            weight: vb.get_with_hints((d_out, d_in), "weight", init)?,
            bias: vb.get_with_hints(d_out, "bias", init)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.weight, Some(&self.bias))
    }
}

/// The residual MLP described in the module docs.
#[derive(Debug, Clone)]
pub struct Mlp {
    config: MlpConfig,
    embed: SinusoidalEmbedding,
    time_1: Dense,
    time_2: Dense,
    input: Dense,
    blocks: Vec<Dense>,
    output: Dense,
    class_embedding: Option<Tensor>,
}

impl Mlp {
    pub fn new(config: &MlpConfig, vb: VarBuilder) -> Result<Self> {
        config.validate().map_err(candle_core::Error::wrap)?;
        let (d, h) = (config.data_dim, config.hidden);
        let te = vb.pp("time_embed");
        let blocks_vb = vb.pp("blocks");
        Ok(Self {
            config: config.clone(),
            embed: SinusoidalEmbedding::new(config.time_embed_dim, vb.device())?,
            time_1: Dense::new(te.pp("linear_1"), config.time_embed_dim, h)?,
            time_2: Dense::new(te.pp("linear_2"), h, h)?,
            input: Dense::new(vb.pp("input"), d + h, h)?,
            blocks: (0..config.layers).map(|l| Dense::new(blocks_vb.pp(l), h, h)).collect::<Result<_>>()?,
            output: Dense::new(vb.pp("output"), h, config.out_dim())?,
            class_embedding: match config.num_classes {
                Some(k) => Some(vb.pp("class_embedding").get_with_hints(
                    (k + 1, h),
                    "weight",
                    Init::Randn { mean: 0.0, stdev: 1.0 },
                )?),
                None => None,
            },
        })
    }

    pub fn config(&self) -> &MlpConfig {
        &self.config
    }
}

impl DiffusionNet for Mlp {
    fn forward(&self, x_t: &Tensor, t: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_with_labels(x_t, t, None, train)
    }

    fn num_classes(&self) -> Option<usize> {
        self.config.num_classes
    }

    fn forward_with_labels(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
        _train: bool,
    ) -> Result<Tensor> {
        let shape = self.config.sample_shape();
        let b = match x_t.dims() {
            [b, rest @ ..] if rest == shape.as_slice() => *b,
            other => bail!("Mlp expects x_t of shape [B, {}], got {other:?}", fmt_shape(&shape)),
        };
        if t.dims() != [b] {
            bail!("Mlp expects t of shape [{b}], got {:?}", t.dims());
        }
        let mut e = self.time_2.forward(&silu(&self.time_1.forward(&self.embed.forward(t)?)?)?)?;
        match (&self.class_embedding, labels) {
            (Some(table), labels) => {
                let idx = crate::net::label_indices(labels, table.dim(0)? - 1, b, x_t.device())?;
                e = (e + table.index_select(&idx, 0)?)?;
            }
            (None, Some(_)) => bail!("labels given to an unconditional MLP (num_classes is None)"),
            (None, None) => {}
        }
        let x = x_t.reshape((b, self.config.data_dim))?;
        let mut h = self.input.forward(&Tensor::cat(&[&x, &e], 1)?)?;
        for blk in &self.blocks {
            h = (&h + blk.forward(&silu(&h)?)?)?;
        }
        let out = self.output.forward(&silu(&h)?)?;
        match &self.config.sample_shape {
            None => Ok(out),
            Some(_) => out.reshape([vec![b], self.config.output_shape()].concat()),
        }
    }
}

fn fmt_shape(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn build(cfg: &MlpConfig) -> (VarMap, Mlp) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let m = Mlp::new(cfg, vb).unwrap();
        (vm, m)
    }

    #[test]
    fn shapes_and_param_count() {
        let cfg = MlpConfig {
            data_dim: 3,
            hidden: 16,
            layers: 2,
            time_embed_dim: 8,
            learn_sigma: false,
            sample_shape: None,
            num_classes: None,
        };
        let (vm, m) = build(&cfg);
        // hand count: time 8·16+16 + 16·16+16, input 19·16+16, blocks 2·(256+16), output 16·3+3
        let hand = (128 + 16) + (256 + 16) + (19 * 16 + 16) + 2 * (256 + 16) + (48 + 3);
        assert_eq!(cfg.param_count(), hand);
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n, hand);
        let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert!(names.contains(&"blocks.1.weight".to_string()));
        assert!(names.contains(&"time_embed.linear_2.bias".to_string()));
        let x = Tensor::zeros((5, 3), DType::F32, &Device::Cpu).unwrap();
        let t = Tensor::new(&[0f32, 1., 2., 3., 999.], &Device::Cpu).unwrap();
        assert_eq!(m.forward(&x, &t, true).unwrap().dims(), &[5, 3]);
        // wrong shapes are errors, not panics
        assert!(m.forward(&Tensor::zeros((5, 2), DType::F32, &Device::Cpu).unwrap(), &t, false).is_err());
        assert!(m.forward(&x, &t.narrow(0, 0, 4).unwrap(), false).is_err());

        // learn_sigma doubles the output layer only: 16·3 + 3 more parameters, output [5, 6]
        let ls = MlpConfig { learn_sigma: true, ..cfg.clone() };
        assert_eq!(ls.param_count(), hand + 16 * 3 + 3);
        let (vm, m) = build(&ls);
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n, ls.param_count());
        assert_eq!(m.forward(&x, &t, false).unwrap().dims(), &[5, 6]);
        // the data shape stays [data_dim]; the flag is omitted from configs when false
        assert!(ls.check_data_shape(&[3]).is_ok());
        assert!(!serde_json::to_string(&cfg).unwrap().contains("learn_sigma"));
        let back: MlpConfig = serde_json::from_str(&serde_json::to_string(&ls).unwrap()).unwrap();
        assert_eq!(back, ls);
    }

    /// With a sample shape the MLP computes exactly the flat network on the flattened images and
    /// returns image-shaped outputs; learned variance doubles the channels, halves in order.
    #[test]
    fn image_shaped_samples_are_flattened() {
        let dev = Device::Cpu;
        for learn_sigma in [false, true] {
            let img = MlpConfig { hidden: 16, learn_sigma, ..MlpConfig::for_shape(&[2, 3, 4]) };
            assert_eq!((img.data_dim, img.sample_shape()), (24, vec![2, 3, 4]));
            let flat = MlpConfig { sample_shape: None, ..img.clone() };
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
            let m_img = Mlp::new(&img, vb.clone()).unwrap();
            let m_flat = Mlp::new(&flat, vb).unwrap(); // same variables
            let x = Tensor::randn(0f32, 1., (5, 2, 3, 4), &dev).unwrap();
            let t = Tensor::new(&[0f32, 3., 10., 500., 999.], &dev).unwrap();
            let y = m_img.forward(&x, &t, false).unwrap();
            let c = if learn_sigma { 4 } else { 2 };
            assert_eq!(y.dims(), &[5, c, 3, 4]);
            let y_flat = m_flat.forward(&x.reshape((5, 24)).unwrap(), &t, false).unwrap();
            let diff = (y.reshape((5, 24 * c / 2)).unwrap() - y_flat).unwrap().abs().unwrap();
            assert_eq!(diff.max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
            assert!(img.check_data_shape(&[2, 3, 4]).is_ok());
            assert!(img.check_data_shape(&[24]).is_err());
            assert!(m_img.forward(&x.reshape((5, 24)).unwrap(), &t, false).is_err());
            let back: MlpConfig = serde_json::from_str(&serde_json::to_string(&img).unwrap()).unwrap();
            assert_eq!(back, img);
        }
        assert_eq!(MlpConfig::for_shape(&[7]), MlpConfig::new(7));
        let bad = MlpConfig { sample_shape: Some(vec![1, 8, 7]), ..MlpConfig::new(64) };
        assert!(matches!(bad.validate(), Err(NnError::InvalidConfig { field: "sample_shape", .. })));
    }

    /// Every parameter receives a non-zero gradient from a squared-error loss.
    #[test]
    fn gradients_reach_every_parameter() {
        let cfg = MlpConfig {
            data_dim: 2,
            hidden: 32,
            layers: 3,
            time_embed_dim: 16,
            learn_sigma: false,
            sample_shape: None,
            num_classes: None,
        };
        let (vm, m) = build(&cfg);
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (64, 2), &dev).unwrap();
        let t =
            Tensor::arange(0u32, 64, &dev).unwrap().to_dtype(DType::F32).unwrap().affine(15.0, 0.0).unwrap();
        let target = Tensor::randn(0f32, 1., (64, 2), &dev).unwrap();
        let loss = (m.forward(&x, &t, true).unwrap() - target).unwrap().sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        for (name, var) in data.iter() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no grad for {name}"));
            let n = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(n > 0.0 && n.is_finite(), "{name}: |g|² = {n}");
        }
    }

    #[test]
    fn bad_configs_are_errors() {
        for (cfg, field) in [
            (MlpConfig { data_dim: 0, ..MlpConfig::new(2) }, "data_dim"),
            (MlpConfig { hidden: 0, ..MlpConfig::new(2) }, "hidden"),
            (MlpConfig { time_embed_dim: 1, ..MlpConfig::new(2) }, "time_embed_dim"),
        ] {
            match cfg.validate() {
                Err(NnError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected error for {field}, got {other:?}"),
            }
        }
        assert!(MlpConfig::new(2).check_data_shape(&[3]).is_err());
        assert!(MlpConfig::new(2).check_data_shape(&[2]).is_ok());
    }

    /// A class-conditional MLP: labels change the output, `None` is the null label (index K),
    /// the parameter count includes the (K + 1)·h table, and bad labels are errors.
    #[test]
    fn class_conditional_mlp() {
        let cfg = MlpConfig { hidden: 16, num_classes: Some(3), ..MlpConfig::new(2) };
        let (vm, m) = build(&cfg);
        let n_params: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n_params, cfg.param_count());
        assert_eq!(m.num_classes(), Some(3));
        let dev = Device::Cpu;
        let x = Tensor::new(&[[0.5f32, -1.0], [0.5, -1.0]], &dev).unwrap();
        let t = Tensor::new(&[3f32, 3.0], &dev).unwrap();
        let out = |y: Option<[u32; 2]>| -> Vec<Vec<f32>> {
            let y = y.map(|y| Tensor::new(&y, &dev).unwrap());
            m.forward_with_labels(&x, &t, y.as_ref(), false).unwrap().to_vec2().unwrap()
        };
        let a = out(Some([0, 2]));
        assert_ne!(a[0], a[1], "labels must change the output");
        assert_eq!(out(None), out(Some([3, 3])), "no labels = the null label");
        assert_eq!(m.forward(&x, &t, false).unwrap().to_vec2::<f32>().unwrap(), out(None));
        for bad in [[4u32, 0], [0, 9]] {
            let y = Tensor::new(&bad, &dev).unwrap();
            assert!(m.forward_with_labels(&x, &t, Some(&y), false).is_err());
        }
        let yf = Tensor::new(&[0f32, 1.0], &dev).unwrap();
        assert!(m.forward_with_labels(&x, &t, Some(&yf), false).is_err());
        // an unconditional MLP refuses labels; num_classes = 0 is invalid
        let (_, plain) = build(&MlpConfig { hidden: 16, ..MlpConfig::new(2) });
        let y = Tensor::new(&[0u32, 1], &dev).unwrap();
        assert!(plain.forward_with_labels(&x, &t, Some(&y), false).is_err());
        assert!(MlpConfig { num_classes: Some(0), ..MlpConfig::new(2) }.validate().is_err());
    }
}
