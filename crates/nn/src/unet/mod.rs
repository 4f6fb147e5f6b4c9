//! DDPM/ADM-style U-Net ε_θ(x_t, t[, y]) (DDPM paper Appendix B; seed 004 §9.2):
//! sinusoidal time embedding → MLP added in every ResBlock, GroupNorm + SiLU,
//! stride-2 conv down / nearest + conv up, skip connections by channel
//! concatenation, self-attention at chosen resolutions and in the middle,
//! optional class embedding and learned-variance output.
//!
//! Weight names follow diffusers' `UNet2DModel`:
//! `time_embedding.linear_{1,2}`, `class_embedding.weight`, `conv_in`,
//! `down_blocks.{i}.resnets.{j}.{norm1,conv1,time_emb_proj,norm2,conv2,conv_shortcut}`,
//! `down_blocks.{i}.attentions.{j}.{group_norm,to_q,to_k,to_v,to_out.0}`,
//! `down_blocks.{i}.downsamplers.0.conv`, `mid_block.resnets.{0,1}`,
//! `mid_block.attentions.0`, `up_blocks.{k}.{resnets,attentions}.{j}`,
//! `up_blocks.{k}.upsamplers.0.conv` (`k = 0` is the deepest level),
//! `conv_norm_out`, `conv_out`.

pub(crate) mod blocks;
mod config;
pub(crate) mod layers;
mod time_embed;

pub use config::{SkipLayout, UnetConfig, UnetError};
pub use layers::{ParamInit, ParamSpec};
pub use time_embed::sinusoidal_embedding;

