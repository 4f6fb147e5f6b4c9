//! Latent diffusion (seed 000, "Latent Diffusion Models"): a diffusion model trained on the
//! latents z = s·(E(x) − shift) of a frozen KL autoencoder, sampled in latent space and decoded
//! by x = D(z/s + shift). The scale factor s (1/std of the training latents, computed by
//! `train-autoencoder`) makes the latents unit-variance, so the diffusion schedules designed for
//! data in [−1, 1] apply unchanged.
//!
//! A latent run keeps its own copy of the autoencoder in `RUN/vae/` (a diffusers `AutoencoderKL`
//! folder, as in a diffusers pipeline), so it samples and resumes without the original folder.

use crate::error::{Result, TrainError};
use candle_core::{Device, Tensor};
use rediffuse_nn::diffusers::{DiffusersFolder, CONFIG_FILE, WEIGHTS_FILE};
use rediffuse_nn::AutoencoderKl;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The autoencoder folder inside a latent run.
pub const VAE_DIR: &str = "vae";

/// Images encoded or decoded per forward pass.
const CHUNK: usize = 256;

/// `[latent]` of a run's config. The scale and shift are the autoencoder's own
/// (`scaling_factor`, `shift_factor` of its `config.json`), read from the run's `vae/` copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentConfig {
    /// The autoencoder folder the run was created from (the run then uses its copy in `RUN/vae/`).
    pub autoencoder: String,
}

/// A frozen autoencoder with its latent scaling: images ↔ diffusion-space latents.
pub struct LatentCodec {
    ae: AutoencoderKl,
    /// s of z = s·(E(x) − shift).
    scaling_factor: f64,
    shift_factor: f64,
}

impl LatentCodec {
    /// The autoencoder of the diffusers `AutoencoderKL` folder `dir`, with its own scale and shift.
    pub fn open(dir: &Path, device: &Device) -> Result<Self> {
        if !dir.join(WEIGHTS_FILE).exists() {
            return Err(TrainError::MissingFile(dir.join(WEIGHTS_FILE)));
        }
        let ae = DiffusersFolder::read(dir, device)?.autoencoder_kl()?;
        let (scaling_factor, shift_factor) =
            (ae.config().scaling_factor, ae.config().shift_factor.unwrap_or(0.0));
        let bad = |field: &str, v: f64| {
            TrainError::corrupt(
                dir.join(CONFIG_FILE),
                format!("{field} must be a positive finite number, got {v}"),
            )
        };
        if !(scaling_factor.is_finite() && scaling_factor > 0.0) {
            return Err(bad("scaling_factor", scaling_factor));
        }
        if !shift_factor.is_finite() {
            return Err(bad("shift_factor", shift_factor));
        }
        Ok(Self { ae, scaling_factor, shift_factor })
    }

    /// The codec of the latent run `run` (its `vae/` copy).
    pub fn of_run(run: &Path, device: &Device) -> Result<Self> {
        Self::open(&run.join(VAE_DIR), device)
    }

    pub fn scaling_factor(&self) -> f64 {
        self.scaling_factor
    }

    pub fn autoencoder(&self) -> &AutoencoderKl {
        &self.ae
    }

    /// The latent shape `[C_z, h, w]` of images of shape `[C, H, W]`, or an error naming both
    /// when the autoencoder does not take such images.
    pub fn latent_shape(&self, image: &[usize]) -> Result<Vec<usize>> {
        let c = self.ae.config();
        match image {
            &[ch, h, w] if ch == c.in_channels && h % (1 << (c.levels() - 1)) == 0 && w == h => {
                Ok(vec![c.latent_channels, c.latent_side(h), c.latent_side(w)])
            }
            other => Err(TrainError::Data(format!(
                "the autoencoder takes square {}-channel images with a side divisible by {}, the data are {other:?}",
                c.in_channels,
                1usize << (c.levels() - 1)
            ))),
        }
    }

