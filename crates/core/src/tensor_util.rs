//! Small helpers to move per-timestep f64 coefficients onto tensors.

use crate::error::{CoreError, Result};
use candle_core::{DType, Device, Tensor};

/// Gather `values[idx[b]]` for each batch element and shape it `[B, 1, …, 1]`
/// (`rank` dims in total) so it broadcasts against a `[B, …]` tensor. f32.
pub fn gather_coef(values: &[f64], idx: &[usize], rank: usize, device: &Device) -> Result<Tensor> {
    let mut data = Vec::with_capacity(idx.len());
    for &i in idx {
        let v = values.get(i).ok_or_else(|| {
            CoreError::Shape(format!("timestep index {i} out of range 0..{}", values.len()))
        })?;
        data.push(*v as f32);
    }
    per_sample(&data, rank, device)
}

/// A `[B, 1, …, 1]` tensor (rank `rank`) from per-sample scalars.
pub fn per_sample(data: &[f32], rank: usize, device: &Device) -> Result<Tensor> {
    let mut shape = vec![data.len()];
    shape.extend(std::iter::repeat_n(1, rank.saturating_sub(1)));
    Ok(Tensor::from_slice(data, shape, device)?)
}

/// A `[B, 1, …]` tensor filled with a single scalar.
pub fn scalar_like(v: f64, batch: usize, rank: usize, device: &Device) -> Result<Tensor> {
    per_sample(&vec![v as f32; batch], rank, device)
}

/// Model time tensor `[B]` (f32) from timestep indices.
pub fn timesteps_tensor(idx: &[usize], device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = idx.iter().map(|&i| i as f32).collect();
    Ok(Tensor::from_vec(data, idx.len(), device)?)
}

/// Mean over every dimension but the first: `[B, …] -> [B]`.
pub fn mean_flat(x: &Tensor) -> Result<Tensor> {
    let b = x.dim(0)?;
    Ok(x.reshape((b, ()))?.mean(1)?)
}

/// Sum over every dimension but the first: `[B, …] -> [B]`.
pub fn sum_flat(x: &Tensor) -> Result<Tensor> {
    let b = x.dim(0)?;
    Ok(x.reshape((b, ()))?.sum(1)?)
}

/// Convert to f32 if needed.
pub fn to_f32(x: &Tensor) -> Result<Tensor> {
    Ok(if x.dtype() == DType::F32 { x.clone() } else { x.to_dtype(DType::F32)? })
}