use crate::net::DiffusionNet;
use blocks::{AttnBlock, BlockSettings, Downsample, Dropout, ResBlock, Upsample};
use candle_core::{DType, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use layers::{Builder, Conv2d, GroupNorm, Linear};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

#[derive(Debug, Clone)]
struct DownLevel {
    resnets: Vec<ResBlock>,
    attentions: Vec<AttnBlock>,
    downsample: Option<Downsample>,
}

#[derive(Debug, Clone)]
struct UpLevel {
    resnets: Vec<ResBlock>,
    attentions: Vec<AttnBlock>,
    upsample: Option<Upsample>,
}

/// The U-Net. Build with [`Unet::new`] from a `VarBuilder` (a `VarMap` for
/// training, safetensors for loading).
pub struct Unet {
    cfg: UnetConfig,
    linear_1: Linear,
    linear_2: Linear,
    class_embedding: Option<Tensor>,
    conv_in: Conv2d,
    down: Vec<DownLevel>,
    mid_resnets: [ResBlock; 2],
    mid_attention: Option<AttnBlock>,
    up: Vec<UpLevel>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    params: Vec<ParamSpec>,
    dropout_rng: Mutex<ChaCha8Rng>,
}

impl Unet {
    /// Build the network, creating or loading its variables through `vb`.
    pub fn new(cfg: &UnetConfig, vb: VarBuilder) -> std::result::Result<Self, UnetError> {
        cfg.validate()?;
        let b = Builder::new(vb);
        let s = BlockSettings {
            groups: cfg.groups,
            eps: cfg.norm_eps,
            temb_dim: cfg.temb_dim,
            zero_init: cfg.zero_init,
        };
        let levels = cfg.levels();
        let te = b.pp("time_embedding");
        let linear_1 = Linear::new(&te.pp("linear_1"), cfg.time_embed_dim, cfg.temb_dim, false)?;
        let linear_2 = Linear::new(&te.pp("linear_2"), cfg.temb_dim, cfg.temb_dim, false)?;
        let class_embedding = match cfg.num_classes {
            Some(n) => Some(b.pp("class_embedding").get(
                &[n + 1, cfg.temb_dim],
                "weight",
                ParamInit::Normal { std: 1.0 },
            )?),
            None => None,
        };
        let conv_in = Conv2d::new(&b.pp("conv_in"), cfg.in_channels, cfg.base_channels, 3, 1, 1, false)?;

        let adm = cfg.skip_layout == SkipLayout::Adm;
        let mut skips: Vec<usize> = Vec::new();
        let mut ch = cfg.base_channels;
        if adm {
            skips.push(ch);
        }
        let mut down = Vec::with_capacity(levels);
        for i in 0..levels {
            let out = cfg.level_channels(i);
            let lb = b.pp("down_blocks").pp(i);
            let (mut resnets, mut attentions) = (Vec::new(), Vec::new());
            for j in 0..cfg.num_res_blocks {
                cfg.check_groups(ch)?;
                cfg.check_groups(out)?;
                resnets.push(ResBlock::new(&lb.pp("resnets").pp(j), ch, out, s)?);
                ch = out;
                if cfg.level_has_attention(i) {
                    attentions.push(AttnBlock::new(&lb.pp("attentions").pp(j), ch, cfg.heads_for(ch), s)?);
                }
                skips.push(ch);
            }
            let downsample = if i + 1 < levels {
                let d = Downsample::new(&lb.pp("downsamplers").pp(0), ch)?;
                if adm {
                    skips.push(ch);
                }
                Some(d)
            } else {
                None
            };
            down.push(DownLevel { resnets, attentions, downsample });
        }

        let mb = b.pp("mid_block");
        let mid0 = ResBlock::new(&mb.pp("resnets").pp(0), ch, ch, s)?;
        let mid_attention = if cfg.mid_attention {
            Some(AttnBlock::new(&mb.pp("attentions").pp(0), ch, cfg.heads_for(ch), s)?)
        } else {
            None
        };
        let mid1 = ResBlock::new(&mb.pp("resnets").pp(1), ch, ch, s)?;

        let n_up = cfg.num_res_blocks + usize::from(adm);
        let mut up = Vec::with_capacity(levels);
        for k in 0..levels {
            let i = levels - 1 - k;
            let out = cfg.level_channels(i);
            let lb = b.pp("up_blocks").pp(k);
            let (mut resnets, mut attentions) = (Vec::new(), Vec::new());
            for j in 0..n_up {
                let skip =
                    skips.pop().ok_or_else(|| candle_core::Error::Msg("skip stack underflow".into()))?;
                cfg.check_groups(ch + skip)?;
                resnets.push(ResBlock::new(&lb.pp("resnets").pp(j), ch + skip, out, s)?);
                ch = out;
                if cfg.level_has_attention(i) {
                    attentions.push(AttnBlock::new(&lb.pp("attentions").pp(j), ch, cfg.heads_for(ch), s)?);
                }
            }
            let upsample = if i > 0 { Some(Upsample::new(&lb.pp("upsamplers").pp(0), ch)?) } else { None };
            up.push(UpLevel { resnets, attentions, upsample });
        }
        debug_assert!(skips.is_empty());
        let conv_norm_out = GroupNorm::new(&b.pp("conv_norm_out"), ch, cfg.groups, cfg.norm_eps)?;
        let conv_out = Conv2d::new(&b.pp("conv_out"), ch, cfg.output_channels(), 3, 1, 1, cfg.zero_init)?;
        Ok(Self {
            cfg: cfg.clone(),
            linear_1,
            linear_2,
            class_embedding,
            conv_in,
            down,
            mid_resnets: [mid0, mid1],
            mid_attention,
            up,
            conv_norm_out,
            conv_out,
            params: b.into_log(),
            dropout_rng: Mutex::new(ChaCha8Rng::seed_from_u64(0)),
        })
    }

    /// Build the network on a fresh-or-partial `VarMap` and (re)initialise every
    /// parameter it created from a ChaCha8 stream seeded with `seed`, so that
    /// initialisation is reproducible (candle's own CPU initialisers are unseeded).
    pub fn new_seeded(
        cfg: &UnetConfig,
        varmap: &VarMap,
        dtype: DType,
        device: &candle_core::Device,
        seed: u64,
    ) -> std::result::Result<Self, UnetError> {
        let net = Self::new(cfg, VarBuilder::from_varmap(varmap, dtype, device))?;
        net.init_seeded(varmap, seed)?;
        net.reseed_dropout(seed);
        Ok(net)
    }

    /// Overwrite this network's variables in `varmap` with seeded draws from their initialisers.
    pub fn init_seeded(&self, varmap: &VarMap, seed: u64) -> Result<()> {
        layers::init_seeded(&self.params, varmap, seed)
    }

    /// Reseed the dropout mask stream (used only when `train` and `dropout > 0`).
    pub fn reseed_dropout(&self, seed: u64) {
        if let Ok(mut r) = self.dropout_rng.lock() {
            *r = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        }
    }

    pub fn config(&self) -> &UnetConfig {
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

    /// Label index meaning "no class" (classifier-free guidance), if class-conditional.
    pub fn null_label(&self) -> Option<usize> {
        self.cfg.num_classes
    }

    /// ε_θ(x_t, t, y). `x_t: [B, C, H, W]`, `t: [B]` model time, `labels: [B]` integer
    /// class indices in `0..=num_classes` (`num_classes` = null label). Without labels a
    /// class-conditional net uses the null label; labels on an unconditional net are an error.
    pub fn forward_with_labels(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let (b, c, h, w) = x_t.dims4()?;
        if c != self.cfg.in_channels {
            candle_core::bail!("U-Net expects {} input channels, got {c}", self.cfg.in_channels);
        }
        let m = 1usize << (self.cfg.levels() - 1);
        if h % m != 0 || w % m != 0 || h == 0 || w == 0 {
            candle_core::bail!("U-Net input {h}×{w} must have sides divisible by {m}");
        }
        if t.dims() != [b] {
            candle_core::bail!("time tensor must have shape [{b}], got {:?}", t.dims());
        }
        let x = x_t.to_dtype(DType::F32)?;
        let emb =
            sinusoidal_embedding(t, self.cfg.time_embed_dim, self.cfg.flip_sin_to_cos, self.cfg.freq_shift)?;
        let mut temb = self.linear_2.forward(&crate::ops::silu(&self.linear_1.forward(&emb)?)?)?;
        if let Some(table) = &self.class_embedding {
            let idx = self.label_indices(labels, b, x.device())?;
            temb = (temb + table.index_select(&idx, 0)?)?;
        } else if labels.is_some() {
            candle_core::bail!("labels given to an unconditional U-Net (num_classes is None)");
        }
        let temb_act = crate::ops::silu(&temb)?;

        let mut guard = if train && self.cfg.dropout > 0.0 {
            Some(
                self.dropout_rng
                    .lock()
                    .map_err(|_| candle_core::Error::Msg("dropout RNG poisoned".into()))?,
            )
        } else {
            None
        };
        let mut dropout = Dropout { p: self.cfg.dropout, rng: guard.as_deref_mut() };

        let adm = self.cfg.skip_layout == SkipLayout::Adm;
        let mut hs = self.conv_in.forward(&x)?;
        let mut skips: Vec<Tensor> = Vec::new();
        if adm {
            skips.push(hs.clone());
        }
        for level in &self.down {
            for (j, rb) in level.resnets.iter().enumerate() {
                hs = rb.forward(&hs, Some(&temb_act), &mut dropout)?;
                if let Some(a) = level.attentions.get(j) {
                    hs = a.forward(&hs)?;
                }
                skips.push(hs.clone());
            }
            if let Some(d) = &level.downsample {
                hs = d.forward(&hs)?;
                if adm {
                    skips.push(hs.clone());
                }
            }
        }
        hs = self.mid_resnets[0].forward(&hs, Some(&temb_act), &mut dropout)?;
        if let Some(a) = &self.mid_attention {
            hs = a.forward(&hs)?;
        }
        hs = self.mid_resnets[1].forward(&hs, Some(&temb_act), &mut dropout)?;
        for level in &self.up {
            for (j, rb) in level.resnets.iter().enumerate() {
                let skip =
                    skips.pop().ok_or_else(|| candle_core::Error::Msg("skip stack underflow".into()))?;
                hs = rb.forward(&Tensor::cat(&[&hs, &skip], 1)?, Some(&temb_act), &mut dropout)?;
                if let Some(a) = level.attentions.get(j) {
                    hs = a.forward(&hs)?;
                }
            }
            if let Some(u) = &level.upsample {
                hs = u.forward(&hs)?;
            }
        }
        self.conv_out.forward(&self.conv_norm_out.forward(&hs, true)?)
    }

    fn label_indices(&self, labels: Option<&Tensor>, b: usize, dev: &candle_core::Device) -> Result<Tensor> {
        crate::net::label_indices(labels, self.cfg.num_classes.unwrap_or(0), b, dev)
    }
}

impl DiffusionNet for Unet {
    fn forward(&self, x_t: &Tensor, t: &Tensor, train: bool) -> Result<Tensor> {
        Unet::forward_with_labels(self, x_t, t, None, train)
    }
    fn forward_with_labels(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        Unet::forward_with_labels(self, x_t, t, labels, train)
    }
    fn num_classes(&self) -> Option<usize> {
        self.cfg.num_classes
    }
}
