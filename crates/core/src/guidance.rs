//! Classifier-free guidance (Ho & Salimans 2022; seed 002 "Classifier-Free Guidance") as a
//! wrapper around a class-conditional [`Denoiser`], so that every sampler runs guided without
//! knowing it (as k-diffusion's `CFGDenoiser` and diffusers' pipelines do).

use crate::denoiser::Denoiser;
use crate::error::{CoreError, Result};
use crate::prediction::Prediction;
use candle_core::{DType, Tensor};

/// f̃(x, t) = (1 − w)·f(x, t, ∅) + w·f(x, t, y) = f(x, t, ∅) + w·(f(x, t, y) − f(x, t, ∅)), with
/// f the wrapped model's raw output (ε, x₀, v, score or EDM's F: every conversion to D is affine
/// in f with the same coefficients for both terms, so this is guidance of D and of the score
/// alike). `w` = 0 is the unconditional model, 1 the conditional one, > 1 guided. Both terms
/// come from one batched forward pass of `[x; x]` with labels `[y; ∅]`. For learned-variance
/// outputs (twice the channels of `x`) only the mean half is guided; the variance half is the
/// conditional model's (GLIDE).
#[derive(Debug, Clone)]
pub struct ClassifierFreeGuidance<D> {
    pub model: D,
    /// `[B]` u32 labels in `0..num_classes`, one per row of the batches the samplers pass.
    pub labels: Tensor,
    pub scale: f64,
}

impl<D: Denoiser> ClassifierFreeGuidance<D> {
    /// Guide `model` towards `labels` with scale `scale` (finite, ≥ 0).
    pub fn new(model: D, labels: &[u32], scale: f64, device: &candle_core::Device) -> Result<Self> {
        let k = model.num_classes().ok_or_else(|| {
            CoreError::invalid("guidance", "classifier-free guidance needs a class-conditional model")
        })?;
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(CoreError::invalid(
                "guidance_scale",
                format!("must be a finite number >= 0, got {scale}"),
            ));
        }
        if let Some(bad) = labels.iter().find(|&&y| y as usize >= k) {
            return Err(CoreError::invalid("class", format!("{bad} is out of range 0..{k}")));
        }
        let labels = Tensor::from_slice(labels, labels.len(), device)?;
        Ok(Self { model, labels, scale })
    }
}

impl<D: Denoiser> Denoiser for ClassifierFreeGuidance<D> {
    fn prediction(&self) -> Prediction {
        self.model.prediction()
    }

