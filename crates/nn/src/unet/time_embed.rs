//! Sinusoidal time embedding (Transformer position encoding, Vaswani et al. 2017 §3.5),
//! as used by DDPM (Appendix B) and diffusers' `get_timestep_embedding`.

use candle_core::{DType, Result, Tensor};

/// Embed model times `t: [B]` into `[B, dim]` (`dim` even):
/// `freq_k = exp(−ln(10000)·k / (dim/2 − freq_shift))`, `k = 0..dim/2`;
/// output `[sin(t·freq), cos(t·freq)]`, or `[cos, sin]` when `flip_sin_to_cos`.
pub fn sinusoidal_embedding(
    t: &Tensor,
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
) -> Result<Tensor> {
    if !dim.is_multiple_of(2) || dim == 0 {
        candle_core::bail!("sinusoidal embedding dim must be even and > 0, got {dim}");
    }
    let t = t.to_dtype(DType::F32)?;
    if t.rank() != 1 {
        candle_core::bail!("time tensor must have shape [B], got {:?}", t.dims());
    }
    let half = dim / 2;
    let denom = half as f64 - freq_shift;
    let freqs: Vec<f32> = (0..half).map(|k| (-(10000f64.ln()) * k as f64 / denom).exp() as f32).collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t.unsqueeze(1)?.broadcast_mul(&freqs)?;
    let (sin, cos) = (args.sin()?, args.cos()?);
    if flip_sin_to_cos {
        Tensor::cat(&[&cos, &sin], 1)
    } else {
        Tensor::cat(&[&sin, &cos], 1)
    }
}
