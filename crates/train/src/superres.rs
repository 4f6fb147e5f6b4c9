//! Super-resolution runs (Cascaded Diffusion Models; seed 002 "Super Resolution: Cascaded
//! Diffusion Models"): the network sees the training image's low-resolution version, upsampled
//! and Gaussian-augmented at a level s ~ U[0, `aug_max`], as extra input channels
//! (`rediffuse_core::superres`).

use crate::error::{Result, TrainError};
use candle_core::Tensor;
use rand::Rng;
use rand_distr::StandardNormal;
use rediffuse_core::superres::{augment_condition, downsample_area, upsample_lowres};
use rediffuse_nn::ModelConfig;
use serde::{Deserialize, Serialize};

/// `[super_res]` of a run's config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuperResConfig {
    /// Resolution ratio: the conditioning is the `factor × factor` block mean of the image
    /// (e.g. 2 for MNIST 14×14 → 28×28), bilinearly upsampled back.
    pub factor: usize,
    /// Training draws the augmentation level s ~ U[0, `aug_max`] per example (`aug_max` ∈ [0, 1]).
    #[serde(default = "default_aug_max")]
    pub aug_max: f64,
}

fn default_aug_max() -> f64 {
    0.5
}

/// Default augmentation level s₀ at sampling (CDM samples at a fixed small s₀ > 0).
pub const DEFAULT_AUG_LEVEL: f64 = 0.1;

impl SuperResConfig {
    pub fn new(factor: usize) -> Self {
        Self { factor, aug_max: default_aug_max() }
    }

    pub fn validate(&self, model: &ModelConfig) -> Result<()> {
        if self.factor < 2 {
            return Err(TrainError::invalid(
                "super_res.factor",
                format!("must be >= 2, got {}", self.factor),
            ));
        }
        if !(self.aug_max.is_finite() && (0.0..=1.0).contains(&self.aug_max)) {
            return Err(TrainError::invalid(
                "super_res.aug_max",
                format!("must lie in [0, 1], got {}", self.aug_max),
            ));
        }
        let ModelConfig::Unet(u) = model else {
            return Err(TrainError::invalid("model", "super-resolution needs a U-Net (--model unet)"));
        };
        let want = u.out_channels + rediffuse_core::superres::cond_channels(u.out_channels);
        if u.in_channels != want {
            return Err(TrainError::invalid(
                "model.in_channels",
                format!(
                    "a super-resolution U-Net of {} output channels takes {want} input channels \
                     (image, augmented low-res image, level), not {}",
                    u.out_channels, u.in_channels
                ),
            ));
        }
        if u.image_size % self.factor != 0 {
            return Err(TrainError::invalid(
                "super_res.factor",
                format!("{} does not divide the image size {}", self.factor, u.image_size),
            ));
        }
        Ok(())
    }

    /// The upsampled low-resolution version of every training image `[N, C, H, W]`
    /// (computed once per run, in chunks).
    pub fn upsampled_lowres(&self, data: &Tensor) -> Result<Tensor> {
        let n = data.dim(0)?;
        let mut parts = Vec::new();
        let chunk = 4096;
        for start in (0..n).step_by(chunk) {
            let x = data.narrow(0, start, chunk.min(n - start))?;
            parts.push(upsample_lowres(&downsample_area(&x, self.factor)?, self.factor)?);
        }
        Ok(Tensor::cat(&parts, 0)?.contiguous()?)
    }

    /// The conditioning of a training batch from its upsampled low-res images `up`: one level
    /// s ~ U[0, aug_max] per example, then the noise element by element, from `rng`.
    pub fn training_condition<R: Rng + ?Sized>(&self, up: &Tensor, rng: &mut R) -> Result<Tensor> {
        let b = up.dim(0)?;
        let levels: Vec<f64> = (0..b).map(|_| rng.random::<f64>() * self.aug_max).collect();
        let eps: Vec<f32> = (0..up.elem_count()).map(|_| rng.sample(StandardNormal)).collect();
        let eps = Tensor::from_vec(eps, up.shape(), up.device())?;
        Ok(augment_condition(up, &levels, &eps)?)
    }
}

