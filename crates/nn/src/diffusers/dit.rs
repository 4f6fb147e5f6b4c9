//! diffusers' `DiTTransformer2DModel` (Peebles & Xie 2023; seed 002 § DiT) in its own
//! parameter layout. It differs from [`crate::Dit`] in that every block has its own
//! timestep/class embedder (`transformer_blocks.{i}.norm1.emb`), the final layer is conditioned
//! on block 0's embedding, the timestep sinusoids are 256-wide with `downscale_freq_shift = 1`,
//! and output tokens are laid out (p, q, c):
//!
//! ```text
//! tokens = pos_embed.proj(x) (a p×p stride-p conv) + sincos_2d                    [B, N, D]
//! block i: c_i = emb_i(t, y) = timestep_embedder(sinusoid_256(t)) + class_embedder[y]
//!          (β₁,γ₁,α₁,β₂,γ₂,α₂) = norm1.linear(SiLU(c_i))
//!          x ← x + α₁·attn1(LN₁e-6(x)(1+γ₁)+β₁),  x ← x + α₂·ff(LN(x)(1+γ₂)+β₂)  (LN ε = norm_eps)
//! final:   (β, γ) = proj_out_1(SiLU(c_0)),  proj_out_2(LN₁e-6(x)(1+γ)+β) → unpatchify
//! ```

