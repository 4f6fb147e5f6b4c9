//! Fixed 2-D sin-cos positional embedding (MAE / DiT `get_2d_sincos_pos_embed`).

use candle_core::{bail, DType, Device, Result, Tensor};

/// `[gh·gw, dim]` embedding of a `gh × gw` grid of tokens (row-major): the token at
/// (row r, column c) gets `[sin(c·ω), cos(c·ω), sin(r·ω), cos(r·ω)]` with the `dim/4`
/// frequencies `ω_k = 10000^(−k/(dim/4))`, `k = 0 … dim/4 − 1` (the column half first, as in
/// DiT's code). `dim` must be divisible by 4.
pub fn sincos_2d(dim: usize, gh: usize, gw: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    if dim == 0 || !dim.is_multiple_of(4) {
        bail!("2-D sin-cos positional embedding: dim must be a positive multiple of 4, got {dim}");
    }
    let q = dim / 4;
    let omega: Vec<f64> = (0..q).map(|k| 10_000f64.powf(-(k as f64) / q as f64)).collect();
    let mut v = Vec::with_capacity(gh * gw * dim);
    for r in 0..gh {
        for c in 0..gw {
            for pos in [c as f64, r as f64] {
                v.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                v.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    Tensor::from_vec(v, (gh * gw, dim), device)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_and_distinct_positions() {
        let e = sincos_2d(8, 3, 2, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(e.dims(), &[6, 8]);
        let v: Vec<Vec<f32>> = e.to_vec2().unwrap();
        // token 0 = (0, 0): sin 0 = 0, cos 0 = 1
        assert_eq!(v[0], [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        // token 5 = (row 2, column 1); ω = [1, 0.01]
        let want = [
            1f64.sin(),
            0.01f64.sin(),
            1f64.cos(),
            0.01f64.cos(),
            2f64.sin(),
            0.02f64.sin(),
            2f64.cos(),
            0.02f64.cos(),
        ];
        for (a, b) in v[5].iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6);
        }
        for i in 0..6 {
            for j in 0..i {
                assert_ne!(v[i], v[j]);
            }
        }
        assert!(sincos_2d(6, 2, 2, DType::F32, &Device::Cpu).is_err());
    }
}
