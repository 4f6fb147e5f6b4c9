//! U-Net building blocks: ResBlock, multi-head self-attention, Downsample, Upsample
//! (DDPM Appendix B; names follow diffusers' `ResnetBlock2D`, `Attention`,
//! `Downsample2D`, `Upsample2D`).

use super::layers::{Builder, Conv2d, GroupNorm, Linear};
use crate::ops;
use candle_core::{Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Inverted dropout: zero each element with probability `p`, scale the rest by `1/(1−p)`.
/// Inactive (identity) without an RNG (evaluation) or with `p = 0`.
pub(crate) struct Dropout<'r> {
    pub p: f64,
    pub rng: Option<&'r mut ChaCha8Rng>,
}

impl Dropout<'_> {
    pub fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        let Some(rng) = self.rng.as_deref_mut() else { return Ok(x.clone()) };
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let scale = (1.0 / keep) as f32;
        let mask: Vec<f32> =
            (0..x.elem_count()).map(|_| if rng.random::<f64>() < keep { scale } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
        x.mul(&mask)
    }
}

/// ResBlock(cin→cout): GN, SiLU, conv3×3, + Linear(temb→cout)(SiLU(temb)),
/// GN, SiLU, dropout, conv3×3; 1×1 conv shortcut when cin ≠ cout. Without a time embedding
/// (`temb_dim = 0`, the autoencoder's blocks) there is no `time_emb_proj`.
#[derive(Debug, Clone)]
pub(crate) struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
}

/// Shared settings for building blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockSettings {
    pub groups: usize,
    pub eps: f64,
    /// Width of the time embedding; 0: blocks without one.
    pub temb_dim: usize,
    pub zero_init: bool,
}

impl ResBlock {
    pub fn new(b: &Builder, cin: usize, cout: usize, s: BlockSettings) -> Result<Self> {
        Ok(Self {
            norm1: GroupNorm::new(&b.pp("norm1"), cin, s.groups, s.eps)?,
            conv1: Conv2d::new(&b.pp("conv1"), cin, cout, 3, 1, 1, false)?,
            time_emb_proj: if s.temb_dim > 0 {
                Some(Linear::new(&b.pp("time_emb_proj"), s.temb_dim, cout, false)?)
            } else {
                None
            },
            norm2: GroupNorm::new(&b.pp("norm2"), cout, s.groups, s.eps)?,
            conv2: Conv2d::new(&b.pp("conv2"), cout, cout, 3, 1, 1, s.zero_init)?,
            conv_shortcut: if cin != cout {
                Some(Conv2d::new(&b.pp("conv_shortcut"), cin, cout, 1, 1, 0, false)?)
            } else {
                None
            },
        })
    }

    /// `temb_act` is SiLU(temb), `[B, temb_dim]` (`None` for blocks without a time embedding).
    pub fn forward(&self, x: &Tensor, temb_act: Option<&Tensor>, dropout: &mut Dropout) -> Result<Tensor> {
        let mut h = self.conv1.forward(&self.norm1.forward(x, true)?)?;
        match (&self.time_emb_proj, temb_act) {
            (Some(proj), Some(t)) => h = ops::add_channel_bias(&h, &proj.forward(t)?)?,
            (None, None) => {}
            _ => candle_core::bail!("ResBlock: a time embedding goes with a time_emb_proj"),
        }
        let h = dropout.apply(&self.norm2.forward(&h, true)?)?;
        let h = self.conv2.forward(&h)?;
        let skip = match &self.conv_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        skip + h
    }
}

/// Multi-head self-attention over the H·W positions, with residual connection:
/// `x + to_out(softmax(q kᵀ / sqrt(d)) v)` on GroupNorm(x).
#[derive(Debug, Clone)]
pub(crate) struct AttnBlock {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl AttnBlock {
    pub fn new(b: &Builder, channels: usize, heads: usize, s: BlockSettings) -> Result<Self> {
        Ok(Self {
            group_norm: GroupNorm::new(&b.pp("group_norm"), channels, s.groups, s.eps)?,
            to_q: Linear::new(&b.pp("to_q"), channels, channels, false)?,
            to_k: Linear::new(&b.pp("to_k"), channels, channels, false)?,
            to_v: Linear::new(&b.pp("to_v"), channels, channels, false)?,
            to_out: Linear::new(&b.pp("to_out").pp(0), channels, channels, s.zero_init)?,
            heads,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (n, heads) = (h * w, self.heads);
        let d = c / heads;
        // [B, C, H, W] -> [B·HW, C]
        let tokens = self.group_norm.forward(x, false)?.reshape((b, c, n))?.transpose(1, 2)?;
        let tokens = tokens.contiguous()?.reshape((b * n, c))?;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, n, heads, d))?.transpose(1, 2)?.contiguous()?.reshape((b * heads, n, d))
        };
        let q = split(self.to_q.forward(&tokens)?)?;
        let k = split(self.to_k.forward(&tokens)?)?;
        let v = split(self.to_v.forward(&tokens)?)?;
        let scores = (q.matmul(&k.transpose(1, 2)?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        let attn = ops::softmax_last_dim(&scores)?;
        let out = attn.matmul(&v)?; // [B·heads, N, d]
        let out = out.reshape((b, heads, n, d))?.transpose(1, 2)?.contiguous()?.reshape((b * n, c))?;
        let out = self.to_out.forward(&out)?.reshape((b, n, c))?.transpose(1, 2)?.reshape((b, c, h, w))?;
        x + out
    }
}

/// Stride-2 3×3 convolution (`downsamplers.0.conv`), zero-padded by one pixel on every side,
/// or (`asymmetric`, the autoencoder's encoder as in diffusers' `Downsample2D(padding=0)`)
/// on the right and bottom only.
#[derive(Debug, Clone)]
pub(crate) struct Downsample {
    conv: Conv2d,
    asymmetric: bool,
}

impl Downsample {
    pub fn new(b: &Builder, channels: usize) -> Result<Self> {
        Ok(Self { conv: Conv2d::new(&b.pp("conv"), channels, channels, 3, 2, 1, false)?, asymmetric: false })
    }

    pub fn new_asymmetric(b: &Builder, channels: usize) -> Result<Self> {
        Ok(Self { conv: Conv2d::new(&b.pp("conv"), channels, channels, 3, 2, 0, false)?, asymmetric: true })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.asymmetric {
            self.conv.forward(&x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?)
        } else {
            self.conv.forward(x)
        }
    }
}

/// Nearest ×2 upsampling followed by a 3×3 convolution (`upsamplers.0.conv`).
#[derive(Debug, Clone)]
pub(crate) struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn new(b: &Builder, channels: usize) -> Result<Self> {
        Ok(Self { conv: Conv2d::new(&b.pp("conv"), channels, channels, 3, 1, 1, false)? })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(&ops::upsample_nearest2x(x)?)
    }
}
