//! KL autoencoder of latent diffusion (Rombach et al. 2022, seed 000 § Latent Diffusion):
//! an encoder E to a diagonal Gaussian q(z|x) = N(μ(x), diag σ²(x)) over a downsampled latent,
//! and a decoder D, with the layout and parameter names of diffusers' `AutoencoderKL`
//! (so diffusers checkpoints load, see [`crate::diffusers`]):
//!
//! ```text
//! encoder: conv_in → down_blocks.{i}: resnets.{j} (+ downsamplers.0, right/bottom padded)
//!          → mid_block: resnets.0, attentions.0 (one head), resnets.1 → conv_norm_out, SiLU
//!          → conv_out (2·latent channels: μ, log σ²)                  then quant_conv (1×1)
//! decoder: post_quant_conv (1×1) → conv_in → mid_block → up_blocks.{k}: resnets.{j}
//!          (layers + 1 of them; + upsamplers.0 except the last) → conv_norm_out, SiLU, conv_out
//! ```
//! GroupNorm ε is 1e-6 everywhere; the blocks have no time embedding.

use crate::error::NnError;
use crate::ops;
use crate::unet::blocks::{AttnBlock, BlockSettings, Downsample, Dropout, ResBlock, Upsample};
use crate::unet::layers::{Builder, Conv2d, GroupNorm};
use crate::unet::ParamSpec;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// GroupNorm ε of every block (diffusers' `Encoder`/`Decoder`).
const EPS: f64 = 1e-6;

/// Hyper-parameters, in diffusers' `AutoencoderKL` config schema (`config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoencoderKlConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    /// One entry per level, each `"DownEncoderBlock2D"`.
    pub down_block_types: Vec<String>,
    /// One entry per level, each `"UpDecoderBlock2D"`.
    pub up_block_types: Vec<String>,
    /// Channels per level; the latent is `2^(levels−1)` times smaller than the image.
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub act_fn: String,
    pub latent_channels: usize,
    pub norm_num_groups: usize,
    pub sample_size: usize,
    /// Latents are multiplied by this before diffusion (Rombach et al.: 1/std of the latents).
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    pub mid_block_add_attention: bool,
}

impl Default for AutoencoderKlConfig {
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec!["DownEncoderBlock2D".into()],
            up_block_types: vec!["UpDecoderBlock2D".into()],
            block_out_channels: vec![64],
            layers_per_block: 1,
            act_fn: "silu".into(),
            latent_channels: 4,
            norm_num_groups: 32,
            sample_size: 32,
            scaling_factor: 0.18215,
            shift_factor: None,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
        }
    }
}

impl AutoencoderKlConfig {
    pub fn levels(&self) -> usize {
        self.block_out_channels.len()
    }

    /// Side of the latent for a `side × side` image.
    pub fn latent_side(&self, side: usize) -> usize {
        side >> (self.levels().saturating_sub(1))
    }

