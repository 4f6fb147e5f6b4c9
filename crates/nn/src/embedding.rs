//! Sinusoidal timestep embedding.

use candle_core::{bail, DType, Device, Result, Tensor};

/// Longest period of the sinusoids (Transformer / DDPM value).
pub const MAX_PERIOD: f64 = 10_000.0;

/// The `half = dim / 2` angular frequencies ω_k = exp(−ln(10⁴)·k/half), k = 0 … half−1
/// (diffusers' `get_timestep_embedding` with `downscale_freq_shift = 0`).
pub fn frequencies(dim: usize) -> Vec<f32> {
    let half = dim / 2;
    (0..half).map(|k| (-(MAX_PERIOD.ln()) * k as f64 / half as f64).exp() as f32).collect()
}

/// Sinusoidal embedding of model time (Vaswani et al. 2017 §3.5, as used by DDPM's
/// network, App. B): `emb[b] = [cos(t_b·ω_0) … cos(t_b·ω_{h−1}), sin(t_b·ω_0) … sin(t_b·ω_{h−1})]`
/// (diffusers' `flip_sin_to_cos = true`), zero-padded by one column when `dim` is odd.
///
/// Holds the frequency row so that a network does not rebuild it on every forward pass.
#[derive(Debug, Clone)]
pub struct SinusoidalEmbedding {
    dim: usize,
    /// `[1, dim/2]` f32.
    freqs: Tensor,
}

impl SinusoidalEmbedding {
    /// `dim` must be at least 2.
    pub fn new(dim: usize, device: &Device) -> Result<Self> {
        if dim < 2 {
            bail!("timestep embedding dimension must be >= 2, got {dim}");
        }
        let f = frequencies(dim);
        let n = f.len();
        Ok(Self { dim, freqs: Tensor::from_vec(f, (1, n), device)? })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `t`: `[B]` (any float dtype) -> `[B, dim]` f32.
    pub fn forward(&self, t: &Tensor) -> Result<Tensor> {
        if t.rank() != 1 {
            bail!("timesteps must have shape [B], got {:?}", t.dims());
        }
        let b = t.dim(0)?;
        let args = t.to_dtype(DType::F32)?.unsqueeze(1)?.broadcast_mul(&self.freqs)?;
        let emb = Tensor::cat(&[args.cos()?, args.sin()?], 1)?;
        if self.dim % 2 == 1 {
            let pad = Tensor::zeros((b, 1), DType::F32, t.device())?;
            Tensor::cat(&[emb, pad], 1)
        } else {
            Ok(emb)
        }
    }
}

/// One-shot form of [`SinusoidalEmbedding::forward`]: `t` `[B]` -> `[B, dim]`.
pub fn timestep_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    SinusoidalEmbedding::new(dim, t.device())?.forward(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the closed form evaluated in f64.
    #[test]
    fn matches_closed_form() {
        let d = Device::Cpu;
        let ts = [0.0f32, 1.0, 17.5, 999.0];
        for dim in [2usize, 7, 64] {
            let e = timestep_embedding(&Tensor::new(&ts, &d).unwrap(), dim).unwrap();
            assert_eq!(e.dims(), &[4, dim]);
            let v: Vec<Vec<f32>> = e.to_vec2().unwrap();
            let half = dim / 2;
            for (b, &t) in ts.iter().enumerate() {
                for k in 0..half {
                    let w = (-(10_000f64.ln()) * k as f64 / half as f64).exp();
                    let (c, s) = ((t as f64 * w).cos(), (t as f64 * w).sin());
                    assert!((v[b][k] as f64 - c).abs() < 3e-4, "cos dim={dim} t={t} k={k}");
                    assert!((v[b][half + k] as f64 - s).abs() < 3e-4, "sin dim={dim} t={t} k={k}");
                }
                if dim % 2 == 1 {
                    assert_eq!(v[b][dim - 1], 0.0);
                }
            }
            // t = 0: cos part all ones, sin part all zeros
            assert!(v[0][..half].iter().all(|&x| x == 1.0) && v[0][half..2 * half].iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let d = Device::Cpu;
        assert!(timestep_embedding(&Tensor::new(&[1.0f32], &d).unwrap(), 1).is_err());
        assert!(timestep_embedding(&Tensor::new(&[[1.0f32]], &d).unwrap(), 4).is_err());
    }
}