/// The seed of the conditioning noise of a sampling run seeded with `seed` (its own streams, so
/// the sampler's noise is the same with and without conditioning).
pub fn aug_noise_seed(seed: u64) -> u64 {
    seed ^ crate::rng::fnv1a64(b"superres-aug")
}

/// The conditioning at sampling of the low-resolution images `low` (`[B, C, h, w]`, samples
/// `first_index..` of a run seeded with `seed`): upsampled by `factor`, augmented at the fixed
/// level `aug_level` with noise from sample k's own stream ([`aug_noise_seed`]).
pub fn sampling_condition(
    low: &Tensor,
    factor: usize,
    aug_level: f64,
    seed: u64,
    first_index: u64,
) -> Result<Tensor> {
    let up = upsample_lowres(&low.to_dtype(candle_core::DType::F32)?, factor)?;
    let b = up.dim(0)?;
    let mut noise = rediffuse_core::NoiseSource::new(aug_noise_seed(seed), first_index, b);
    let eps = noise.randn(&up.dims()[1..], up.device())?;
    Ok(augment_condition(&up, &vec![aug_level; b], &eps)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;
    use rediffuse_nn::unet::UnetConfig;

    fn sr_unet(out: usize, inp: usize) -> ModelConfig {
        ModelConfig::Unet(UnetConfig { in_channels: inp, out_channels: out, ..UnetConfig::speed_bench() })
    }

    #[test]
    fn validation_names_the_field() {
        let ok = sr_unet(1, 3);
        SuperResConfig::new(2).validate(&ok).unwrap();
        let err = |c: SuperResConfig, m: &ModelConfig| c.validate(m).unwrap_err().to_string();
        assert!(err(SuperResConfig::new(1), &ok).contains("factor"));
        assert!(err(SuperResConfig::new(3), &ok).contains("does not divide"));
        assert!(err(SuperResConfig { factor: 2, aug_max: 1.5 }, &ok).contains("aug_max"));
        assert!(err(SuperResConfig { factor: 2, aug_max: f64::NAN }, &ok).contains("aug_max"));
        assert!(err(SuperResConfig::new(2), &sr_unet(1, 2)).contains("in_channels"));
        let mlp = ModelConfig::Mlp(rediffuse_nn::MlpConfig::new(4));
        assert!(err(SuperResConfig::new(2), &mlp).contains("U-Net"));
    }

    #[test]
    fn training_condition_levels_stay_below_aug_max() {
        let dev = Device::Cpu;
        let data = Tensor::randn(0f32, 1.0, (5, 1, 4, 4), &dev).unwrap();
        let sr = SuperResConfig { factor: 2, aug_max: 0.3 };
        let up = sr.upsampled_lowres(&data).unwrap();
        assert_eq!(up.dims(), &[5, 1, 4, 4]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let c = sr.training_condition(&up, &mut rng).unwrap();
        assert_eq!(c.dims(), &[5, 2, 4, 4]);
        let s: Vec<f32> = c.narrow(1, 1, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!(s.iter().all(|&v| (0.0..0.3).contains(&v)));
        // the level channel is constant per example
        for k in 0..5 {
            assert!(s[16 * k..16 * (k + 1)].iter().all(|&v| v == s[16 * k]));
        }
    }

    #[test]
    fn sampling_condition_is_per_sample() {
        let dev = Device::Cpu;
        let low = Tensor::randn(0f32, 1.0, (4, 1, 3, 3), &dev).unwrap();
        let all = sampling_condition(&low, 2, 0.2, 7, 0).unwrap();
        let tail = sampling_condition(&low.narrow(0, 2, 2).unwrap(), 2, 0.2, 7, 2).unwrap();
        let d = all.narrow(0, 2, 2).unwrap().sub(&tail).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        let zero = sampling_condition(&low, 2, 0.0, 7, 0).unwrap();
        let up = upsample_lowres(&low, 2).unwrap();
        let d0 = zero.narrow(1, 0, 1).unwrap().sub(&up).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d0.to_scalar::<f32>().unwrap(), 0.0);
    }
}
