//! Classifier guidance (Dhariwal & Nichol 2021, Algorithm 1; seed 002 "Classifier Guidance"):
//! the score of p(x | y) ∝ p(x) p(y | x) is ∇log p(x; σ) + γ∇log p(y | x, σ), so in σ-space
//! D̃(x; σ) = D(x; σ) + γσ²∇ₓ log p_φ(y | x, σ) with a noise-conditioned classifier p_φ; the
//! gradient comes from candle's autograd. As a `SigmaDenoiser` it reaches every sampler (and
//! DDPM/DDIM through `DiscreteView`).

use candle_core::{DType, Tensor, Var};
use rediffuse_nn::classifier::Classifier;
use rediffuse_sample::continuous::{ContinuousError, SigmaDenoiser};
use std::rc::Rc;

/// A σ-space model guided towards `labels` (one per row of the batches it is given) by
/// `classifier` with scale γ = `scale`.
#[derive(Clone)]
pub struct ClassifierGuided<'a> {
    pub model: Rc<dyn SigmaDenoiser + 'a>,
    pub classifier: &'a Classifier,
    pub labels: Vec<u32>,
    pub scale: f64,
}

impl ClassifierGuided<'_> {
    /// ∇ₓ Σ_b log p_φ(y_b | x_b, σ_b) `[B, …]`.
    pub fn log_prob_grad(&self, x: &Tensor, sigma: &[f64]) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        let xv = Var::from_tensor(&x.detach().to_dtype(DType::F32)?)?;
        let logits = self
            .classifier
            .forward_at(xv.as_tensor(), sigma)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
            .logits;
        let k = logits.dim(1)?;
        let mut onehot = vec![0f32; b * k];
        for (i, &y) in self.labels.iter().enumerate() {
            onehot[i * k + y as usize] = 1.0;
        }
        let onehot = Tensor::from_vec(onehot, (b, k), x.device())?;
        let max = logits.max_keepdim(1)?.detach();
        let shifted = logits.broadcast_sub(&max)?;
        let log_z = shifted.exp()?.sum_keepdim(1)?.log()?;
        let log_p = shifted.broadcast_sub(&log_z)?.mul(&onehot)?.sum_all()?;
        let grads = log_p.backward()?;
        grads
            .get(xv.as_tensor())
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg("no classifier gradient".into()))
    }
}

impl SigmaDenoiser for ClassifierGuided<'_> {
    fn denoise(&self, x: &Tensor, sigma: &[f64]) -> Result<Tensor, ContinuousError> {
        let d = self.model.denoise(x, sigma)?;
        if self.labels.len() != x.dim(0)? {
            return Err(ContinuousError::Shape(format!(
                "classifier guidance has {} labels for a batch of {}",
                self.labels.len(),
                x.dim(0)?
            )));
        }
        // σ = 0 is the noise-free end: nothing to guide
        if self.scale == 0.0 || sigma.iter().all(|&s| s == 0.0) {
            return Ok(d);
        }
        let g = self.log_prob_grad(x, sigma)?;
        let w: Vec<f32> = sigma.iter().map(|s| (self.scale * s * s) as f32).collect();
        let mut shape = vec![w.len()];
        shape.extend(std::iter::repeat_n(1, x.rank() - 1));
        let w = Tensor::from_vec(w, shape, x.device())?;
        Ok(d.add(&g.broadcast_mul(&w)?.to_dtype(d.dtype())?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;
    use rediffuse_nn::classifier::ClassifierConfig;

    /// D(x; σ) = x/2 (any model will do).
    struct Half;
    impl SigmaDenoiser for Half {
        fn denoise(&self, x: &Tensor, _sigma: &[f64]) -> Result<Tensor, ContinuousError> {
            Ok(x.affine(0.5, 0.0)?)
        }
    }

    /// The autograd gradient of log p(y | x, σ) matches central finite differences, and the guided
    /// D is D + γσ²·∇log p (γ = 0: D itself).
    #[test]
    fn guided_denoiser_adds_the_classifier_gradient() {
        let dev = Device::Cpu;
        let cfg = ClassifierConfig {
            channels: vec![8],
            feature_dim: 16,
            noise_range: Some([0.01, 10.0]),
            ..ClassifierConfig::new(1, 8, 3)
        };
        let vm = VarMap::new();
        let clf = Classifier::new(&cfg, crate::init::SeededInit::var_builder(&vm, 3, &dev)).unwrap();
        let vals: Vec<f32> = (0..2 * 64).map(|i| ((i * 37 % 17) as f32 / 8.0 - 1.0) * 0.7).collect();
        let x = Tensor::from_vec(vals.clone(), (2, 1, 8, 8), &dev).unwrap();
        let sigma = [0.3, 1.5];
        let g = ClassifierGuided { model: Rc::new(Half), classifier: &clf, labels: vec![2, 0], scale: 2.0 };
        let grad: Vec<f32> = g.log_prob_grad(&x, &sigma).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let log_p = |v: &[f32]| -> f64 {
            let t = Tensor::from_vec(v.to_vec(), (2, 1, 8, 8), &dev).unwrap();
            let l: Vec<Vec<f32>> = clf.forward_at(&t, &sigma).unwrap().logits.to_vec2().unwrap();
            [(0usize, 2usize), (1, 0)]
                .iter()
                .map(|&(b, y)| {
                    let m = l[b].iter().fold(f32::MIN, |a, &v| a.max(v)) as f64;
                    let z: f64 = l[b].iter().map(|&v| (v as f64 - m).exp()).sum();
                    l[b][y] as f64 - m - z.ln()
                })
                .sum()
        };
        for i in [0usize, 9, 27, 64, 100, 127] {
            let h = 1e-2f32;
            let (mut up, mut dn) = (vals.clone(), vals.clone());
            up[i] += h;
            dn[i] -= h;
            let fd = (log_p(&up) - log_p(&dn)) / (2.0 * h as f64);
            assert!(
                (fd - grad[i] as f64).abs() < 2e-3 + 0.02 * fd.abs(),
                "pixel {i}: fd {fd} vs autograd {}",
                grad[i]
            );
        }
        let d: Vec<f32> = g.denoise(&x, &sigma).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for i in 0..128 {
            let s = sigma[i / 64];
            let want = 0.5 * vals[i] as f64 + 2.0 * s * s * grad[i] as f64;
            assert!((d[i] as f64 - want).abs() < 1e-4, "{i}");
        }
        let plain = ClassifierGuided { scale: 0.0, ..g.clone() };
        assert_eq!(
            plain.denoise(&x, &sigma).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vals.iter().map(|v| v * 0.5).collect::<Vec<_>>()
        );
        let wrong = ClassifierGuided { labels: vec![1], ..g };
        assert!(wrong.denoise(&x, &sigma).is_err());
    }
}