    /// z = s·(μ(x) − shift) for images `x` `[N, C, H, W]` in [−1, 1]: the posterior mean (LDM's
    /// `mode()`), so a data set's latents are computed once and exactly reproduced on resume.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let (s, shift) = (self.scaling_factor, self.shift_factor);
        self.chunked(x, |b| Ok(self.ae.encode(b)?.mean.affine(s, -s * shift)?))
    }

    /// x = D(z/s + shift) for latents `z` `[N, C_z, h, w]`, clamped to the data range [−1, 1]
    /// (as diffusers' image post-processing does).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let (s, shift) = (self.scaling_factor, self.shift_factor);
        self.chunked(z, |b| Ok(self.ae.decode(&b.affine(1.0 / s, shift)?)?.clamp(-1f32, 1f32)?))
    }

    fn chunked(&self, x: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let n = x.dim(0)?;
        let x = x.to_dtype(candle_core::DType::F32)?;
        let mut parts = Vec::with_capacity(n.div_ceil(CHUNK));
        for start in (0..n).step_by(CHUNK) {
            parts.push(f(&x.narrow(0, start, CHUNK.min(n - start))?)?);
        }
        if parts.is_empty() {
            return Err(TrainError::Data("no images to encode or decode".into()));
        }
        Ok(Tensor::cat(&parts, 0)?)
    }
}

/// Copy the autoencoder folder `src` into the run `run` (`RUN/vae/`), written atomically.
pub fn install_vae(src: &Path, run: &Path) -> Result<PathBuf> {
    let dst = run.join(VAE_DIR);
    std::fs::create_dir_all(&dst).map_err(|e| TrainError::io(&dst, e))?;
    for name in [CONFIG_FILE, WEIGHTS_FILE] {
        let from = src.join(name);
        let bytes = std::fs::read(&from).map_err(|e| TrainError::io(&from, e))?;
        crate::fsutil::write_atomic(&dst.join(name), &bytes)?;
    }
    crate::fsutil::sync_dir(&dst)?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rediffuse_nn::AutoencoderKlConfig;

    fn small() -> AutoencoderKlConfig {
        AutoencoderKlConfig {
            in_channels: 1,
            out_channels: 1,
            down_block_types: vec!["DownEncoderBlock2D".into(); 2],
            up_block_types: vec!["UpDecoderBlock2D".into(); 2],
            block_out_channels: vec![8, 8],
            layers_per_block: 1,
            latent_channels: 2,
            norm_num_groups: 4,
            sample_size: 8,
            scaling_factor: 0.5,
            shift_factor: Some(0.25),
            ..AutoencoderKlConfig::default()
        }
    }

    #[test]
    fn scaling_and_shift_are_applied_and_inverted() {
        let dev = Device::Cpu;
        let vm = candle_nn::VarMap::new();
        let ae = AutoencoderKl::new_seeded(&small(), &vm, &dev, 3).unwrap();
        let codec = LatentCodec { ae, scaling_factor: 0.5, shift_factor: 0.25 };
        let x = Tensor::randn(0f32, 0.5, (300, 1, 8, 8), &dev).unwrap();
        assert_eq!(codec.latent_shape(&[1, 8, 8]).unwrap(), vec![2, 4, 4]);
        assert!(codec.latent_shape(&[3, 8, 8]).is_err());
        assert!(codec.latent_shape(&[1, 7, 7]).is_err());
        let z = codec.encode(&x).unwrap();
        assert_eq!(z.dims(), &[300, 2, 4, 4]);
        // z = s·(μ − shift), also across the chunk boundary at 256
        let mu = codec.ae.encode(&x).unwrap().mean;
        let want = mu.affine(0.5, -0.125).unwrap();
        let d = (&z - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-6, "{d}");
        // decode(z) = clamp(D(z/s + shift)) = clamp(D(μ))
        let rec = codec.decode(&z).unwrap();
        let want = codec.ae.decode(&mu).unwrap().clamp(-1f32, 1f32).unwrap();
        let d = (&rec - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn folders_with_bad_scaling_or_no_weights_are_refused() {
        let dev = Device::Cpu;
        let dir = std::env::temp_dir().join(format!("rediffuse-latent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(LatentCodec::open(&dir, &dev), Err(TrainError::MissingFile(_))));
        let vm = candle_nn::VarMap::new();
        let ae = AutoencoderKl::new_seeded(&small(), &vm, &dev, 3).unwrap();
        crate::autoencoder::save_diffusers_autoencoder(&dir, &ae, &vm).unwrap();
        let codec = LatentCodec::open(&dir, &dev).unwrap();
        assert_eq!((codec.scaling_factor, codec.shift_factor), (0.5, 0.25));
        let text = std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        for s in [0.0, -1.0] {
            json["scaling_factor"] = s.into();
            std::fs::write(dir.join(CONFIG_FILE), json.to_string()).unwrap();
            let err = LatentCodec::open(&dir, &dev).err().unwrap().to_string();
            assert!(err.contains("scaling_factor"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
