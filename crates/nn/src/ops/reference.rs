//! Reference operators built from stock candle ops. They define the semantics the fast
//! CPU kernels are tested against and are the fallback on CUDA/Metal and for non-f32 data.

use candle_core::{Result, Tensor, D};

/// 2-D convolution, NCHW input `[B, Cin, H, W]`, weight `[Cout, Cin, k, k]`, optional bias `[Cout]`.
///
/// Strided convolutions are computed as the stride-1 convolution followed by picking every
/// `stride`-th row and column: candle's own strided backward mis-sizes the input gradient
/// when `(H + 2p − k)` is not a multiple of the stride, which this formulation avoids.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    if stride == 0 {
        candle_core::bail!("conv2d: stride must be positive");
    }
    let mut y = x.conv2d(weight, padding, 1, 1, 1)?;
    if stride > 1 {
        let (_, _, h, w) = y.dims4()?;
        let pick = |n: usize| -> Result<Tensor> {
            let idx: Vec<u32> = (0..n).step_by(stride).map(|i| i as u32).collect();
            let len = idx.len();
            Tensor::from_vec(idx, len, x.device())
        };
        y = y.index_select(&pick(h)?, 2)?.index_select(&pick(w)?, 3)?;
    }
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(y),
    }
}

/// GroupNorm over `[B, C, …]` with `groups` groups, affine `gamma`/`beta` `[C]`,
/// optionally followed by SiLU.
pub fn group_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (b, c) = (dims[0], dims[1]);
    let xg = x.reshape((b, groups, ()))?;
    let mean = xg.mean_keepdim(D::Minus1)?;
    let xc = xg.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?.reshape(dims.as_slice())?;
    let mut shape = vec![1, c];
    shape.extend(std::iter::repeat_n(1, dims.len() - 2));
    let y = xn
        .broadcast_mul(&gamma.reshape(shape.as_slice())?)?
        .broadcast_add(&beta.reshape(shape.as_slice())?)?;
    if silu {
        candle_nn::ops::silu(&y)
    } else {
        Ok(y)
    }
}

/// Softmax over the last dimension built from differentiable primitives
/// (candle's `softmax_last_dim` has no backward).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Nearest-neighbour ×2 upsampling of `[B, C, H, W]`.
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(h * 2, w * 2)
}

/// Linear layer `x · wᵀ + b` for `x` of shape `[B, in]`, weight `[out, in]`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&weight.t()?)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// SiLU activation.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::silu(x)
}

/// `x[b, c, …] + t[b, c]`.
pub fn add_channel_bias(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    let mut shape = t.dims().to_vec();
    shape.extend(std::iter::repeat_n(1, x.rank().saturating_sub(2)));
    x.broadcast_add(&t.reshape(shape.as_slice())?)
}

/// LayerNorm without affine parameters over the last dimension of `x [B, N, D]`, then
/// `x̂·(1 + scale[b]) + shift[b]` (`shift`, `scale` `[B, D]`).
pub fn adaln_modulate(x: &Tensor, shift: &Tensor, scale: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(&(scale + 1.0)?.unsqueeze(1)?)?.broadcast_add(&shift.unsqueeze(1)?)
}

/// GELU, tanh approximation.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.gelu()
}

/// `x + gate[b]·h` for `x`, `h` `[B, N, D]`, `gate` `[B, D]`.
pub fn gated_residual(x: &Tensor, h: &Tensor, gate: &Tensor) -> Result<Tensor> {
    x + h.broadcast_mul(&gate.unsqueeze(1)?)?
}

/// Multi-head self-attention core on `qkv [B, N, 3D]`: `softmax(q kᵀ/√d) v`, `[B, N, D]`.
pub fn attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, c3) = qkv.dims3()?;
    if heads == 0 || c3 % (3 * heads) != 0 {
        candle_core::bail!("attention: qkv {:?} does not split into q, k, v of {heads} heads", qkv.dims());
    }
    let (c, d) = (c3 / 3, c3 / 3 / heads);
    let qkv = qkv.reshape(vec![b, n, 3, heads, d])?.permute([2, 0, 3, 1, 4])?;
    let part = |i: usize| -> Result<Tensor> { qkv.get(i)?.contiguous()?.reshape((b * heads, n, d)) };
    let q = (part(0)? * (1.0 / (d as f64).sqrt()))?;
    let (k, v) = (part(1)?, part(2)?);
    let attn = softmax_last_dim(&q.matmul(&k.transpose(1, 2)?.contiguous()?)?)?;
    attn.matmul(&v)?.reshape((b, heads, n, d))?.transpose(1, 2)?.contiguous()?.reshape((b, n, c))
}
