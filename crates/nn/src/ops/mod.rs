//! Hot operators used by the networks. Every network calls these functions
//! rather than candle's directly, so the fast CPU kernels (issue: speed) can
//! replace the reference implementations below without touching the models.
//!
//! The bodies below are the reference (stock candle) versions; they are also the
//! fallback for non-CPU devices.

use candle_core::{DType, Result, Tensor, D};

/// 2-D convolution, NCHW input `[B, Cin, H, W]`, weight `[Cout, Cin, k, k]`, optional bias `[Cout]`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let y = x.conv2d(weight, padding, stride, 1, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(y),
    }
}

/// GroupNorm over `[B, C, …]` with `groups` groups, affine `gamma`/`beta` `[C]`,
/// optionally followed by SiLU (fused in the fast path).
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

/// Softmax over the last dimension, with a backward pass
/// (candle's `softmax_last_dim` has none).
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

/// Ensure f32.
pub fn f32(x: &Tensor) -> Result<Tensor> {
    x.to_dtype(DType::F32)
}
