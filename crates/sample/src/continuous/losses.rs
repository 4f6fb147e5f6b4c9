//! Training objectives as pure functions of the network output (the training loop owns the
//! network and the optimiser). All losses return one value per sample (`[B]`, mean over elements).

use super::error::{positive, ContinuousError, Result};
use super::view::per_sample;
use candle_core::Tensor;
use rand::Rng;
use rediffuse_core::sde::{EdmConfig, Sde};
use rediffuse_core::tensor_util::mean_flat;
use rediffuse_core::{NoiseSource, Prediction};

/// Uniform noise-level index i ∈ {0, …, L − 1} per sample (NCSN training, seed 002 Eq. for L(θ; {σ_i})).
pub fn sample_level_indices(noise: &mut NoiseSource, levels: usize) -> Result<Vec<usize>> {
    if levels == 0 {
        return Err(ContinuousError::invalid("levels", "must be >= 1"));
    }
    Ok((0..noise.len()).map(|i| noise.rng(i).random_range(0..levels)).collect())
}

/// t ~ U[ε, 1] per sample (continuous-time DSM, Song et al. Eq. 7).
pub fn sample_times(noise: &mut NoiseSource, eps: f64) -> Result<Vec<f64>> {
    positive("eps", eps)?;
    if eps >= 1.0 {
        return Err(ContinuousError::invalid("eps", "must be < 1"));
    }
    Ok(noise.uniform().into_iter().map(|u| eps + (1.0 - eps) * u).collect())
}

/// Perturbed input and its kernel std for continuous-time DSM: x_t = m(t)·x₀ + s(t)·z.
/// For NCSN use `Sde::Ve` semantics directly: x = x₀ + σ·z (see [`ncsn_perturb`]).
pub fn sde_perturb(sde: &Sde, x0: &Tensor, z: &Tensor, t: &[f64]) -> Result<(Tensor, Vec<f64>)> {
    let m: Vec<f64> = t.iter().map(|&t| sde.mean_coef(t)).collect();
    let s: Vec<f64> = t.iter().map(|&t| sde.marginal_std(t)).collect();
    let xt = x0.broadcast_mul(&per_sample(&m, x0)?)?.add(&z.broadcast_mul(&per_sample(&s, x0)?)?)?;
    Ok((xt, s))
}

/// NCSN perturbation x̃ = x + σ_i·z (per-sample σ).
pub fn ncsn_perturb(x0: &Tensor, z: &Tensor, sigma: &[f64]) -> Result<Tensor> {
    Ok(x0.add(&z.broadcast_mul(&per_sample(sigma, x0)?)?)?)
}

/// Denoising score matching with λ = std² (NCSN: λ(σ) = σ²; continuous: λ(t) = s(t)²), per sample:
/// score output: mean((std·s_θ + z)²) = λ‖s_θ + z/std‖²/d; ε output: mean((ε_θ − z)²) (ε = −std·s).
/// `std` is σ_i for NCSN or s(t) for the SDEs.
pub fn dsm_loss(output: &Tensor, kind: Prediction, z: &Tensor, std: &[f64]) -> Result<Tensor> {
    let diff = match kind {
        Prediction::Score => output.broadcast_mul(&per_sample(std, output)?)?.add(z)?,
        Prediction::Epsilon => output.sub(z)?,
        other => {
            return Err(ContinuousError::invalid(
                "prediction",
                format!("DSM loss needs score or epsilon output, got {}", other.name()),
            ))
        }
    };
    Ok(mean_flat(&diff.sqr()?)?)
}

/// Inputs and targets of one EDM training step (Karras et al. 2022, Eq. 8 and Table 1).
#[derive(Debug, Clone)]
pub struct EdmPair {
    /// c_in(σ)·(x₀ + σn): the raw network input.
    pub net_input: Tensor,
    /// c_noise(σ) per sample: the raw network time input.
    pub c_noise: Vec<f64>,
    /// F's target (x₀ − c_skip(σ)(x₀ + σn))/c_out(σ).
    pub target: Tensor,
    /// Effective weight λ(σ)·c_out(σ)² per sample (= 1 for EDM's λ).
    pub weight: Vec<f64>,
    /// The noise levels used.
    pub sigma: Vec<f64>,
}

/// ln σ ~ N(P_mean, P_std²) per sample.
pub fn edm_sample_sigmas(cfg: &EdmConfig, noise: &mut NoiseSource) -> Result<Vec<f64>> {
    cfg.validate()?;
    let n = noise.randn_vec(&[1]);
    Ok(n.into_iter().map(|v| cfg.training_sigma(v as f64)).collect())
}

/// Build the EDM training pair for clean data `x0`, noise `n` ~ N(0, I) and levels `sigma`.
pub fn edm_training_pair(cfg: &EdmConfig, x0: &Tensor, n: &Tensor, sigma: &[f64]) -> Result<EdmPair> {
    cfg.validate()?;
    for &s in sigma {
        positive("sigma", s)?;
    }
    let x = ncsn_perturb(x0, n, sigma)?;
    let c_in: Vec<f64> = sigma.iter().map(|&s| cfg.c_in(s)).collect();
    let c_skip: Vec<f64> = sigma.iter().map(|&s| cfg.c_skip(s)).collect();
    let inv_out: Vec<f64> = sigma.iter().map(|&s| 1.0 / cfg.c_out(s)).collect();
    let net_input = x.broadcast_mul(&per_sample(&c_in, &x)?)?;
    let target =
        x0.sub(&x.broadcast_mul(&per_sample(&c_skip, &x)?)?)?.broadcast_mul(&per_sample(&inv_out, &x)?)?;
    Ok(EdmPair {
        net_input,
        c_noise: sigma.iter().map(|&s| cfg.c_noise(s)).collect(),
        target,
        weight: sigma.iter().map(|&s| cfg.loss_weight(s) * cfg.c_out(s).powi(2)).collect(),
        sigma: sigma.to_vec(),
    })
}

/// EDM loss per sample: weight·mean((F_θ − target)²) = λ(σ)·mean((D_θ − x₀)²).
pub fn edm_loss(raw_output: &Tensor, pair: &EdmPair) -> Result<Tensor> {
    let per = mean_flat(&raw_output.sub(&pair.target)?.sqr()?)?;
    let w =
        Tensor::from_slice(&pair.weight, pair.weight.len(), raw_output.device())?.to_dtype(per.dtype())?;
    Ok(per.mul(&w)?)
}
