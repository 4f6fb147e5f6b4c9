//! Analytic denoisers (exact Gaussian, isotropic Gaussian mixture, empirical data set, and the
//! equivariant local score machine of patches of a data set).
//!
//! Each is a [`Denoiser`](crate::Denoiser) with [`Prediction::Sample`](crate::Prediction):
//! it returns the exact posterior mean x̂₀ = E[x₀ | x_t] of the forward process
//! x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε (DDPM Eq. 4) for its data distribution, so it can
//! stand in for a perfectly trained network in any sampler. Model time `t` is the
//! timestep index (rounded to the nearest integer). Inputs `[B, D…]` are flattened
//! to `[B, D]`; the maths runs in f64 and the output is f32 with the input's shape.

pub mod els;
pub mod empirical;
pub mod error;
pub mod gaussian;
pub mod gmm;
pub mod linalg;

pub use els::{ElsDenoiser, PatchKnot, PatchSchedule};
pub use empirical::EmpiricalDenoiser;
pub use error::{AnalyticError, AnalyticResult};
pub use gaussian::GaussianDenoiser;
pub use gmm::{GmmDenoiser, GmmSpec};

use crate::error::{CoreError, Result};
use candle_core::{DType, Device, Tensor};

/// A denoiser whose posterior mean is known in closed form.
pub trait AnalyticDenoiser {
    /// Data dimension D (product of the non-batch dimensions).
    fn dim(&self) -> usize;
    /// ᾱ of the schedule the denoiser was built for (index convention of `DiffusionSchedule`).
    fn alpha_bar(&self) -> &[f64];
    /// Device on which [`AnalyticDenoiser::posterior_mean_flat`] expects its input.
    fn compute_device(&self) -> &Device;
    /// E[x₀ | x_t] for `x` of shape `[B, D]` (f64, on `compute_device`), all rows at the noise level
    /// ᾱ = `alpha_bar` ∈ (0, 1) (any level, not only the schedule's: the closed form is exact).
    fn posterior_mean_at(&self, x: &Tensor, alpha_bar: f64) -> Result<Tensor>;

    /// E[x₀ | x_t] for `x` of shape `[B, D]` (f64, on `compute_device`), all rows at timestep `idx`.
    fn posterior_mean_flat(&self, x: &Tensor, idx: usize) -> Result<Tensor> {
        check_index(idx, self.alpha_bar().len())?;
        self.posterior_mean_at(x, self.alpha_bar()[idx])
    }

    /// x̂₀ = E[x₀ | x_t] for `x_t` `[B, D…]` (any float dtype/device), every row at timestep `idx`.
    fn posterior_mean(&self, x_t: &Tensor, idx: usize) -> Result<Tensor> {
        check_index(idx, self.alpha_bar().len())?;
        let flat = flatten_input(x_t, self.dim(), self.compute_device())?;
        restore_output(&self.posterior_mean_flat(&flat, idx)?, x_t)
    }

    /// The exact score ∇ log p_t(x_t) = (√ᾱ_t·x̂₀ − x_t)/(1 − ᾱ_t) (Tweedie's formula;
    /// seed 002, "perfect score function"), same shape as `x_t`, f32.
    fn score(&self, x_t: &Tensor, idx: usize) -> Result<Tensor> {
        check_index(idx, self.alpha_bar().len())?;
        let ab = self.alpha_bar()[idx];
        let flat = flatten_input(x_t, self.dim(), self.compute_device())?;
        let x0 = self.posterior_mean_flat(&flat, idx)?;
        let score = x0.affine(ab.sqrt(), 0.0)?.sub(&flat)?.affine(1.0 / (1.0 - ab), 0.0)?;
        restore_output(&score, x_t)
    }
}

/// `Denoiser::forward` for analytic models: per-row timesteps, grouped by index.
pub(crate) fn analytic_forward<A: AnalyticDenoiser + ?Sized>(
    model: &A,
    x_t: &Tensor,
    t: &Tensor,
) -> Result<Tensor> {
    let flat = flatten_input(x_t, model.dim(), model.compute_device())?;
    let idx = timestep_indices(t, flat.dim(0)?, model.alpha_bar().len())?;
    let out = map_by_timestep(&flat, &idx, |rows, i| model.posterior_mean_flat(rows, i))?;
    restore_output(&out, x_t)
}

fn check_index(idx: usize, len: usize) -> Result<()> {
    if idx >= len {
        return Err(CoreError::invalid("t", format!("timestep index {idx} out of range 0..{len}")));
    }
    Ok(())
}

