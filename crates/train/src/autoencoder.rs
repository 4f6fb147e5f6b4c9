//! Training the KL autoencoder of latent diffusion (seed 000 § Latent Diffusion):
//! minimise `mean (x − D(z))² + kl_weight · KL(q(z|x) ‖ N(0, I)) / pixels`, z ~ q(z|x) by
//! reparameterisation, with AdamW; then the latent scale factor `1 / std(z)` over the data
//! (Rombach et al. §4.3.2's rescaling), saved as diffusers' `scaling_factor`. The result is
//! written as a diffusers `AutoencoderKL` folder (`config.json` +
//! `diffusion_pytorch_model.safetensors`), which diffusers and `rediffuse_nn::diffusers` load.

use crate::error::{Result, TrainError};
use crate::optim::{AdamW, AdamWConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rediffuse_nn::diffusers::{CONFIG_FILE, WEIGHTS_FILE};
use rediffuse_nn::{AutoencoderKl, AutoencoderKlConfig};
use std::path::Path;

/// Optimisation settings of [`train_autoencoder`].
#[derive(Debug, Clone)]
pub struct AeTrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Weight of the KL term (per latent value, relative to the per-pixel squared error).
    pub kl_weight: f64,
    pub seed: u64,
}

/// One logged step: reconstruction MSE and KL per sample.
#[derive(Debug, Clone, Copy)]
pub struct AeStep {
    pub step: usize,
    pub mse: f64,
    pub kl: f64,
}

fn check(c: &AeTrainConfig) -> Result<()> {
    if c.steps == 0 || c.batch_size == 0 {
        return Err(TrainError::invalid("steps", "steps and batch_size must be > 0"));
    }
    if !(c.lr.is_finite() && c.lr > 0.0) {
        return Err(TrainError::invalid("lr", format!("must be > 0, got {}", c.lr)));
    }
    if !(c.kl_weight.is_finite() && c.kl_weight >= 0.0) {
        return Err(TrainError::invalid("kl_weight", format!("must be >= 0, got {}", c.kl_weight)));
    }
    Ok(())
}

fn nn_err(e: impl std::fmt::Display) -> TrainError {
    TrainError::invalid("autoencoder", e.to_string())
}

/// Train on `data` `[N, C, H, W]` (values in [−1, 1]); `on_step` sees every step's losses.
/// Returns the autoencoder (its config's `scaling_factor` set from the data) and its variables.
pub fn train_autoencoder(
    cfg: &AutoencoderKlConfig,
    data: &Tensor,
    tc: &AeTrainConfig,
    mut on_step: impl FnMut(AeStep),
) -> Result<(AutoencoderKl, VarMap)> {
    check(tc)?;
    let dev = data.device().clone();
    let n = data.dim(0)?;
    let varmap = VarMap::new();
    let ae = AutoencoderKl::new_seeded(cfg, &varmap, &dev, tc.seed).map_err(nn_err)?;
    let params = crate::init::sorted_params(&varmap);
    let mut opt = AdamW::new(params, AdamWConfig::default())?;
    let mut rng = ChaCha8Rng::seed_from_u64(tc.seed ^ 0xae);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut pos = n;
    for step in 1..=tc.steps {
        let b = tc.batch_size.min(n);
        if pos + b > n {
            order.shuffle(&mut rng);
            pos = 0;
        }
        let idx = Tensor::from_slice(&order[pos..pos + b], b, &dev)?;
        pos += b;
        let x = data.index_select(&idx, 0)?.to_dtype(DType::F32)?;
        let q = ae.encode(&x).map_err(nn_err)?;
        let noise = standard_normal(&mut rng, q.mean.dims(), &dev)?;
        let xr = ae.decode(&q.sample(&noise)?).map_err(nn_err)?;
        let mse = (&xr - &x)?.sqr()?.mean_all()?;
        let kl = q.kl()?;
        let pixels = (x.elem_count() / b) as f64;
        let loss = (&mse + kl.affine(tc.kl_weight / pixels, 0.0)?)?;
        let (m, k) = (mse.to_scalar::<f32>()? as f64, kl.to_scalar::<f32>()? as f64);
        if !(m.is_finite() && k.is_finite()) {
            return Err(TrainError::invalid("lr", format!("the loss diverged at step {step} (lower lr)")));
        }
        opt.step(&loss.backward()?, tc.lr, 1.0)?;
        on_step(AeStep { step, mse: m, kl: k });
    }
    // latent scale: 1 / std of z ~ q(z|x) over (up to 2048 of) the data
    let m = n.min(2048);
    let mut zs = Vec::new();
    for start in (0..m).step_by(256) {
        let x = data.narrow(0, start, 256.min(m - start))?.to_dtype(DType::F32)?;
        let q = ae.encode(&x).map_err(nn_err)?;
        let noise = standard_normal(&mut rng, q.mean.dims(), &dev)?;
        zs.extend(q.sample(&noise)?.flatten_all()?.to_vec1::<f32>()?);
    }
    let mean = zs.iter().map(|&v| v as f64).sum::<f64>() / zs.len() as f64;
    let var = zs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / zs.len() as f64;
    let mut cfg = cfg.clone();
    cfg.scaling_factor = 1.0 / var.sqrt().max(1e-8);
    let ae = AutoencoderKl::new(&cfg, candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &dev))
        .map_err(nn_err)?;
    Ok((ae, varmap))
}

/// Write `ae` as a diffusers `AutoencoderKL` folder `dir` (created; an existing config or weights
/// file is not overwritten).
pub fn save_diffusers_autoencoder(dir: &Path, ae: &AutoencoderKl, varmap: &VarMap) -> Result<()> {
    for f in [CONFIG_FILE, WEIGHTS_FILE] {
        if dir.join(f).exists() {
            return Err(TrainError::invalid(
                "out",
                format!("{} exists; not overwriting it", dir.join(f).display()),
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let mut json =
        serde_json::to_value(ae.config()).map_err(|e| TrainError::invalid("config", e.to_string()))?;
    json["_class_name"] = "AutoencoderKL".into();
    let text =
        serde_json::to_string_pretty(&json).map_err(|e| TrainError::invalid("config", e.to_string()))?;
    let tensors: std::collections::HashMap<String, Tensor> =
        crate::init::sorted_params(varmap).into_iter().map(|(k, v)| (k, v.as_tensor().detach())).collect();
    let weights = dir.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &weights).map_err(|e| TrainError::corrupt(&weights, e))?;
    let cfg_path = dir.join(CONFIG_FILE);
    std::fs::write(&cfg_path, text).map_err(|e| TrainError::io(&cfg_path, e))?;
    Ok(())
}

fn standard_normal(rng: &mut ChaCha8Rng, shape: &[usize], dev: &Device) -> candle_core::Result<Tensor> {
    use rand::Rng;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal)).collect();
    Tensor::from_vec(v, shape, dev)
}
