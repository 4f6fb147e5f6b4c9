//! Low-resolution image conditioning of a super-resolution model (Cascaded Diffusion Models,
//! Ho et al. 2021; seed 002 "Super Resolution: Cascaded Diffusion Models"):
//! ε_θ(z_t, t, x_s, s) with x the low-resolution image upsampled to the output size and x_s its
//! Gaussian augmentation at level s, given to the network as extra input channels.
//!
//! Layout of the conditioning channels (`C + 1` of them for `C`-channel data):
//! `[x_s (C channels), s (one constant channel)]`, concatenated after `z_t` on dim 1, so the
//! network takes `2C + 1` input channels and predicts `C`.

use crate::denoiser::Denoiser;
use crate::error::{CoreError, Result};
use crate::prediction::Prediction;
use candle_core::{DType, Tensor};

/// Channels of the conditioning of `c`-channel data: the augmented image and the level s.
pub fn cond_channels(c: usize) -> usize {
    c + 1
}

/// The low-resolution version of `x` (`[B, C, H, W]`): the mean of every `factor × factor`
/// block (area downsampling; `H` and `W` must be multiples of `factor`).
pub fn downsample_area(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if factor == 0 || h % factor != 0 || w % factor != 0 {
        return Err(CoreError::Shape(format!(
            "cannot downsample {h}×{w} images by {factor} (the factor must divide both sides)"
        )));
    }
    if factor == 1 {
        return Ok(x.clone());
    }
    Ok(x.avg_pool2d(factor)?)
}

/// The low-resolution images `low` (`[B, C, h, w]`) upsampled by `factor` to the model's input
/// size: bilinear with half-pixel centres (PyTorch's `align_corners=False`).
pub fn upsample_lowres(low: &Tensor, factor: usize) -> Result<Tensor> {
    let (_, _, h, w) = low.dims4()?;
    if factor == 0 {
        return Err(CoreError::invalid("factor", "must be >= 1"));
    }
    if factor == 1 {
        return Ok(low.clone());
    }
    Ok(low.contiguous()?.upsample_bilinear2d(h * factor, w * factor, false)?)
}

/// Gaussian conditioning augmentation: `x_s = √(1 − s²)·up + s·ε` per sample (variance
/// preserving, so s = 1 is pure noise), followed by the constant channel s:
/// returns `[B, C + 1, H, W]`. `levels` holds one s ∈ [0, 1] per row of `up`; `eps` has the
/// shape of `up`.
pub fn augment_condition(up: &Tensor, levels: &[f64], eps: &Tensor) -> Result<Tensor> {
    let (b, _, h, w) = up.dims4()?;
    if levels.len() != b {
        return Err(CoreError::Shape(format!("{} augmentation levels for a batch of {b}", levels.len())));
    }
    if eps.dims() != up.dims() {
        return Err(CoreError::Shape(format!("noise {:?} for images {:?}", eps.dims(), up.dims())));
    }
    if let Some(s) = levels.iter().find(|s| !(s.is_finite() && (0.0..=1.0).contains(*s))) {
        return Err(CoreError::invalid("aug_level", format!("must lie in [0, 1], got {s}")));
    }
    let dev = up.device();
    let col = |f: &dyn Fn(f64) -> f64| -> Result<Tensor> {
        let v: Vec<f32> = levels.iter().map(|&s| f(s) as f32).collect();
        Ok(Tensor::from_vec(v, (b, 1, 1, 1), dev)?)
    };
    let keep = col(&|s| (1.0 - s * s).sqrt())?;
    let noise = col(&|s| s)?;
    let xs = up
        .to_dtype(DType::F32)?
        .broadcast_mul(&keep)?
        .add(&eps.to_dtype(DType::F32)?.broadcast_mul(&noise)?)?;
    let s_channel = noise.broadcast_as((b, 1, h, w))?.contiguous()?;
    Ok(Tensor::cat(&[&xs, &s_channel], 1)?)
}

/// `[x_t, cond]` on the channel dimension. A batch of `x_t` that is a multiple `k` of the
/// conditioning's (classifier-free guidance stacks `[x; x]`) gets the conditioning repeated `k`
/// times.
pub fn concat_condition(x_t: &Tensor, cond: &Tensor) -> Result<Tensor> {
    let (b, bc) = (x_t.dim(0)?, cond.dim(0)?);
    if x_t.rank() != cond.rank() || x_t.dims()[2..] != cond.dims()[2..] || bc == 0 || b % bc != 0 {
        return Err(CoreError::Shape(format!(
            "conditioning {:?} does not fit a batch {:?} (same batch and spatial size expected)",
            cond.dims(),
            x_t.dims()
        )));
    }
    let cond = if b == bc { cond.clone() } else { Tensor::cat(&vec![cond; b / bc], 0)? };
    Ok(Tensor::cat(&[x_t, &cond.to_dtype(x_t.dtype())?], 1)?)
}

