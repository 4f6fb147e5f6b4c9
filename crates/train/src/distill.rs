//! Progressive distillation (Salimans & Ho 2022; seed 002 "Progressive Distillation") in σ-space,
//! for every method: the student D_θ learns in one DDIM step σ → σ'' what the teacher does in two
//! steps σ → σ' → σ'' on the nested grid (`rediffuse_core::sde::nested_karras_sigmas`) of twice
//! the student's steps. DDIM in σ-space is x̃' = D + (σ'/σ)(x̃ − D), so the student's target is
//! D̃ = (x̃'' − (σ''/σ)·x̃)/(1 − σ''/σ) (the teacher's x̃'' itself when σ'' = 0), with the truncated
//! SNR weight max(1/σ², 1).

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::run::{load_run, sigma_view, LoadedRun};
use candle_core::{Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;
use rediffuse_core::sde::nested_karras_sigmas;
use rediffuse_core::{Denoiser, Prediction};
use rediffuse_nn::DiffusionNet;
use rediffuse_sample::continuous::view::per_sample;
use rediffuse_sample::dispatch::SigmaSchedule;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[distill]` of a student run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// The teacher's run folder (its EMA weights; interpreted by the caller like `data`).
    pub teacher: String,
    /// Sampling steps of the student (the teacher takes twice as many).
    pub student_steps: usize,
    /// ρ of the nested grid.
    #[serde(default = "default_rho")]
    pub rho: f64,
}

fn default_rho() -> f64 {
    7.0
}

impl DistillConfig {
    pub fn validate(&self) -> Result<()> {
        if self.student_steps == 0 {
            return Err(TrainError::invalid("distill.student_steps", "must be >= 1"));
        }
        if !(self.rho.is_finite() && self.rho > 0.0) {
            return Err(TrainError::invalid("distill.rho", format!("must be > 0, got {}", self.rho)));
        }
        if self.teacher.trim().is_empty() {
            return Err(TrainError::invalid("distill.teacher", "must name the teacher's run folder"));
        }
        Ok(())
    }

    /// The σ grid the student samples on (its native schedule).
    pub fn schedule(&self) -> SigmaSchedule {
        SigmaSchedule::NestedKarras { rho: self.rho }
    }
}

/// A network in training mode seen as a [`Denoiser`] (dropout on; gradients flow to its weights).
pub struct TrainingNet<'a> {
    pub net: &'a dyn DiffusionNet,
    pub prediction: Prediction,
}

impl Denoiser for TrainingNet<'_> {
    fn prediction(&self) -> Prediction {
        self.prediction
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        Ok(self.net.forward(x_t, t, true)?)
    }
}

/// The frozen teacher of a student run and the 2N-step grid it walks.
pub struct Teacher {
    pub run: LoadedRun,
    /// σ₀ > … > σ_{2N − 1} > σ_{2N} = 0.
    pub grid: Vec<f64>,
}

impl Teacher {
    /// Load the teacher named by `config.distill` (EMA weights) onto `device`; it must be a run of
    /// the same method and network as the student.
    pub fn load(config: &TrainConfig, device: &Device) -> Result<Option<Self>> {
        let Some(d) = &config.distill else { return Ok(None) };
        d.validate()?;
        let run = load_run(Path::new(&d.teacher), true, device)?;
        if run.config.method != config.method || run.config.model != config.model {
            return Err(TrainError::invalid(
                "distill.teacher",
                format!("{} has another method or network than the student", d.teacher),
            ));
        }
        if run.config.super_res.is_some() || run.config.model.num_classes().is_some() {
            return Err(TrainError::invalid(
                "distill.teacher",
                "distillation supports unconditional runs only",
            ));
        }
        let f = run.frame()?;
        let grid = nested_karras_sigmas(2 * d.student_steps, f.sigma_min, f.sigma_max, d.rho)?;
        Ok(Some(Self { run, grid }))
    }

    /// Per-sample distillation loss `[B]` of the student `net` on the clean batch `x0`: for each
    /// example a student step k ~ U{0, …, N − 1} (σ = grid[2k], σ' = grid[2k+1], σ'' = grid[2k+2]),
    /// then the noise element by element, from `rng`.
    pub fn loss_per_sample<R: Rng + ?Sized>(
        &self,
        config: &TrainConfig,
        net: &dyn DiffusionNet,
        x0: &Tensor,
        rng: &mut R,
    ) -> Result<Tensor> {
        let b = x0.dim(0)?;
        let n = (self.grid.len() - 1) / 2;
        let ks: Vec<usize> = (0..b).map(|_| rng.random_range(0..n)).collect();
        let eps: Vec<f32> = (0..x0.elem_count()).map(|_| rng.sample(StandardNormal)).collect();
        let eps = Tensor::from_vec(eps, x0.shape(), x0.device())?;
        let at = |off: usize| -> Vec<f64> { ks.iter().map(|&k| self.grid[2 * k + off]).collect() };
        let (s0, s1, s2) = (at(0), at(1), at(2));
        let col = |v: &[f64]| per_sample(v, x0);
        let x = x0.add(&eps.broadcast_mul(&col(&s0)?)?)?;
        // the teacher's two DDIM steps (no gradient: its weights are plain tensors)
        let teacher = self.run.sigma_model()?;
        let ddim = |x: &Tensor, d: &Tensor, from: &[f64], to: &[f64]| -> Result<Tensor> {
            let r: Vec<f64> = from.iter().zip(to).map(|(a, b)| b / a).collect();
            Ok(d.add(&x.sub(d)?.broadcast_mul(&col(&r)?)?)?)
        };
        let d1 = teacher.denoise(&x, &s0)?.detach();
        let x1 = ddim(&x, &d1, &s0, &s1)?;
        let d2 = teacher.denoise(&x1, &s1)?.detach();
        let x2 = ddim(&x1, &d2, &s1, &s2)?;
        // D̃ = (x̃'' − r·x̃)/(1 − r), r = σ''/σ
        let r: Vec<f64> = s0.iter().zip(&s2).map(|(a, b)| b / a).collect();
        let inv: Vec<f64> = r.iter().map(|r| 1.0 / (1.0 - r)).collect();
        let target = x2.sub(&x.broadcast_mul(&col(&r)?)?)?.broadcast_mul(&col(&inv)?)?.detach();
        let student = sigma_view(
            &config.method,
            &self.run.schedule,
            TrainingNet { net, prediction: config.method.prediction() },
        )?;
        let d = student.denoise(&x, &s0)?;
        let w: Vec<f64> = s0.iter().map(|s| (1.0 / (s * s)).max(1.0)).collect();
        let mse = rediffuse_core::tensor_util::mean_flat(&d.sub(&target)?.sqr()?)?;
        Ok(mse.mul(&Tensor::from_vec(w.iter().map(|&v| v as f32).collect::<Vec<_>>(), b, x0.device())?)?)
    }
}