    pub fn validate(&self) -> std::result::Result<(), NnError> {
        let unsupported = |field: &str, value: String, reason: &str| NnError::Unsupported {
            field: field.to_string(),
            value,
            reason: reason.to_string(),
        };
        for (f, v) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("layers_per_block", self.layers_per_block),
            ("latent_channels", self.latent_channels),
            ("norm_num_groups", self.norm_num_groups),
        ] {
            if v == 0 {
                return Err(NnError::invalid(f, "must be > 0"));
            }
        }
        if self.block_out_channels.is_empty() || self.levels() > 8 {
            return Err(NnError::invalid("block_out_channels", "must have 1 to 8 entries"));
        }
        if let Some(c) = self.block_out_channels.iter().find(|c| **c == 0 || **c % self.norm_num_groups != 0)
        {
            return Err(NnError::invalid(
                "norm_num_groups",
                format!("{} groups do not divide {c} channels", self.norm_num_groups),
            ));
        }
        if self.down_block_types.len() != self.levels() || self.up_block_types.len() != self.levels() {
            return Err(NnError::invalid("down_block_types", "one down and one up block type per level"));
        }
        if let Some(t) = self.down_block_types.iter().find(|t| *t != "DownEncoderBlock2D") {
            return Err(unsupported("down_block_types", t.clone(), "only DownEncoderBlock2D"));
        }
        if let Some(t) = self.up_block_types.iter().find(|t| *t != "UpDecoderBlock2D") {
            return Err(unsupported("up_block_types", t.clone(), "only UpDecoderBlock2D"));
        }
        if self.act_fn != "silu" {
            return Err(unsupported("act_fn", self.act_fn.clone(), "only silu"));
        }
        if !(self.scaling_factor.is_finite() && self.scaling_factor > 0.0) {
            return Err(NnError::invalid(
                "scaling_factor",
                format!("must be > 0, got {}", self.scaling_factor),
            ));
        }
        if self.shift_factor.is_some_and(|s| !s.is_finite()) {
            return Err(NnError::invalid("shift_factor", "must be finite"));
        }
        Ok(())
    }
}

struct MidBlock {
    res0: ResBlock,
    attn: Option<AttnBlock>,
    res1: ResBlock,
}

impl MidBlock {
    fn new(b: &Builder, ch: usize, cfg: &AutoencoderKlConfig, s: BlockSettings) -> Result<Self> {
        Ok(Self {
            res0: ResBlock::new(&b.pp("resnets").pp(0), ch, ch, s)?,
            attn: if cfg.mid_block_add_attention {
                Some(AttnBlock::new(&b.pp("attentions").pp(0), ch, 1, s)?)
            } else {
                None
            },
            res1: ResBlock::new(&b.pp("resnets").pp(1), ch, ch, s)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut d = Dropout { p: 0.0, rng: None };
        let mut h = self.res0.forward(x, None, &mut d)?;
        if let Some(a) = &self.attn {
            h = a.forward(&h)?;
        }
        self.res1.forward(&h, None, &mut d)
    }
}

struct Level {
    resnets: Vec<ResBlock>,
    down: Option<Downsample>,
    up: Option<Upsample>,
}

impl Level {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut d = Dropout { p: 0.0, rng: None };
        let mut h = x.clone();
        for r in &self.resnets {
            h = r.forward(&h, None, &mut d)?;
        }
        if let Some(dn) = &self.down {
            h = dn.forward(&h)?;
        }
        if let Some(up) = &self.up {
            h = up.forward(&h)?;
        }
        Ok(h)
    }
}

/// Encoder or decoder trunk: conv_in, levels and mid block (in the order of the direction),
/// conv_norm_out + SiLU, conv_out.
struct Coder {
    conv_in: Conv2d,
    levels: Vec<Level>,
    mid: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    mid_first: bool,
}

impl Coder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        if self.mid_first {
            h = self.mid.forward(&h)?;
        }
        for l in &self.levels {
            h = l.forward(&h)?;
        }
        if !self.mid_first {
            h = self.mid.forward(&h)?;
        }
        self.conv_out.forward(&self.conv_norm_out.forward(&h, true)?)
    }
}

/// The KL autoencoder. Build with [`AutoencoderKl::new`] from a `VarBuilder`.
pub struct AutoencoderKl {
    cfg: AutoencoderKlConfig,
    encoder: Coder,
    decoder: Coder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    params: Vec<ParamSpec>,
}

/// The diagonal Gaussian q(z|x): `mean` and `logvar` `[B, latent, h, w]` (log-variance clamped
/// to [−30, 20] as in diffusers' `DiagonalGaussianDistribution`).
pub struct LatentDist {
    pub mean: Tensor,
    pub logvar: Tensor,
}

