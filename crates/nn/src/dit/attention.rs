//! Multi-head self-attention over the tokens (`attn.qkv`, `attn.proj`, as DiT / timm), on the
//! project's linear kernel and its fused attention core (`ops::attention`: one task per sample
//! and head on strided views of the packed q/k/v, no head split/merge copies).

use crate::ops;
use crate::unet::layers::{Builder, Linear};
use candle_core::{Result, Tensor};

#[derive(Debug, Clone)]
pub(crate) struct Attention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl Attention {
    pub fn new(b: &Builder, width: usize, heads: usize) -> Result<Self> {
        Ok(Self {
            qkv: Linear::new(&b.pp("qkv"), width, 3 * width, false)?,
            proj: Linear::new(&b.pp("proj"), width, width, false)?,
            heads,
        })
    }

    /// `x: [B, N, D]` → `proj(softmax(q kᵀ / √d) v)`, `[B, N, D]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let qkv = self.qkv.forward(&x.reshape((b * n, c))?)?.reshape((b, n, 3 * c))?;
        let out = ops::attention(&qkv, self.heads)?;
        self.proj.forward(&out.reshape((b * n, c))?)?.reshape((b, n, c))
    }
}
