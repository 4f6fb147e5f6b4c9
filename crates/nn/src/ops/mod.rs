//! Hot operators used by the networks. Every network calls these functions rather than
//! candle's directly. On the CPU with f32 data they run this crate's own kernels (candle
//! custom ops with fused backward passes, GEMMs through the `gemm` crate with run-time
//! AVX-512/AVX2 dispatch, threads set by [`set_num_threads`]); on other devices or dtypes
//! they fall back to the stock-candle versions in [`reference`].
//!
//! Non-contiguous inputs are made contiguous first (a differentiable copy).

mod adaln;
mod alloc;
mod attention;
mod conv;
mod conv_kernels;
mod conv_shift;
mod cpu;
mod elementwise;
mod group_norm;
mod linear;
mod profile;
pub mod reference;
mod sgemm;
pub(crate) mod simd;
mod threads;
mod transformer;

use candle_core::{DType, Result, Tensor};

pub use profile::{set_profiling, take_profile};
pub use threads::{init_threads, num_threads, set_num_threads};

use cpu::fast_path;

/// When set, every function here uses the [`reference`] implementation (for comparisons).
static REFERENCE_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Routes every op of this module to the stock-candle [`reference`] versions (`true`) or
/// back to the fast kernels (`false`, the default). Process-wide; meant for tests and
/// benchmarks comparing the two.
pub fn set_reference_only(on: bool) {
    REFERENCE_ONLY.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// 2-D convolution, NCHW input `[B, Cin, H, W]`, weight `[Cout, Cin, k, k]`, optional bias `[Cout]`,
/// equal stride and zero padding in both directions.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let mut all = vec![x, weight];
    all.extend(bias);
    if !fast_path(&all) {
        return reference::conv2d(x, weight, bias, stride, padding);
    }
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, conv::Conv2dBias { stride, pad: padding }),
        None => x.apply_op2(&weight, conv::Conv2d { stride, pad: padding }),
    }
}

/// GroupNorm over `[B, C, …]` with `groups` groups, affine `gamma`/`beta` `[C]`,
/// optionally followed by SiLU (fused into one pass forward and backward).
pub fn group_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Result<Tensor> {
    if !fast_path(&[x, gamma, beta]) {
        return reference::group_norm(x, gamma, beta, groups, eps, silu);
    }
    if !(eps.is_finite() && eps > 0.0) {
        candle_core::bail!("group_norm: eps must be positive and finite, got {eps}");
    }
    let op = group_norm::GroupNorm { groups, eps: eps as f32, silu };
    x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

/// Softmax over the last dimension, with a backward pass
/// (candle's `softmax_last_dim` has none).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !fast_path(&[x]) {
        return reference::softmax_last_dim(x);
    }
    x.contiguous()?.apply_op1(elementwise::Softmax)
}

/// Nearest-neighbour ×2 upsampling of `[B, C, H, W]`.
pub fn upsample_nearest2x(x: &Tensor) -> Result<Tensor> {
    if !fast_path(&[x]) {
        return reference::upsample_nearest2x(x);
    }
    x.contiguous()?.apply_op1(elementwise::Upsample2x)
}

/// Linear layer `x · wᵀ + b` for `x` of shape `[…, in]`, weight `[out, in]`, bias `[out]`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let mut all = vec![x, weight];
    all.extend(bias);
    if !fast_path(&all) {
        return reference::linear(x, weight, bias);
    }
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, linear::LinearBias),
        None => x.apply_op2(&weight, linear::Linear),
    }
}

/// SiLU activation `x·sigmoid(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if !fast_path(&[x]) {
        return reference::silu(x);
    }
    x.contiguous()?.apply_op1(elementwise::SILU)
}

/// `x[b, c, …] + t[b, c]`: adds a per-sample, per-channel value (e.g. a projected time
/// embedding) to every position; the backward reduces over the positions in one pass.
pub fn add_channel_bias(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    if !fast_path(&[x, t]) {
        return reference::add_channel_bias(x, t);
    }
    x.contiguous()?.apply_op2(&t.contiguous()?, elementwise::AddChannelBias)
}

/// DiT's adaptive LayerNorm: LayerNorm without affine parameters over the last dimension of
/// `x [B, N, D]`, then `x̂·(1 + scale[b]) + shift[b]` with `shift`, `scale` `[B, D]` (one fused
/// pass forward and backward).
pub fn adaln_modulate(x: &Tensor, shift: &Tensor, scale: &Tensor, eps: f64) -> Result<Tensor> {
    if !fast_path(&[x, shift, scale]) {
        return reference::adaln_modulate(x, shift, scale, eps);
    }
    if !(eps.is_finite() && eps > 0.0) {
        candle_core::bail!("adaln_modulate: eps must be positive and finite, got {eps}");
    }
    let op = adaln::AdaLn { eps: eps as f32 };
    x.contiguous()?.apply_op3(&shift.contiguous()?, &scale.contiguous()?, op)
}

/// Multi-head self-attention core on packed projections `qkv [B, N, 3D]` (q, k, v side by
/// side, `heads` heads each): `softmax(q kᵀ/√d) v`, `[B, N, D]` with the heads side by side.
pub fn attention(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    if !fast_path(&[qkv]) {
        return reference::attention(qkv, heads);
    }
    qkv.contiguous()?.apply_op1(attention::Attention { heads })
}

/// GELU, tanh approximation: `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if !fast_path(&[x]) {
        return reference::gelu(x);
    }
    x.contiguous()?.apply_op1(transformer::GELU)
}

/// The gated residual of adaLN-Zero blocks: `x + gate[b]·h` for `x`, `h` `[B, N, D]` and
/// `gate` `[B, D]`.
pub fn gated_residual(x: &Tensor, h: &Tensor, gate: &Tensor) -> Result<Tensor> {
    if !fast_path(&[x, h, gate]) {
        return reference::gated_residual(x, h, gate);
    }
    x.contiguous()?.apply_op3(&h.contiguous()?, &gate.contiguous()?, transformer::GatedResidual)
}

/// Ensure f32.
pub fn f32(x: &Tensor) -> Result<Tensor> {
    x.to_dtype(DType::F32)
}
