//! The benchmark cases. Each case owns its (seeded) inputs and runs one timed repetition;
//! work that the PyTorch side also leaves out of the timing (building the loss before a
//! backward-only measurement) happens outside the timed region.

use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rediffuse_nn::ops;
use rediffuse_nn::unet::{Unet, UnetConfig};
use rediffuse_nn::DiffusionNet;

/// Batch size of every case (the setting).
pub const BATCH: usize = 64;

/// Names of all cases, in table order.
pub const CASES: &[&str] = &[
    "conv3x3_fwd",
    "conv3x3_bwd",
    "groupnorm_fwd",
    "groupnorm_bwd",
    "unet_forward",
    "unet_train_step",
    "digits_forward",
    "digits_train_step",
    "mnist_forward",
    "mnist_train_step",
];

fn uniform(dims: &[usize], seed: u64) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Ok(Tensor::from_vec(v, dims, &Device::Cpu)?)
}

/// The U-Net configurations: the 793,697-parameter network (GroupNorm with 8
/// groups) and the project's presets.
pub fn unet_config(prefix: &str) -> Result<UnetConfig> {
    Ok(match prefix {
        "unet" => UnetConfig { groups: 8, ..UnetConfig::speed_bench() },
        "digits" => UnetConfig::digits(),
        "mnist" => UnetConfig::mnist(),
        other => bail!("unknown U-Net `{other}`"),
    })
}

/// A U-Net with its optimiser and fixed inputs.
pub struct UnetCase {
    pub net: Unet,
    opt: AdamW,
    x: Tensor,
    t: Tensor,
    noise: Tensor,
}

impl UnetCase {
    pub fn new(cfg: &UnetConfig) -> Result<Self> {
        let varmap = VarMap::new();
        let net = Unet::new_seeded(cfg, &varmap, DType::F32, &Device::Cpu, 0)?;
        let opt = AdamW::new(varmap.all_vars(), ParamsAdamW { lr: 1e-4, ..Default::default() })?;
        let (c, s) = (cfg.in_channels, cfg.image_size);
        let x = uniform(&[BATCH, c, s, s], 1)?;
        let noise = uniform(&[BATCH, cfg.output_channels(), s, s], 2)?;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let t: Vec<f32> = (0..BATCH).map(|_| rng.random_range(0..1000u32) as f32).collect();
        let t = Tensor::from_vec(t, BATCH, &Device::Cpu)?;
        Ok(Self { net, opt, x, t, noise })
    }

    pub fn forward(&self) -> Result<f64> {
        let start = Instant::now();
        let y = self.net.forward(&self.x, &self.t, false)?.detach();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        drop(y);
        Ok(ms)
    }

    /// Forward, MSE against the noise, backward, AdamW update.
    pub fn train_step(&mut self) -> Result<f64> {
        let start = Instant::now();
        let pred = self.net.forward(&self.x, &self.t, true)?;
        let loss = (pred - &self.noise)?.sqr()?.mean_all()?;
        self.opt.backward_step(&loss)?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }

    /// Forward+backward, then the optimiser step alone (timing breakdown).
    pub fn optimiser_step(&mut self) -> Result<f64> {
        let pred = self.net.forward(&self.x, &self.t, true)?;
        let loss = (pred - &self.noise)?.sqr()?.mean_all()?;
        let grads = loss.backward()?;
        let start = Instant::now();
        self.opt.step(&grads)?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }

    /// Forward and backward only (timing breakdown).
    pub fn forward_backward(&self) -> Result<(f64, f64)> {
        let start = Instant::now();
        let pred = self.net.forward(&self.x, &self.t, true)?;
        let loss = (pred - &self.noise)?.sqr()?.mean_all()?;
        let fwd = start.elapsed().as_secs_f64() * 1e3;
        let g = loss.backward()?;
        let total = start.elapsed().as_secs_f64() * 1e3;
        drop(g);
        Ok((fwd, total - fwd))
    }
}