impl LatentDist {
    /// `z = μ + σ·noise` for standard-normal `noise` of `mean`'s shape (reparameterisation).
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        &self.mean + (self.logvar.affine(0.5, 0.0)?.exp()? * noise)?
    }

    /// KL(q(z|x) ‖ N(0, I)) summed over the latent, averaged over the batch:
    /// `½ Σ (μ² + σ² − 1 − log σ²)`.
    pub fn kl(&self) -> Result<Tensor> {
        let b = self.mean.dim(0)? as f64;
        let per = ((self.mean.sqr()? + self.logvar.exp()?)? - 1.0)? - &self.logvar;
        per?.sum_all()?.affine(0.5 / b, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn kl_matches_the_closed_form() {
        let dev = Device::Cpu;
        let mean = Tensor::new(&[[0.0f32, 1.0], [2.0, -1.0]], &dev).unwrap();
        let logvar = Tensor::new(&[[0.0f32, 0.5], [-1.0, 0.0]], &dev).unwrap();
        let q = LatentDist { mean, logvar };
        let kl = |m: f64, lv: f64| 0.5 * (m * m + lv.exp() - 1.0 - lv);
        let want = (kl(0.0, 0.0) + kl(1.0, 0.5) + kl(2.0, -1.0) + kl(-1.0, 0.0)) / 2.0;
        let got = q.kl().unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // reparameterisation: z = μ + exp(½ log σ²)·ε
        let z = q.sample(&Tensor::ones((2, 2), candle_core::DType::F32, &dev).unwrap()).unwrap();
        let z: Vec<Vec<f32>> = z.to_vec2().unwrap();
        assert!((z[0][1] as f64 - (1.0 + 0.25f64.exp())).abs() < 1e-6);
    }
}

impl AutoencoderKl {
    pub fn new(cfg: &AutoencoderKlConfig, vb: VarBuilder) -> std::result::Result<Self, NnError> {
        cfg.validate()?;
        let b = Builder::new(vb);
        let s = BlockSettings { groups: cfg.norm_num_groups, eps: EPS, temb_dim: 0, zero_init: false };
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let z = cfg.latent_channels;

        let eb = b.pp("encoder");
        let mut levels = Vec::with_capacity(n);
        let mut cin = ch[0];
        for (i, &cout) in ch.iter().enumerate() {
            let lb = eb.pp("down_blocks").pp(i);
            let mut resnets = Vec::new();
            for j in 0..cfg.layers_per_block {
                resnets.push(ResBlock::new(
                    &lb.pp("resnets").pp(j),
                    if j == 0 { cin } else { cout },
                    cout,
                    s,
                )?);
            }
            let down = if i + 1 < n {
                Some(Downsample::new_asymmetric(&lb.pp("downsamplers").pp(0), cout)?)
            } else {
                None
            };
            levels.push(Level { resnets, down, up: None });
            cin = cout;
        }
        let encoder = Coder {
            conv_in: Conv2d::new(&eb.pp("conv_in"), cfg.in_channels, ch[0], 3, 1, 1, false)?,
            levels,
            mid: MidBlock::new(&eb.pp("mid_block"), ch[n - 1], cfg, s)?,
            conv_norm_out: GroupNorm::new(&eb.pp("conv_norm_out"), ch[n - 1], cfg.norm_num_groups, EPS)?,
            conv_out: Conv2d::new(&eb.pp("conv_out"), ch[n - 1], 2 * z, 3, 1, 1, false)?,
            mid_first: false,
        };

        let db = b.pp("decoder");
        let conv_in = Conv2d::new(&db.pp("conv_in"), z, ch[n - 1], 3, 1, 1, false)?;
        let mid = MidBlock::new(&db.pp("mid_block"), ch[n - 1], cfg, s)?;
        let mut levels = Vec::with_capacity(n);
        let mut cin = ch[n - 1];
        for k in 0..n {
            let cout = ch[n - 1 - k];
            let lb = db.pp("up_blocks").pp(k);
            let mut resnets = Vec::new();
            for j in 0..=cfg.layers_per_block {
                resnets.push(ResBlock::new(
                    &lb.pp("resnets").pp(j),
                    if j == 0 { cin } else { cout },
                    cout,
                    s,
                )?);
            }
            let up = if k + 1 < n { Some(Upsample::new(&lb.pp("upsamplers").pp(0), cout)?) } else { None };
            levels.push(Level { resnets, down: None, up });
            cin = cout;
        }
        let decoder = Coder {
            conv_in,
            levels,
            mid,
            conv_norm_out: GroupNorm::new(&db.pp("conv_norm_out"), ch[0], cfg.norm_num_groups, EPS)?,
            conv_out: Conv2d::new(&db.pp("conv_out"), ch[0], cfg.out_channels, 3, 1, 1, false)?,
            mid_first: true,
        };
        let quant_conv = if cfg.use_quant_conv {
            Some(Conv2d::new(&b.pp("quant_conv"), 2 * z, 2 * z, 1, 1, 0, false)?)
        } else {
            None
        };
        let post_quant_conv = if cfg.use_post_quant_conv {
            Some(Conv2d::new(&b.pp("post_quant_conv"), z, z, 1, 1, 0, false)?)
        } else {
            None
        };
        Ok(Self { cfg: cfg.clone(), encoder, decoder, quant_conv, post_quant_conv, params: b.into_log() })
    }

    /// Build on a fresh `VarMap` and initialise every parameter from a ChaCha8 stream seeded
    /// with `seed` (PyTorch's default initialisers), so training is reproducible.
    pub fn new_seeded(
        cfg: &AutoencoderKlConfig,
        varmap: &candle_nn::VarMap,
        device: &candle_core::Device,
        seed: u64,
    ) -> std::result::Result<Self, NnError> {
        let ae = Self::new(cfg, VarBuilder::from_varmap(varmap, candle_core::DType::F32, device))?;
        crate::unet::layers::init_seeded(&ae.params, varmap, seed)?;
        Ok(ae)
    }

    pub fn config(&self) -> &AutoencoderKlConfig {
        &self.cfg
    }

    /// Every parameter: dotted name, shape, initialiser (construction order).
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    fn check_input(&self, x: &Tensor, channels: usize, what: &str) -> Result<()> {
        let (_, c, h, w) = x.dims4()?;
        let m = 1usize << (self.cfg.levels() - 1);
        if c != channels || h == 0 || w == 0 || h % m != 0 || w % m != 0 {
            candle_core::bail!(
                "autoencoder {what} must be [B, {channels}, H, W] with H, W divisible by {m}, got {:?}",
                x.dims()
            );
        }
        Ok(())
    }

    /// q(z|x) for images `x` `[B, in_channels, H, W]` (H, W divisible by 2^(levels−1)).
    pub fn encode(&self, x: &Tensor) -> Result<LatentDist> {
        self.check_input(x, self.cfg.in_channels, "input")?;
        let mut moments = self.encoder.forward(&ops::f32(x)?)?;
        if let Some(q) = &self.quant_conv {
            moments = q.forward(&moments)?;
        }
        let z = self.cfg.latent_channels;
        let mean = moments.narrow(1, 0, z)?.contiguous()?;
        let logvar = moments.narrow(1, z, z)?.contiguous()?.clamp(-30f32, 20f32)?;
        Ok(LatentDist { mean, logvar })
    }

    /// D(z) for latents `z` `[B, latent_channels, h, w]`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = z.dims4()?;
        if c != self.cfg.latent_channels || h * w == 0 {
            candle_core::bail!(
                "autoencoder latents must be [B, {}, h, w], got {:?}",
                self.cfg.latent_channels,
                z.dims()
            );
        }
        let mut z = ops::f32(z)?;
        if let Some(p) = &self.post_quant_conv {
            z = p.forward(&z)?;
        }
        self.decoder.forward(&z)
    }
}