    fn forward(&self, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        let b = x_t.dim(0)?;
        if self.labels.dims() != [b] {
            return Err(CoreError::Shape(format!(
                "guidance has {} labels for a batch of {b}",
                self.labels.dim(0)?
            )));
        }
        let k = self.model.num_classes().unwrap_or(0) as u32;
        let null = Tensor::from_vec(vec![k; b], b, x_t.device())?;
        let labels = Tensor::cat(&[&self.labels.to_dtype(DType::U32)?, &null], 0)?;
        let out = self.model.forward_with_labels(
            &Tensor::cat(&[x_t, x_t], 0)?,
            &Tensor::cat(&[t, t], 0)?,
            Some(&labels),
        )?;
        let (cond, uncond) = (out.narrow(0, 0, b)?, out.narrow(0, b, b)?);
        let w = self.scale;
        let mix = |c: &Tensor, u: &Tensor| -> Result<Tensor> {
            Ok(u.affine(1.0 - w, 0.0)?.add(&c.affine(w, 0.0)?)?)
        };
        let c = x_t.dims().get(1).copied().unwrap_or(1);
        if out.rank() >= 2 && out.dim(1)? == 2 * c && x_t.dims()[1..] != out.dims()[1..] {
            let mean = mix(&cond.narrow(1, 0, c)?, &uncond.narrow(1, 0, c)?)?;
            return Ok(Tensor::cat(&[&mean, &cond.narrow(1, c, c)?], 1)?);
        }
        mix(&cond, &uncond)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// f(x, t, y) = x·(1 + y) + t (labels 0..3, null label 3); learned-variance variant doubles
    /// the channels with a label-dependent second half.
    struct Toy {
        learned: bool,
    }

    impl Denoiser for Toy {
        fn prediction(&self) -> Prediction {
            Prediction::Epsilon
        }
        fn forward(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
            self.forward_with_labels(x, t, None)
        }
        fn forward_with_labels(&self, x: &Tensor, t: &Tensor, labels: Option<&Tensor>) -> Result<Tensor> {
            let b = x.dim(0)?;
            let y = match labels {
                Some(l) => l.to_dtype(DType::F32)?,
                None => Tensor::full(3f32, b, x.device())?,
            };
            let out =
                x.broadcast_mul(&y.affine(1.0, 1.0)?.reshape((b, 1))?)?.broadcast_add(&t.reshape((b, 1))?)?;
            if self.learned {
                let var = x.broadcast_mul(&y.affine(-1.0, 0.0)?.reshape((b, 1))?)?;
                return Ok(Tensor::cat(&[&out, &var], 1)?);
            }
            Ok(out)
        }
        fn num_classes(&self) -> Option<usize> {
            Some(3)
        }
    }

    fn rows(t: &Tensor) -> Vec<Vec<f32>> {
        t.to_vec2().unwrap()
    }

    #[test]
    fn guidance_mixes_conditional_and_unconditional() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, -2.0], [0.5, 3.0], [-1.0, 0.25]], &dev).unwrap();
        let t = Tensor::new(&[10f32, 20.0, 30.0], &dev).unwrap();
        let labels = [0u32, 2, 1];
        let y = Tensor::new(&labels, &dev).unwrap();
        let cond = Toy { learned: false }.forward_with_labels(&x, &t, Some(&y)).unwrap();
        let uncond = Toy { learned: false }.forward(&x, &t).unwrap();
        let at = |w: f64| {
            let g = ClassifierFreeGuidance::new(Toy { learned: false }, &labels, w, &dev).unwrap();
            g.forward(&x, &t).unwrap()
        };
        // w = 1 is the conditional model and w = 0 the unconditional one, bit for bit
        assert_eq!(rows(&at(1.0)), rows(&cond));
        assert_eq!(rows(&at(0.0)), rows(&uncond));
        // w = 3: u + 3(c − u)
        let want = uncond.add(&cond.sub(&uncond).unwrap().affine(3.0, 0.0).unwrap()).unwrap();
        for (a, b) in rows(&at(3.0)).iter().flatten().zip(rows(&want).iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn learned_variance_half_is_the_conditional_one() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32], [2.0]], &dev).unwrap();
        let t = Tensor::new(&[0f32, 0.0], &dev).unwrap();
        let labels = [1u32, 0];
        let g = ClassifierFreeGuidance::new(Toy { learned: true }, &labels, 2.0, &dev).unwrap();
        let out = rows(&g.forward(&x, &t).unwrap());
        // mean: u + 2(c − u) with u = 4x, c = (1 + y)x; variance half: −y·x (conditional)
        assert_eq!(out, vec![vec![0.0, -1.0], vec![-4.0, 0.0]]);
    }

    #[test]
    fn bad_guidance_is_an_error() {
        let dev = Device::Cpu;
        struct Plain;
        impl Denoiser for Plain {
            fn prediction(&self) -> Prediction {
                Prediction::Epsilon
            }
            fn forward(&self, x: &Tensor, _t: &Tensor) -> Result<Tensor> {
                Ok(x.clone())
            }
        }
        assert!(ClassifierFreeGuidance::new(Plain, &[0], 1.0, &dev).is_err());
        assert!(ClassifierFreeGuidance::new(Toy { learned: false }, &[3], 1.0, &dev).is_err());
        assert!(ClassifierFreeGuidance::new(Toy { learned: false }, &[0], f64::NAN, &dev).is_err());
        assert!(ClassifierFreeGuidance::new(Toy { learned: false }, &[0], -1.0, &dev).is_err());
        let g = ClassifierFreeGuidance::new(Toy { learned: false }, &[0, 1], 2.0, &dev).unwrap();
        let x = Tensor::zeros((3, 2), DType::F32, &dev).unwrap();
        assert!(g.forward(&x, &Tensor::zeros(3, DType::F32, &dev).unwrap()).is_err());
        // an unconditional model refuses labels
        let y = Tensor::new(&[0u32], &dev).unwrap();
        let one = Tensor::zeros((1, 2), DType::F32, &dev).unwrap();
        assert!(Plain
            .forward_with_labels(&one, &Tensor::zeros(1, DType::F32, &dev).unwrap(), Some(&y))
            .is_err());
    }
}
