//! The adaLN-Zero transformer block and DiT's final layer.
//!
//! Block: `(β₁, γ₁, α₁, β₂, γ₂, α₂) = adaln_modulation(SiLU(c))` (zero-initialised, so every
//! block is the identity at initialisation),
//! `x ← x + α₁·Attn(LN(x)·(1 + γ₁) + β₁)`, `x ← x + α₂·MLP(LN(x)·(1 + γ₂) + β₂)`,
//! LayerNorm without affine parameters, MLP `fc2(GELU_tanh(fc1(·)))`.
//! Final layer: `(β, γ) = adaln_modulation(SiLU(c))`, `linear(LN(x)·(1 + γ) + β)`, both
//! zero-initialised (the network outputs exactly zero at initialisation).

use super::attention::Attention;
use crate::ops;
use crate::unet::layers::{Builder, Linear};
use candle_core::{Result, Tensor};

/// Chunk `i` of width `d` of the modulation vectors `m: [B, k·d]`.
fn chunk(m: &Tensor, i: usize, d: usize) -> Result<Tensor> {
    m.narrow(1, i * d, d)?.contiguous()
}

/// `fc2(GELU(fc1(x)))` on `[B, N, D]`.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    pub fn new(b: &Builder, width: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            fc1: Linear::new(&b.pp("fc1"), width, hidden, false)?,
            fc2: Linear::new(&b.pp("fc2"), hidden, width, false)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let h = ops::gelu(&self.fc1.forward(&x.reshape((b * n, c))?)?)?;
        self.fc2.forward(&h)?.reshape((b, n, c))
    }
}

/// One adaLN-Zero block (`blocks.{i}.{adaln_modulation, attn.{qkv, proj}, mlp.{fc1, fc2}}`).
#[derive(Debug, Clone)]
pub(crate) struct DitBlock {
    adaln_modulation: Linear,
    attn: Attention,
    mlp: Mlp,
    width: usize,
    eps: f64,
}

impl DitBlock {
    pub fn new(b: &Builder, width: usize, heads: usize, mlp_hidden: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            adaln_modulation: Linear::new(&b.pp("adaln_modulation"), width, 6 * width, true)?,
            attn: Attention::new(&b.pp("attn"), width, heads)?,
            mlp: Mlp::new(&b.pp("mlp"), width, mlp_hidden)?,
            width,
            eps,
        })
    }

    /// `x: [B, N, D]`, `c_act = SiLU(c): [B, D]`.
    pub fn forward(&self, x: &Tensor, c_act: &Tensor) -> Result<Tensor> {
        let d = self.width;
        let m = self.adaln_modulation.forward(c_act)?;
        let part = |i| chunk(&m, i, d);
        let h = ops::adaln_modulate(x, &part(0)?, &part(1)?, self.eps)?;
        let x = ops::gated_residual(x, &self.attn.forward(&h)?, &part(2)?)?;
        let h = ops::adaln_modulate(&x, &part(3)?, &part(4)?, self.eps)?;
        ops::gated_residual(&x, &self.mlp.forward(&h)?, &part(5)?)
    }
}

/// `final_layer.{adaln_modulation, linear}`: tokens `[B, N, D]` → `[B, N, p²·C_out]`.
#[derive(Debug, Clone)]
pub(crate) struct FinalLayer {
    adaln_modulation: Linear,
    linear: Linear,
    width: usize,
    eps: f64,
}

impl FinalLayer {
    pub fn new(b: &Builder, width: usize, out: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            adaln_modulation: Linear::new(&b.pp("adaln_modulation"), width, 2 * width, true)?,
            linear: Linear::new(&b.pp("linear"), width, out, true)?,
            width,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor, c_act: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let m = self.adaln_modulation.forward(c_act)?;
        let h = ops::adaln_modulate(x, &chunk(&m, 0, self.width)?, &chunk(&m, 1, self.width)?, self.eps)?;
        let y = self.linear.forward(&h.reshape((b * n, c))?)?;
        let out = y.dim(1)?;
        y.reshape((b, n, out))
    }
}
