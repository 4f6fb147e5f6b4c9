//! Training objectives, one per [`Method`]: each turns a clean batch x₀ into a per-sample loss
//! `[B]` of the network, drawing all its randomness (timesteps / noise levels, noise) from the
//! trainer's checkpointed generator in a fixed order, so a resumed run repeats exactly.
//!
//! The network's time input (model time) per method, shared with sampling through
//! [`sampling_time_input`] and `LoadedRun::sigma_model`:
//! * DDPM, iDDPM: timestep index i (DDPM Eq. 14, Algorithm 1);
//! * NCSN: level index counted from the smallest σ, τ = (L − 1)·ln(σ/σ_L)/ln(σ₁/σ_L) — an
//!   integer at the trained levels, and between them linear in ln σ (so samplers other than
//!   annealed Langevin can query any σ ∈ [σ_L, σ₁]); equal to `TimeInput::Scaled { scale: L − 1 }`
//!   on the VE SDE σ(t) = σ_L(σ₁/σ_L)^t;
//! * score SDE: 999·t ([`SDE_TIME_SCALE`]);
//! * EDM: c_noise(σ) = ¼ ln σ, input scaled by c_in(σ) (Karras et al. 2022, Table 1).

use crate::config::{ColdConfig, Coupling, FlowConfig, Method};
use crate::error::{Result, TrainError};
use crate::iddpm::{self, IddpmConfig, ImportanceSampler};
use candle_core::{Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;
use rediffuse_core::loss::{l_simple_per_sample, q_sample};
use rediffuse_core::sde::{geometric_sigmas, EdmConfig, Sde};
use rediffuse_core::tensor_util::timesteps_tensor;
use rediffuse_core::{DiffusionSchedule, Prediction};
use rediffuse_nn::DiffusionNet;
use rediffuse_sample::continuous::losses::{
    dsm_loss, edm_loss, edm_training_pair, ncsn_perturb, sde_perturb,
};
use rediffuse_sample::continuous::{TimeInput, FLOW_TIME_SCALE};

/// Score-SDE networks receive 999·t as their time input (Song et al. 2021's DDPM++ models), so a
/// sinusoidal embedding sized for T = 1000 DDPM indices covers t ∈ [0, 1].
pub const SDE_TIME_SCALE: f64 = 999.0;

/// NCSN model time of noise level `sigma` for levels σ₁ = `sigma_max` > … > σ_L = `sigma_min`:
/// τ = (L − 1)·ln(σ/σ_L)/ln(σ₁/σ_L) (σ_L ↦ 0, σ₁ ↦ L − 1; not clamped).
pub fn ncsn_model_time(sigma_max: f64, sigma_min: f64, levels: usize, sigma: f64) -> f64 {
    (levels as f64 - 1.0) * (sigma / sigma_min).ln() / (sigma_max / sigma_min).ln()
}

/// How a continuous method's network sees time when wrapped in `ContinuousModel` for sampling
/// (`None` for DDPM, which uses `DiscreteModel`, and EDM, which uses `EdmPrecond`).
pub fn sampling_time_input(method: &Method) -> Option<TimeInput> {
    match method {
        Method::Ncsn { levels, .. } => Some(TimeInput::Scaled { scale: *levels as f64 - 1.0 }),
        Method::ScoreSde { .. } => Some(TimeInput::Scaled { scale: SDE_TIME_SCALE }),
        Method::Ddpm { .. }
        | Method::Iddpm { .. }
        | Method::Edm(_)
        | Method::Flow(_)
        | Method::Consistency(_)
        | Method::Cold(_) => None,
    }
}

/// The loss of one method, with its precomputed constants.
#[derive(Debug, Clone)]
pub enum Objective {
    /// L_simple (DDPM Eq. 14) on the target of `prediction`, i ~ U{0, …, T − 1}.
    Ddpm { schedule: DiffusionSchedule, prediction: Prediction },
    /// iDDPM (seed 002): L_hybrid = L_simple + λ·T·L_t (stop-gradient on μ_θ inside L_t) or
    /// T·L_t alone, from the network's `[B, 2C, …]` output ([`iddpm::iddpm_loss`]); t uniform or
    /// importance-sampled ([`iddpm::draw_timesteps`]).
    Iddpm { schedule: DiffusionSchedule, prediction: Prediction, config: IddpmConfig },
    /// Multi-σ DSM in ε form (Song & Ermon 2019, Eq. 5–6 with λ(σ) = σ²): level j ~ U{0, …, L − 1},
    /// x̃ = x₀ + σ_j·z, loss = mean((ε_θ(x̃, τ_j) − z)²) = σ_j²·‖s_θ + z/σ_j‖²/d with s_θ = −ε_θ/σ_j.
    /// `sigmas` are descending (σ₁ first).
    Ncsn { sigmas: Vec<f64> },
    /// Continuous-time DSM (Song et al. 2021, Eq. 7 with λ(t) = s(t)²): t ~ U[ε, 1],
    /// x_t = m(t)x₀ + s(t)z, network at 999·t.
    ScoreSde { sde: Sde, prediction: Prediction, eps: f64 },
    /// EDM (Karras et al. 2022, Eq. 2, 7, 8): ln σ ~ N(P_mean, P_std²),
    /// loss = λ(σ)·mean((D_θ(x₀ + σn; σ) − x₀)²) written on the raw network F.
    Edm(EdmConfig),
    /// Flow matching (`rediffuse_core::flow`): t ~ U[0, 1], noise z (or the run's fixed couplings
    /// of reflow), optionally re-paired by minibatch OT, loss = mean((v_θ(x_t, 999·t) − u)²).
    Flow(FlowConfig),
    /// Consistency models: the loss needs the target network and step count the trainer holds
    /// (`crate::consistency::ConsistencyState::loss_per_sample`); here it is an error.
    Consistency,
    /// Cold diffusion: t ~ U{1, …, T}, x_t = D(x₀, t) (+ noise·z), loss = mean |R(x_t, t) − x₀|.
    Cold(ColdConfig),
}

impl Objective {
    pub fn new(method: &Method) -> Result<Self> {
        method.validate()?;
        Ok(match method {
            Method::Ddpm { prediction, .. } => {
                Objective::Ddpm { schedule: method.schedule()?, prediction: *prediction }
            }
            Method::Iddpm { prediction, iddpm, .. } => Objective::Iddpm {
                schedule: method.schedule()?,
                prediction: *prediction,
                config: iddpm.clone(),
            },
            Method::Ncsn { sigma_max, sigma_min, levels } => {
                Objective::Ncsn { sigmas: geometric_sigmas(*sigma_max, *sigma_min, *levels)? }
            }
            Method::ScoreSde { sde, prediction, eps } => {
                Objective::ScoreSde { sde: *sde, prediction: *prediction, eps: *eps }
            }
            Method::Edm(c) => Objective::Edm(*c),
            Method::Flow(c) => Objective::Flow(*c),
            Method::Consistency(_) => Objective::Consistency,
            Method::Cold(c) => Objective::Cold(*c),
        })
    }

    /// The importance sampler of this objective's state (iDDPM with `importance_sampling`), empty
    /// at the start of a run; `None` for every other objective.
    pub fn new_sampler(&self) -> Result<Option<ImportanceSampler>> {
        match self {
            Objective::Iddpm { schedule, config, .. } => iddpm::new_sampler(config, schedule.len()),
            _ => Ok(None),
        }
    }

    /// The scalar loss of one training step on the clean batch `x0`.
    ///
    /// iDDPM: timesteps and weights from [`iddpm::draw_timesteps`] (with `sampler`: one uniform
    /// f64 per sample, inverted through the CDF of p_t; without: `random_range(0..T)` per sample,
    /// as DDPM), then ε element by element from `rng`; the loss is mean_b(w_b·loss_b) and the
    /// unweighted per-sample losses are added to `sampler`'s history
    /// ([`iddpm::batch_loss`]). Every other objective: the batch mean of
    /// [`Objective::loss_per_sample`] (`sampler` must be `None`).
    pub fn batch_loss<R: Rng + ?Sized>(
        &self,
        net: &dyn DiffusionNet,
        x0: &Tensor,
        rng: &mut R,
        sampler: Option<&mut ImportanceSampler>,
    ) -> Result<Tensor> {
        self.batch_loss_with_labels(net, x0, None, rng, sampler)
    }

    /// [`Objective::batch_loss`] of a class-conditional network given the batch's labels
    /// (`[B]` u32; the null label for the rows dropped for classifier-free guidance).
    pub fn batch_loss_with_labels<R: Rng + ?Sized>(
        &self,
        net: &dyn DiffusionNet,
        x0: &Tensor,
        labels: Option<&Tensor>,
        rng: &mut R,
        sampler: Option<&mut ImportanceSampler>,
    ) -> Result<Tensor> {
        self.batch_loss_paired(net, x0, labels, None, rng, sampler)
    }

    /// [`Objective::batch_loss_with_labels`] with flow matching's fixed noise couplings `noise`
    /// (see [`Objective::loss_per_sample_paired`]).
    pub fn batch_loss_paired<R: Rng + ?Sized>(
        &self,
        net: &dyn DiffusionNet,
        x0: &Tensor,
        labels: Option<&Tensor>,
        noise: Option<&Tensor>,
        rng: &mut R,
        sampler: Option<&mut ImportanceSampler>,
    ) -> Result<Tensor> {
        match self {
            Objective::Iddpm { .. } if noise.is_some() => Err(couplings_error()),
            Objective::Iddpm { schedule, prediction, config } => {
                if let Some(s) = &sampler {
                    if s.timesteps() != schedule.len() {
                        return Err(TrainError::invalid(
                            "importance_sampler.timesteps",
                            format!("{} for a schedule of {} steps", s.timesteps(), schedule.len()),
                        ));
                    }
                }
                let b = x0.dim(0)?;
                let (ts, weights) = iddpm::draw_timesteps(sampler.as_deref(), rng, b, schedule.len());
                let (eps, x_t, out) = self.iddpm_forward(net, x0, labels, &ts, schedule, rng)?;
                let (loss, _) = iddpm::batch_loss(
                    config,
                    sampler,
                    schedule,
                    *prediction,
                    &out,
                    x0,
                    &eps,
                    &x_t,
                    &ts,
                    &weights,
                )?;
                Ok(loss)
            }
            _ => {
                if sampler.is_some() {
                    return Err(TrainError::invalid(
                        "importance_sampler",
                        "importance sampling of timesteps applies to iddpm only",
                    ));
                }
                Ok(self.loss_per_sample_paired(net, x0, labels, noise, rng)?.mean_all()?)
            }
        }
    }

    /// ε element by element from `rng`, x_t = q_sample(x₀, ε, t), and the learned-variance network
    /// output `[B, 2C, …]` at x_t.
    fn iddpm_forward<R: Rng + ?Sized>(
        &self,
        net: &dyn DiffusionNet,
        x0: &Tensor,
        labels: Option<&Tensor>,
        ts: &[usize],
        schedule: &DiffusionSchedule,
        rng: &mut R,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let dev = x0.device().clone();
        let eps = normal_like(x0, rng, &dev)?;
        let x_t = q_sample(schedule, x0, &eps, ts)?;
        let out = net.forward_with_labels(&x_t, &timesteps_tensor(ts, &dev)?, labels, true)?;
        let mut want = x0.dims().to_vec();
        want[1] *= 2;
        if out.dims() != want.as_slice() {
            return Err(TrainError::Data(format!(
                "iddpm needs a learned-variance network output {want:?} (twice the data channels), got {:?}",
                out.dims()
            )));
        }
        Ok((eps, x_t, out))
    }

    /// Per-sample loss `[B]` of `net` (in training mode) on the clean batch `x0`.
    /// Draw order from `rng`: one per-sample scalar (timestep, level, time or ln σ draw) for each
    /// sample, then the noise tensor element by element. iDDPM: the unweighted hybrid (or VLB)
    /// loss with uniform timesteps (importance sampling needs [`Objective::batch_loss`]).
    pub fn loss_per_sample<R: Rng + ?Sized>(
        &self,
        net: &dyn DiffusionNet,
        x0: &Tensor,
        rng: &mut R,
    ) -> Result<Tensor> {
        self.loss_per_sample_with_labels(net, x0, None, rng)
    }

    /// [`Objective::loss_per_sample`] of a class-conditional network given the batch's labels.
    pub fn loss_per_sample_with_labels<R: Rng + ?Sized>(
        &self,
        net: &dyn DiffusionNet,
        x0: &Tensor,
        labels: Option<&Tensor>,
        rng: &mut R,
    ) -> Result<Tensor> {
        self.loss_per_sample_paired(net, x0, labels, None, rng)
    }

    /// [`Objective::loss_per_sample_with_labels`] with, for flow matching, the noise each example
    /// is coupled with (`noise`, the shape of `x0`: reflow's fixed pairs; `None` draws it).
    /// Other objectives take no coupling.
    pub fn loss_per_sample_paired<R: Rng + ?Sized>(
        &self,
        net: &dyn DiffusionNet,
        x0: &Tensor,
        labels: Option<&Tensor>,
        noise: Option<&Tensor>,
        rng: &mut R,
    ) -> Result<Tensor> {
        if noise.is_some() && !matches!(self, Objective::Flow(_)) {
            return Err(couplings_error());
        }
        let forward = |x: &Tensor, t: Tensor| forward(net, x, t, x0, labels);
        let b = x0.dim(0)?;
        let dev = x0.device().clone();
        match self {
            Objective::Ddpm { schedule, prediction } => {
                let t_len = schedule.len();
                let ts: Vec<usize> = (0..b).map(|_| rng.random_range(0..t_len)).collect();
                let eps = normal_like(x0, rng, &dev)?;
                let x_t = q_sample(schedule, x0, &eps, &ts)?;
                let out = forward(&x_t, timesteps_tensor(&ts, &dev)?)?;
                Ok(l_simple_per_sample(schedule, *prediction, &out, x0, &eps, &ts)?)
            }
            Objective::Iddpm { schedule, prediction, config } => {
                let (ts, _) = iddpm::draw_timesteps(None, rng, b, schedule.len());
                let (eps, x_t, out) = self.iddpm_forward(net, x0, labels, &ts, schedule, rng)?;
                Ok(iddpm::iddpm_loss(config, schedule, *prediction, &out, x0, &eps, &x_t, &ts)?.loss)
            }
            Objective::Ncsn { sigmas } => {
                let l = sigmas.len();
                let js: Vec<usize> = (0..b).map(|_| rng.random_range(0..l)).collect();
                let z = normal_like(x0, rng, &dev)?;
                let sig: Vec<f64> = js.iter().map(|&j| sigmas[j]).collect();
                let x = ncsn_perturb(x0, &z, &sig)?;
                // level j (σ₁ first) has model time L − 1 − j
                let tau: Vec<f32> = js.iter().map(|&j| (l - 1 - j) as f32).collect();
                let out = forward(&x, Tensor::from_vec(tau, b, &dev)?)?;
                Ok(dsm_loss(&out, Prediction::Epsilon, &z, &sig)?)
            }
            Objective::ScoreSde { sde, prediction, eps } => {
                let ts: Vec<f64> = (0..b).map(|_| eps + (1.0 - eps) * rng.random::<f64>()).collect();
                let z = normal_like(x0, rng, &dev)?;
                let (x_t, std) = sde_perturb(sde, x0, &z, &ts)?;
                let model_t: Vec<f32> = ts.iter().map(|&t| (SDE_TIME_SCALE * t) as f32).collect();
                let out = forward(&x_t, Tensor::from_vec(model_t, b, &dev)?)?;
                Ok(dsm_loss(&out, *prediction, &z, &std)?)
            }
            Objective::Edm(cfg) => {
                let sig: Vec<f64> =
                    (0..b).map(|_| cfg.training_sigma(rng.sample::<f64, _>(StandardNormal))).collect();
                let n = normal_like(x0, rng, &dev)?;
                let pair = edm_training_pair(cfg, x0, &n, &sig)?;
                let c_noise: Vec<f32> = pair.c_noise.iter().map(|&c| c as f32).collect();
                let out = forward(&pair.net_input, Tensor::from_vec(c_noise, b, &dev)?)?;
                Ok(edm_loss(&out, &pair)?)
            }
            Objective::Cold(c) => {
                // images only: `Trainer` checks the data; `Degradation::apply` the batch
                let ts: Vec<usize> = (0..b).map(|_| rng.random_range(1..=c.levels)).collect();
                let z = normal_like(x0, rng, &dev)?;
                let x_t = c.degradation.apply(x0, &ts, c.levels)?.add(&z.affine(c.noise, 0.0)?)?;
                let out = forward(
                    &x_t,
                    Tensor::from_vec(ts.iter().map(|&t| t as f32).collect::<Vec<_>>(), b, &dev)?,
                )?;
                Ok(rediffuse_core::tensor_util::mean_flat(&out.sub(x0)?.abs()?)?)
            }
            Objective::Consistency => Err(TrainError::invalid(
                "method",
                "consistency losses are computed by the trainer (they need its target network)",
            )),
            Objective::Flow(cfg) => {
                // here x0 is the data end x₁ of the flow; z its noise end
                let ts: Vec<f64> = (0..b).map(|_| rng.random::<f64>()).collect();
                let z = match noise {
                    Some(z) if z.dims() == x0.dims() => z.clone(),
                    Some(z) => {
                        return Err(TrainError::Data(format!(
                            "couplings of shape {:?} for a batch {:?}",
                            z.dims(),
                            x0.dims()
                        )))
                    }
                    None => normal_like(x0, rng, &dev)?,
                };
                let z = match cfg.coupling {
                    Coupling::Independent => z,
                    Coupling::MinibatchOt => ot_pair(&z, x0)?,
                };
                let (x_t, u) = rediffuse_core::flow::interpolate(x0, &z, &ts, cfg.sigma_min)?;
                let model_t: Vec<f32> = ts.iter().map(|&t| (FLOW_TIME_SCALE * t) as f32).collect();
                let out = forward(&x_t, Tensor::from_vec(model_t, b, &dev)?)?;
                Ok(rediffuse_core::tensor_util::mean_flat(&out.sub(&u)?.sqr()?)?)
            }
        }
    }
}

/// Fixed (noise, data) couplings given to an objective other than flow matching.
pub(crate) fn couplings_error() -> TrainError {
    TrainError::invalid("couplings", "fixed noise couplings apply to flow matching only")
}

/// The rows of `z` re-ordered so that row i goes with data row i at the minimum total squared
/// distance (exact assignment over the batch).
fn ot_pair(z: &Tensor, x1: &Tensor) -> Result<Tensor> {
    let b = z.dim(0)?;
    let zf = z.flatten_from(1)?.to_dtype(candle_core::DType::F64)?;
    let xf = x1.flatten_from(1)?.to_dtype(candle_core::DType::F64)?;
    // ‖x_i − z_j‖² = ‖x_i‖² + ‖z_j‖² − 2 x_i·z_j
    let xz = xf.matmul(&zf.t()?)?;
    let xn: Vec<f64> = xf.sqr()?.sum(1)?.to_vec1()?;
    let zn: Vec<f64> = zf.sqr()?.sum(1)?.to_vec1()?;
    let dot: Vec<Vec<f64>> = xz.to_vec2()?;
    let cost: Vec<f64> = (0..b)
        .flat_map(|i| (0..b).map(move |j| (i, j)))
        .map(|(i, j)| xn[i] + zn[j] - 2.0 * dot[i][j])
        .collect();
    let p = rediffuse_core::assignment::min_cost_assignment(&cost, b)?;
    let idx: Vec<u32> = p.iter().map(|&j| j as u32).collect();
    Ok(z.index_select(&Tensor::from_vec(idx, b, z.device())?, 0)?)
}

/// N(0, I) noise shaped like `x0` (f32), drawn element by element from `rng`.
fn normal_like<R: Rng + ?Sized>(x0: &Tensor, rng: &mut R, dev: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..x0.elem_count()).map(|_| rng.sample(StandardNormal)).collect();
    Ok(Tensor::from_vec(v, x0.shape(), dev)?)
}

/// Training-mode forward pass, checking that the output has the data's shape.
fn forward(
    net: &dyn DiffusionNet,
    x: &Tensor,
    t: Tensor,
    x0: &Tensor,
    labels: Option<&Tensor>,
) -> Result<Tensor> {
    let out = net.forward_with_labels(x, &t, labels, true)?;
    if out.dims() != x0.dims() {
        return Err(TrainError::Data(format!(
            "network output {:?} does not match the data batch {:?}",
            out.dims(),
            x0.dims()
        )));
    }
    Ok(out)
}