/// A super-resolution model with its conditioning fixed for one batch: `forward(x_t, t)` =
/// `model.forward([x_t, cond], t)`. The samplers see an ordinary denoiser of the output shape.
#[derive(Debug, Clone)]
pub struct ImageConditioned<D> {
    pub model: D,
    /// `[B, C + 1, H, W]` from [`augment_condition`], one row per sample of the batch.
    pub cond: Tensor,
}

impl<D: Denoiser> Denoiser for ImageConditioned<D> {
    fn prediction(&self) -> Prediction {
        self.model.prediction()
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        self.model.forward(&concat_condition(x_t, &self.cond)?, t)
    }
    fn forward_with_labels(&self, x_t: &Tensor, t: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
        self.model.forward_with_labels(&concat_condition(x_t, &self.cond)?, t, labels)
    }
    fn num_classes(&self) -> Option<usize> {
        self.model.num_classes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Returns its input's first channel (so the output has the data's shape) plus the mean of
    /// the conditioning channels, to check what the network sees.
    struct Probe;
    impl Denoiser for Probe {
        fn prediction(&self) -> Prediction {
            Prediction::Epsilon
        }
        fn forward(&self, x: &Tensor, _t: &Tensor) -> Result<Tensor> {
            let c = (x.dim(1)? - 1) / 2;
            let cond = x.narrow(1, c, c + 1)?.mean_keepdim(1)?;
            Ok(x.narrow(1, 0, c)?.broadcast_add(&cond)?)
        }
    }

    #[test]
    fn downsample_then_upsample_constant_blocks() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 16.0, &dev).unwrap().reshape((1, 1, 4, 4)).unwrap();
        let low = downsample_area(&x, 2).unwrap();
        // block means of [[0,1],[4,5]] = 2.5, [[2,3],[6,7]] = 4.5, …
        assert_eq!(low.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![2.5, 4.5, 10.5, 12.5]);
        assert!(downsample_area(&x, 3).is_err());
        let c = Tensor::full(0.25f32, (2, 1, 3, 3), &dev).unwrap();
        let up = upsample_lowres(&c, 2).unwrap();
        assert_eq!(up.dims(), &[2, 1, 6, 6]);
        let v = up.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|&a| (a - 0.25).abs() < 1e-7));
        // half-pixel bilinear doubling of a row [0, 1]: 0, .25, .75, 1
        let r = Tensor::new(&[[[[0f32, 1.0]]]], &dev).unwrap();
        let u = upsample_lowres(&r, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&u[..4], &[0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn augmentation_is_variance_preserving_with_level_channel() {
        let dev = Device::Cpu;
        let up = Tensor::full(0.6f32, (3, 1, 2, 2), &dev).unwrap();
        let eps = Tensor::full(1.0f32, (3, 1, 2, 2), &dev).unwrap();
        let c = augment_condition(&up, &[0.0, 0.6, 1.0], &eps).unwrap();
        assert_eq!(c.dims(), &[3, 2, 2, 2]);
        let v = c.flatten_all().unwrap().to_vec1::<f32>().unwrap(); // row i: 4 image values, 4 s values
        let want = [0.6, 0.8 * 0.6 + 0.6, 1.0];
        for (i, w) in want.iter().enumerate() {
            assert!((v[8 * i + 3] - w).abs() < 1e-6, "{i}: {} vs {w}", v[8 * i + 3]);
        }
        assert_eq!(&v[12..16], &[0.6f32; 4]);
        assert!(augment_condition(&up, &[0.0, 1.5, 0.0], &eps).is_err());
        assert!(augment_condition(&up, &[0.0, f64::NAN, 0.0], &eps).is_err());
        assert!(augment_condition(&up, &[0.0], &eps).is_err());
    }

    #[test]
    fn wrapper_concatenates_and_repeats_for_guidance_batches() {
        let dev = Device::Cpu;
        let cond = Tensor::new(&[[[[2f32]], [[4.0]]], [[[6.0]], [[8.0]]]], &dev).unwrap(); // [2, 2, 1, 1]
        let m = ImageConditioned { model: Probe, cond };
        let x = Tensor::new(&[[[[1f32]]], [[[1.0]]]], &dev).unwrap();
        let t = Tensor::zeros(2, DType::F32, &dev).unwrap();
        let out = m.forward(&x, &t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(out, vec![4.0, 8.0]);
        let x4 = Tensor::cat(&[&x, &x], 0).unwrap();
        let t4 = Tensor::zeros(4, DType::F32, &dev).unwrap();
        let out4 = m.forward(&x4, &t4).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(out4, vec![4.0, 8.0, 4.0, 8.0]);
        let x3 = Tensor::ones((3, 1, 1, 1), DType::F32, &dev).unwrap();
        assert!(m.forward(&x3, &Tensor::zeros(3, DType::F32, &dev).unwrap()).is_err());
    }
}