use super::{refuse_unknown_keys, unsupported};
use crate::dit::pos_embed::sincos_2d;
use crate::error::NnError;
use crate::net::DiffusionNet;
use crate::ops;
use crate::unet::layers::{Builder, Linear, ParamInit};
use crate::unet::sinusoidal_embedding;
use candle_core::{bail, DType, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Width of the timestep sinusoids (diffusers' `CombinedTimestepLabelEmbeddings`).
const TIME_PROJ_DIM: usize = 256;
/// ε of the adaLN-Zero LayerNorms before attention and before the output.
const ADA_EPS: f64 = 1e-6;

/// The `DiTTransformer2DModel` config keys (diffusers' defaults where a key is absent).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct DitTransformer2dConfig {
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub in_channels: usize,
    pub out_channels: Option<usize>,
    pub num_layers: usize,
    pub dropout: f64,
    pub norm_num_groups: usize,
    pub attention_bias: bool,
    pub sample_size: usize,
    pub patch_size: usize,
    pub activation_fn: String,
    pub num_embeds_ada_norm: Option<usize>,
    pub upcast_attention: bool,
    pub norm_type: String,
    pub norm_elementwise_affine: bool,
    pub norm_eps: f64,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Default for DitTransformer2dConfig {
    fn default() -> Self {
        Self {
            num_attention_heads: 16,
            attention_head_dim: 72,
            in_channels: 4,
            out_channels: None,
            num_layers: 28,
            dropout: 0.0,
            norm_num_groups: 32,
            attention_bias: true,
            sample_size: 32,
            patch_size: 2,
            activation_fn: "gelu-approximate".into(),
            num_embeds_ada_norm: Some(1000),
            upcast_attention: false,
            norm_type: "ada_norm_zero".into(),
            norm_elementwise_affine: false,
            norm_eps: 1e-5,
            extra: BTreeMap::new(),
        }
    }
}

impl DitTransformer2dConfig {
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }
    pub fn grid(&self) -> usize {
        self.sample_size / self.patch_size.max(1)
    }

    pub fn validate(&self) -> std::result::Result<(), NnError> {
        refuse_unknown_keys(&self.extra)?;
        if self.norm_type != "ada_norm_zero" {
            return Err(unsupported("norm_type", &self.norm_type, "only ada_norm_zero"));
        }
        if self.activation_fn != "gelu-approximate" {
            return Err(unsupported("activation_fn", &self.activation_fn, "only gelu-approximate"));
        }
        if self.norm_elementwise_affine {
            return Err(unsupported("norm_elementwise_affine", "true", "only false"));
        }
        if !self.attention_bias {
            return Err(unsupported("attention_bias", "false", "only true"));
        }
        if self.num_embeds_ada_norm.is_none_or(|n| n == 0) {
            return Err(unsupported(
                "num_embeds_ada_norm",
                format!("{:?}", self.num_embeds_ada_norm),
                "a class count is needed",
            ));
        }
        for (f, v) in [
            ("num_attention_heads", self.num_attention_heads),
            ("attention_head_dim", self.attention_head_dim),
            ("in_channels", self.in_channels),
            ("num_layers", self.num_layers),
            ("patch_size", self.patch_size),
        ] {
            if v == 0 {
                return Err(NnError::invalid(f, "must be > 0"));
            }
        }
        if self.sample_size == 0 || !self.sample_size.is_multiple_of(self.patch_size) {
            return Err(NnError::invalid("sample_size", "must be a positive multiple of patch_size"));
        }
        if !self.inner_dim().is_multiple_of(4) {
            return Err(NnError::invalid("attention_head_dim", "heads × head dim must be a multiple of 4"));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(NnError::invalid("norm_eps", "must be > 0"));
        }
        Ok(())
    }
}

fn chunk(m: &Tensor, i: usize, d: usize) -> Result<Tensor> {
    m.narrow(1, i * d, d)?.contiguous()
}

struct Embedder {
    linear_1: Linear,
    linear_2: Linear,
    table: Tensor,
}

impl Embedder {
    fn new(b: &Builder, d: usize, rows: usize) -> Result<Self> {
        let te = b.pp("timestep_embedder");
        Ok(Self {
            linear_1: Linear::new(&te.pp("linear_1"), TIME_PROJ_DIM, d, false)?,
            linear_2: Linear::new(&te.pp("linear_2"), d, d, false)?,
            table: b.pp("class_embedder").pp("embedding_table").get(
                &[rows, d],
                "weight",
                ParamInit::Normal { std: 0.02 },
            )?,
        })
    }

    /// `t_freq` `[B, 256]`, `labels` `[B]` u32 indices.
    fn forward(&self, t_freq: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let t = self.linear_2.forward(&ops::silu(&self.linear_1.forward(t_freq)?)?)?;
        t + self.table.index_select(labels, 0)?
    }
}

struct Block {
    emb: Embedder,
    ada: Linear,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    ff1: Linear,
    ff2: Linear,
}

/// The diffusers DiT. `forward(x_t, t, y)`: `t` the timestep index, `y` class indices in
/// `0..=num_embeds_ada_norm` (the last row, when the table has it, is the null label).
pub struct DitTransformer2d {
    cfg: DitTransformer2dConfig,
    proj: Linear,
    pos: Tensor,
    blocks: Vec<Block>,
    proj_out_1: Linear,
    proj_out_2: Linear,
    rows: usize,
}

impl DitTransformer2d {
    pub fn new(cfg: &DitTransformer2dConfig, vb: VarBuilder) -> std::result::Result<Self, NnError> {
        cfg.validate()?;
        let b = Builder::new(vb);
        let (d, p, c) = (cfg.inner_dim(), cfg.patch_size, cfg.in_channels);
        // the stride-p convolution's weight [D, C, p, p] is a linear map on (c, p, q)-ordered patches
        let pb = b.pp("pos_embed").pp("proj");
        let w =
            pb.get(&[d, c, p, p], "weight", ParamInit::Uniform { bound: 1.0 / ((c * p * p) as f64).sqrt() })?;
        let bias = pb.get(&[d], "bias", ParamInit::Const(0.0))?;
        let proj = Linear::from_tensors(w.reshape((d, c * p * p))?, bias);
        let g = cfg.grid();
        let pos = sincos_2d(d, g, g, DType::F32, w.device())?;
        // a class-dropout-trained table has K + 1 rows (null label K); read what the file has
        let rows = cfg.num_embeds_ada_norm.unwrap_or(0) + 1;
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let bb = b.pp("transformer_blocks").pp(i);
            let attn = bb.pp("attn1");
            let hidden = 4 * d;
            blocks.push(Block {
                emb: Embedder::new(&bb.pp("norm1").pp("emb"), d, rows)?,
                ada: Linear::new(&bb.pp("norm1").pp("linear"), d, 6 * d, false)?,
                to_q: Linear::new(&attn.pp("to_q"), d, d, false)?,
                to_k: Linear::new(&attn.pp("to_k"), d, d, false)?,
                to_v: Linear::new(&attn.pp("to_v"), d, d, false)?,
                to_out: Linear::new(&attn.pp("to_out").pp(0), d, d, false)?,
                ff1: Linear::new(&bb.pp("ff").pp("net").pp(0).pp("proj"), d, hidden, false)?,
                ff2: Linear::new(&bb.pp("ff").pp("net").pp(2), hidden, d, false)?,
            });
        }
        let proj_out_1 = Linear::new(&b.pp("proj_out_1"), d, 2 * d, false)?;
        let proj_out_2 = Linear::new(&b.pp("proj_out_2"), d, p * p * cfg.out_channels(), false)?;
        Ok(Self { cfg: cfg.clone(), proj, pos, blocks, proj_out_1, proj_out_2, rows })
    }

    pub fn config(&self) -> &DitTransformer2dConfig {
        &self.cfg
    }

    /// Output `[B, out_channels, H, W]`.
    pub fn forward_with_labels(&self, x: &Tensor, t: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, c, h, w) = x.dims4()?;
        let s = cfg.sample_size;
        if c != cfg.in_channels || h != s || w != s {
            bail!("DiT expects x of shape [B, {}, {s}, {s}], got {:?}", cfg.in_channels, x.dims());
        }
        if t.dims() != [b] {
            bail!("time tensor must have shape [{b}], got {:?}", t.dims());
        }
        let (d, p, g) = (cfg.inner_dim(), cfg.patch_size, cfg.grid());
        let labels = crate::net::label_indices(labels, self.rows - 1, b, x.device())?;
        let patches = crate::dit::patch::patchify(&ops::f32(x)?, p)?;
        let mut x = self.proj.forward(&patches)?.broadcast_add(&self.pos)?;
        let t_freq = sinusoidal_embedding(t, TIME_PROJ_DIM, true, 1.0)?;
        let mut c0 = None;
        for blk in &self.blocks {
            let ci = blk.emb.forward(&t_freq, &labels)?;
            let m = blk.ada.forward(&ops::silu(&ci)?)?;
            let part = |i| chunk(&m, i, d);
            let hn = ops::adaln_modulate(&x, &part(0)?, &part(1)?, ADA_EPS)?;
            let qkv =
                Tensor::cat(&[blk.to_q.forward(&hn)?, blk.to_k.forward(&hn)?, blk.to_v.forward(&hn)?], 2)?;
            let a = blk.to_out.forward(&ops::attention(&qkv, cfg.num_attention_heads)?)?;
            x = ops::gated_residual(&x, &a, &part(2)?)?;
            let hn = ops::adaln_modulate(&x, &part(3)?, &part(4)?, cfg.norm_eps)?;
            let f = blk.ff2.forward(&ops::gelu(&blk.ff1.forward(&hn)?)?)?;
            x = ops::gated_residual(&x, &f, &part(5)?)?;
            c0.get_or_insert(ci);
        }
        let c0 = c0.ok_or_else(|| candle_core::Error::Msg("DiT without blocks".into()))?;
        let m = self.proj_out_1.forward(&ops::silu(&c0)?)?;
        let hn = ops::adaln_modulate(&x, &chunk(&m, 0, d)?, &chunk(&m, 1, d)?, ADA_EPS)?;
        let y = self.proj_out_2.forward(&hn)?; // [B, N, p·p·C] in (p, q, c) order
        let co = cfg.out_channels();
        y.reshape(vec![b, g, g, p, p, co])?.permute([0, 5, 1, 3, 2, 4])?.contiguous()?.reshape((
            b,
            co,
            g * p,
            g * p,
        ))
    }
}

impl DiffusionNet for DitTransformer2d {
    fn forward(&self, x_t: &Tensor, t: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward_with_labels(x_t, t, None)
    }
    fn forward_with_labels(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
        _train: bool,
    ) -> Result<Tensor> {
        DitTransformer2d::forward_with_labels(self, x_t, t, labels)
    }
    fn num_classes(&self) -> Option<usize> {
        Some(self.rows - 1)
    }
}