/// One benchmark case with its state.
pub enum Case {
    Conv { x: Var, w: Var, b: Var, r: Tensor, grad: bool },
    GroupNorm { x: Var, gamma: Var, beta: Var, r: Tensor, grad: bool },
    UnetForward(Box<UnetCase>),
    UnetTrain(Box<UnetCase>),
}

/// Shapes of the layer cases: 3×3 conv 64→64 and GroupNorm(8, 64) on 64×64×28×28.
const LAYER: [usize; 4] = [BATCH, 64, 28, 28];

impl Case {
    pub fn new(name: &str) -> Result<Self> {
        let var = |dims: &[usize], seed| -> Result<Var> { Ok(Var::from_tensor(&uniform(dims, seed)?)?) };
        Ok(match name {
            "conv3x3_fwd" | "conv3x3_bwd" => Case::Conv {
                x: var(&LAYER, 10)?,
                w: Var::from_tensor(&(uniform(&[64, 64, 3, 3], 11)? / 24.0)?)?,
                b: var(&[64], 12)?,
                r: uniform(&LAYER, 13)?,
                grad: name.ends_with("bwd"),
            },
            "groupnorm_fwd" | "groupnorm_bwd" => Case::GroupNorm {
                x: var(&LAYER, 20)?,
                gamma: Var::from_tensor(&uniform(&[64], 21)?.affine(0.5, 1.0)?)?,
                beta: var(&[64], 22)?,
                r: uniform(&LAYER, 23)?,
                grad: name.ends_with("bwd"),
            },
            _ => {
                let (prefix, kind) = name.rsplit_once('_').map_or((name, ""), |p| p);
                let (prefix, train) = match (prefix, kind) {
                    (p, "forward") => (p, false),
                    (p, "step") if p.ends_with("_train") => (&p[..p.len() - "_train".len()], true),
                    _ => bail!("unknown case `{name}`"),
                };
                let case = Box::new(UnetCase::new(&unet_config(prefix)?)?);
                if train {
                    Case::UnetTrain(case)
                } else {
                    Case::UnetForward(case)
                }
            }
        })
    }

    /// Runs one repetition and returns its time in milliseconds.
    pub fn run(&mut self) -> Result<f64> {
        match self {
            Case::Conv { x, w, b, r, grad } => {
                if !*grad {
                    let (x, w, b) = (x.as_tensor().detach(), w.as_tensor().detach(), b.as_tensor().detach());
                    let start = Instant::now();
                    let y = ops::conv2d(&x, &w, Some(&b), 1, 1)?;
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    drop(y);
                    return Ok(ms);
                }
                let y = ops::conv2d(x, w, Some(b), 1, 1)?;
                let loss = (y * &*r)?.sum_all()?;
                let start = Instant::now();
                let g = loss.backward()?;
                let ms = start.elapsed().as_secs_f64() * 1e3;
                drop(g);
                Ok(ms)
            }
            Case::GroupNorm { x, gamma, beta, r, grad } => {
                if !*grad {
                    let (x, g, b) =
                        (x.as_tensor().detach(), gamma.as_tensor().detach(), beta.as_tensor().detach());
                    let start = Instant::now();
                    let y = ops::group_norm(&x, &g, &b, 8, 1e-5, false)?;
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    drop(y);
                    return Ok(ms);
                }
                let y = ops::group_norm(x, gamma, beta, 8, 1e-5, false)?;
                let loss = (y * &*r)?.sum_all()?;
                let start = Instant::now();
                let g = loss.backward()?;
                let ms = start.elapsed().as_secs_f64() * 1e3;
                drop(g);
                Ok(ms)
            }
            Case::UnetForward(u) => u.forward(),
            Case::UnetTrain(u) => u.train_step(),
        }
    }

    /// Parameter count and configuration (U-Net cases) for the PyTorch side.
    pub fn describe(&self) -> Result<serde_json::Value> {
        Ok(match self {
            Case::UnetForward(u) | Case::UnetTrain(u) => serde_json::json!({
                "params": u.net.param_count(),
                "config": serde_json::to_value(u.net.config())?,
            }),
            _ => serde_json::json!({}),
        })
    }
}