/// Timestep indices from model time `t` (`[B]`): nearest integer, checked against `0..len`.
pub fn timestep_indices(t: &Tensor, batch: usize, len: usize) -> Result<Vec<usize>> {
    if t.dims() != [batch] {
        return Err(CoreError::Shape(format!("time tensor has shape {:?}, expected [{batch}]", t.dims())));
    }
    let values = t.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec1::<f64>()?;
    values
        .into_iter()
        .map(|v| {
            let r = v.round();
            if !v.is_finite() || r < 0.0 || r > (len as f64 - 1.0) {
                Err(CoreError::invalid("t", format!("timestep {v} out of range 0..{len}")))
            } else {
                Ok(r as usize)
            }
        })
        .collect()
}

/// `[B, D…]` -> `[B, D]` f64 on `device`, checking that the per-sample size is `dim`.
pub fn flatten_input(x: &Tensor, dim: usize, device: &Device) -> Result<Tensor> {
    if x.rank() < 2 {
        return Err(CoreError::Shape(format!("input must be [B, D…], got {:?}", x.dims())));
    }
    let b = x.dim(0)?;
    let per: usize = x.dims()[1..].iter().product();
    if per != dim {
        return Err(CoreError::Shape(format!(
            "input {:?} has {per} values per sample, expected {dim}",
            x.dims()
        )));
    }
    Ok(x.reshape((b, dim))?.to_dtype(DType::F64)?.to_device(device)?)
}

/// `[B, D]` f64 -> shape, device of `like`, f32.
pub fn restore_output(y: &Tensor, like: &Tensor) -> Result<Tensor> {
    Ok(y.to_dtype(DType::F32)?.to_device(like.device())?.reshape(like.dims())?)
}

/// Apply `f(rows, idx)` to each group of rows sharing a timestep and reassemble in order.
fn map_by_timestep(
    x: &Tensor,
    idx: &[usize],
    mut f: impl FnMut(&Tensor, usize) -> Result<Tensor>,
) -> Result<Tensor> {
    let b = idx.len();
    if b == 0 {
        return Ok(x.clone());
    }
    if idx.iter().all(|&i| i == idx[0]) {
        return f(x, idx[0]);
    }
    let device = x.device();
    let mut order: Vec<usize> = (0..b).collect();
    order.sort_by_key(|&r| idx[r]);
    let mut parts = Vec::new();
    let mut start = 0;
    while start < b {
        let i = idx[order[start]];
        let end = start + order[start..].iter().take_while(|&&r| idx[r] == i).count();
        let rows: Vec<u32> = order[start..end].iter().map(|&r| r as u32).collect();
        let rows = Tensor::from_vec(rows, end - start, device)?;
        parts.push(f(&x.index_select(&rows, 0)?, i)?);
        start = end;
    }
    let stacked = Tensor::cat(&parts, 0)?;
    let mut inverse = vec![0u32; b];
    for (pos, &r) in order.iter().enumerate() {
        inverse[r] = pos as u32;
    }
    Ok(stacked.index_select(&Tensor::from_vec(inverse, b, device)?, 0)?)
}

/// Rows of a `[N, D…]` tensor as f64 vectors.
pub(crate) fn tensor_rows(data: &Tensor) -> Result<Vec<Vec<f64>>> {
    if data.rank() < 2 {
        return Err(CoreError::Shape(format!("data must be [N, D…], got {:?}", data.dims())));
    }
    let n = data.dim(0)?;
    let d: usize = data.dims()[1..].iter().product();
    Ok(data.reshape((n, d))?.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.to_vec2::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestep_rounding_and_range() {
        let d = Device::Cpu;
        let t = Tensor::new(&[0.4f32, 2.6, 9.0], &d).unwrap();
        assert_eq!(timestep_indices(&t, 3, 10).unwrap(), vec![0, 3, 9]);
        for bad in [-0.6f32, 9.6, f32::NAN] {
            let t = Tensor::new(&[bad], &d).unwrap();
            assert!(timestep_indices(&t, 1, 10).is_err(), "{bad}");
        }
        assert!(timestep_indices(&Tensor::new(&[1f32, 2.0], &d).unwrap(), 3, 10).is_err());
    }

    #[test]
    fn grouping_preserves_row_order() {
        let d = Device::Cpu;
        let x = Tensor::new(&[[1f64], [2.0], [3.0], [4.0]], &d).unwrap();
        let y = map_by_timestep(&x, &[5, 1, 5, 2], |rows, i| Ok(rows.affine(10.0, i as f64)?)).unwrap();
        let got: Vec<f64> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, vec![15.0, 21.0, 35.0, 42.0]);
    }
}
