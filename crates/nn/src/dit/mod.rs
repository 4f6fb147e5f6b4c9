//! Diffusion Transformer (DiT; Peebles & Xie 2023; seed 002 § DiT) with adaLN-Zero
//! conditioning, for images `[C, H, W]` (pixel space; no VAE):
//!
//! ```text
//! tokens = patch_embed(patchify_p(x_t)) + pos_2d                  [B, N, D], N = (H/p)²
//! c      = linear_2(SiLU(linear_1(sinusoidal(t)))) [+ E[y]]       [B, D]
//! blocks: (β₁,γ₁,α₁,β₂,γ₂,α₂) = adaln_modulation(SiLU(c))          zero-initialised
//!         x ← x + α₁·Attn(LN(x)(1+γ₁)+β₁),  x ← x + α₂·MLP(LN(x)(1+γ₂)+β₂)
//! final:  (β, γ) = adaln_modulation(SiLU(c)),  linear(LN(x)(1+γ)+β)  both zero-initialised
//! out    = unpatchify(…)                                           [B, C·(1 + learn_sigma), H, W]
//! ```
//! LayerNorms have no affine parameters; the MLP is `fc2(GELU_tanh(fc1))`; the positional
//! embedding is fixed (not a parameter). At initialisation every block is the identity and the
//! output is exactly zero. With `learn_sigma` the first C output channels are the prediction
//! and the next C iDDPM's variance interpolation v, as for the U-Net. With `num_classes` = K the
//! conditioning gets a class embedding E `[K + 1, D]` added (row K: the null label).
//!
//! Parameter names (stable, used in checkpoints; U-Net style for the shared parts):
//! `time_embedding.linear_{1,2}.{weight,bias}`, `class_embedding.weight` (class-conditional
//! only), `patch_embed.{weight,bias}` (weight `[D, C·p·p]`, a stride-p convolution's weight
//! flattened), `blocks.{i}.adaln_modulation.*` (`[6D, D]`, chunks in the order β₁ γ₁ α₁ β₂ γ₂
//! α₂), `blocks.{i}.attn.qkv.*` (`[3D, D]`), `blocks.{i}.attn.proj.*`, `blocks.{i}.mlp.fc1.*`,
//! `blocks.{i}.mlp.fc2.*`, `final_layer.adaln_modulation.*` (`[2D, D]`: β, γ),
//! `final_layer.linear.*` (`[p·p·C_out, D]`).

mod attention;
mod block;
mod config;
pub mod patch;
pub mod pos_embed;

pub use config::DitConfig;

use crate::embedding::SinusoidalEmbedding;
use crate::error::NnError;
use crate::net::DiffusionNet;
use crate::unet::layers::{self, Builder, Linear};
use crate::unet::{ParamInit, ParamSpec};
use block::{DitBlock, FinalLayer};
use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

/// Standard deviation of the class-embedding table's initialisation (DiT's value).
const CLASS_EMBED_STD: f64 = 0.02;

/// The Diffusion Transformer. Build with [`Dit::new`] from a `VarBuilder` (a `VarMap` for
/// training, safetensors for loading). Runs in the `VarBuilder`'s dtype (f32 uses the fast
/// CPU kernels; f64 the reference ops, e.g. for gradient checks).
pub struct Dit {
    cfg: DitConfig,
    dtype: DType,
    embed: SinusoidalEmbedding,
    linear_1: Linear,
    linear_2: Linear,
    class_embedding: Option<Tensor>,
    patch_embed: Linear,
    /// `[1, N, D]`.
    pos_embed: Tensor,
    blocks: Vec<DitBlock>,
    final_layer: FinalLayer,
    params: Vec<ParamSpec>,
}

impl Dit {
    /// Build the network, creating or loading its variables through `vb`.
    pub fn new(cfg: &DitConfig, vb: VarBuilder) -> std::result::Result<Self, NnError> {
        cfg.validate()?;
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let b = Builder::new(vb);
        let d = cfg.width;
        let te = b.pp("time_embedding");
        let linear_1 = Linear::new(&te.pp("linear_1"), cfg.time_embed_dim, d, false)?;
        let linear_2 = Linear::new(&te.pp("linear_2"), d, d, false)?;
        let class_embedding = match cfg.num_classes {
            Some(k) => Some(b.pp("class_embedding").get(
                &[k + 1, d],
                "weight",
                ParamInit::Normal { std: CLASS_EMBED_STD },
            )?),
            None => None,
        };
        let patch_embed = Linear::new(&b.pp("patch_embed"), cfg.patch_dim(), d, false)?;
        let g = cfg.grid_size();
        let pos_embed = pos_embed::sincos_2d(d, g, g, dtype, &device)?.unsqueeze(0)?;
        let blocks = (0..cfg.depth)
            .map(|i| DitBlock::new(&b.pp("blocks").pp(i), d, cfg.num_heads, cfg.mlp_hidden(), cfg.norm_eps))
            .collect::<Result<Vec<_>>>()?;
        let out = cfg.patch_size * cfg.patch_size * cfg.output_channels();
        let final_layer = FinalLayer::new(&b.pp("final_layer"), d, out, cfg.norm_eps)?;
        Ok(Self {
            cfg: cfg.clone(),
            dtype,
            embed: SinusoidalEmbedding::new(cfg.time_embed_dim, &device)?,
            linear_1,
            linear_2,
            class_embedding,
            patch_embed,
            pos_embed,
            blocks,
            final_layer,
            params: b.into_log(),
        })
    }

    /// Build on a fresh-or-partial `VarMap` and (re)initialise every parameter from a ChaCha8
    /// stream seeded with `seed` (reproducible; candle's own CPU initialisers are unseeded).
    pub fn new_seeded(
        cfg: &DitConfig,
        varmap: &VarMap,
        dtype: DType,
        device: &Device,
        seed: u64,
    ) -> std::result::Result<Self, NnError> {
        let net = Self::new(cfg, VarBuilder::from_varmap(varmap, dtype, device))?;
        layers::init_seeded(&net.params, varmap, seed)?;
        Ok(net)
    }

    pub fn config(&self) -> &DitConfig {
        &self.cfg
    }

    /// Every parameter: dotted name, shape, initialiser (construction order).
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// Total number of scalar parameters.
    pub fn param_count(&self) -> usize {
        self.params.iter().map(ParamSpec::elem_count).sum()
    }

    /// The input tokens: patch embedding plus positional embedding, `[B, N, D]`.
    pub fn tokens(&self, x_t: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x_t.dims4()?;
        let s = self.cfg.image_size;
        if c != self.cfg.channels || h != s || w != s {
            bail!("DiT expects x_t of shape [B, {}, {s}, {s}], got {:?}", self.cfg.channels, x_t.dims());
        }
        let p = patch::patchify(&x_t.to_dtype(self.dtype)?, self.cfg.patch_size)?;
        let n = p.dim(1)?;
        let e = self.patch_embed.forward(&p.reshape((b * n, self.cfg.patch_dim()))?)?;
        e.reshape((b, n, self.cfg.width))?.broadcast_add(&self.pos_embed)
    }

    /// The conditioning vector `c = time MLP(t) [+ E[y]]`, `[B, D]` (before the SiLU).
    /// `labels` as in [`Dit::forward_with_labels`].
    pub fn conditioning(&self, t: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let b = match t.dims() {
            [b] => *b,
            other => bail!("DiT expects t of shape [B], got {other:?}"),
        };
        let emb = self.embed.forward(t)?.to_dtype(self.dtype)?;
        let c = self.linear_2.forward(&crate::ops::silu(&self.linear_1.forward(&emb)?)?)?;
        match &self.class_embedding {
            Some(table) => {
                let idx = crate::net::label_indices(labels, table.dim(0)? - 1, b, t.device())?;
                c + table.index_select(&idx, 0)?
            }
            None if labels.is_some() => bail!("labels given to an unconditional DiT (num_classes is None)"),
            None => Ok(c),
        }
    }

    /// The transformer blocks on `tokens` `[B, N, D]` with conditioning `c` `[B, D]`
    /// (the identity at initialisation).
    pub fn trunk(&self, tokens: &Tensor, c: &Tensor) -> Result<Tensor> {
        let c_act = crate::ops::silu(c)?;
        let mut x = tokens.clone();
        for blk in &self.blocks {
            x = blk.forward(&x, &c_act)?;
        }
        Ok(x)
    }

    /// f_θ(x_t, t, y). `x_t: [B, C, H, W]`, `t: [B]` model time, `labels: [B]` integer class
    /// indices in `0..=num_classes` (`num_classes` = null label). Without labels a
    /// class-conditional DiT uses the null label; labels on an unconditional DiT are an error.
    /// Output `[B, C·(1 + learn_sigma), H, W]`.
    pub fn forward_with_labels(&self, x_t: &Tensor, t: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        let b = x_t.dim(0)?;
        if t.dims() != [b] {
            bail!("time tensor must have shape [{b}], got {:?}", t.dims());
        }
        let tokens = self.tokens(x_t)?;
        let c = self.conditioning(t, labels)?;
        let x = self.trunk(&tokens, &c)?;
        let y = self.final_layer.forward(&x, &crate::ops::silu(&c)?)?;
        let g = self.cfg.grid_size();
        patch::unpatchify(&y, self.cfg.patch_size, g, g)
    }
}

impl DiffusionNet for Dit {
    fn forward(&self, x_t: &Tensor, t: &Tensor, _train: bool) -> Result<Tensor> {
        Dit::forward_with_labels(self, x_t, t, None)
    }
    fn forward_with_labels(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
        _train: bool,
    ) -> Result<Tensor> {
        Dit::forward_with_labels(self, x_t, t, labels)
    }
    fn num_classes(&self) -> Option<usize> {
        self.cfg.num_classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_param_count_matches_closed_form() {
        let cfg = DitConfig { depth: 1, num_classes: Some(3), learn_sigma: true, ..DitConfig::digits() };
        let vm = VarMap::new();
        let net = Dit::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n, cfg.param_count());
        assert_eq!(net.param_count(), cfg.param_count());
    }
}
