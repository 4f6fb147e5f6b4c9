//! Negative log-likelihood in bits/dim from the full variational bound (DDPM Eq. 5; seed 004
//! §6.2, §10.4): −log p(x₀) ≤ L_T + Σ_{t>1} L_{t−1} + L₀, each term estimated with one draw of
//! x_t ~ q(x_t|x₀) per sample, L₀ with the discretized Gaussian decoder (Eq. 13) for discrete data
//! (8-bit images by default).

use crate::error::{Result, TrainError};
use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rediffuse_core::loss::q_sample;
use rediffuse_core::tensor_util::timesteps_tensor;
use rediffuse_core::vlb::{
    p_mean_variance, prior_kl, split_output, vlb_terms, Reduction, VarianceMode, EIGHT_BIT_LEVELS,
};
use rediffuse_core::{Denoiser, DiffusionSchedule, NoiseSource};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Which timesteps the bound is evaluated at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BoundTimesteps {
    /// All T terms: the exact bound (T model calls per batch).
    All,
    /// APPROXIMATE: the first `every` indices (L₀ and the steepest KL terms) exactly, then the
    /// indices every..T in blocks of `every`; from each block one index, drawn uniformly with a
    /// ChaCha8 generator seeded by `seed` (the same for every batch), stands for the whole block
    /// (weight = block length). An unbiased estimate of the bound over the index draw
    /// (about every + T/every model calls instead of T), but not itself a bound:
    /// `NllResult::exact` is false unless `every` = 1.
    Stratified { every: usize, seed: u64 },
}

/// Options of [`nll_bits_per_dim`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NllOptions {
    pub timesteps: BoundTimesteps,
    /// Clamp x̂₀ to ±c inside p_θ (iDDPM's `calc_bpd_loop` uses clip_denoised = True, c = 1).
    /// Clamping changes the model, not the validity of the bound.
    pub clip_x0: Option<f32>,
    /// Number of values of the data in [−1, 1] (256 for 8-bit images, 17 for the digits).
    pub levels: u32,
}

impl Default for NllOptions {
    fn default() -> Self {
        Self { timesteps: BoundTimesteps::All, clip_x0: Some(1.0), levels: EIGHT_BIT_LEVELS }
    }
}

/// Sums over samples of one bound term (bits/dim) and the number of schedule indices it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TermStats {
    /// Schedule index (paper's t = index + 1); index 0 is L₀.
    pub index: usize,
    /// 1 for the exact bound; the block length in stratified mode.
    pub weight: usize,
    pub sum: f64,
    pub sum_sq: f64,
}

/// The bound of a set of samples, per sample and per timestep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NllResult {
    /// The total bound of each sample, bits/dim.
    pub bits_per_dim: Vec<f64>,
    /// The prior term L_T of each sample, bits/dim (included in `bits_per_dim`).
    pub prior_bits_per_dim: Vec<f64>,
    /// One entry per evaluated index, ascending.
    pub terms: Vec<TermStats>,
    /// Number of diffusion steps T.
    pub num_timesteps: usize,
    /// Whether all T terms were evaluated (a true bound).
    pub exact: bool,
}

/// Mean NLL with its standard error, for printing or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NllSummary {
    pub bits_per_dim: f64,
    /// Standard error of the mean across samples (sample std / √n).
    pub standard_error: f64,
    pub prior_bits_per_dim: f64,
    /// Mean of L₀ (the decoder term), bits/dim.
    pub decoder_bits_per_dim: f64,
    pub n: usize,
    pub num_timesteps: usize,
    pub exact: bool,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

impl NllResult {
    pub fn len(&self) -> usize {
        self.bits_per_dim.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bits_per_dim.is_empty()
    }

    /// Mean bits/dim over samples.
    pub fn mean_bits_per_dim(&self) -> f64 {
        mean(&self.bits_per_dim)
    }

    /// Standard error of [`NllResult::mean_bits_per_dim`] (unbiased sample std / √n; 0 for n < 2).
    pub fn standard_error(&self) -> f64 {
        let n = self.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean_bits_per_dim();
        let var = self.bits_per_dim.iter().map(|b| (b - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    }

    /// Mean (over samples) of each evaluated term: (index, weight, mean bits/dim).
    pub fn term_means(&self) -> Vec<(usize, usize, f64)> {
        let n = self.len().max(1) as f64;
        self.terms.iter().map(|t| (t.index, t.weight, t.sum / n)).collect()
    }

    pub fn summary(&self) -> NllSummary {
        let n = self.len().max(1) as f64;
        NllSummary {
            bits_per_dim: self.mean_bits_per_dim(),
            standard_error: self.standard_error(),
            prior_bits_per_dim: mean(&self.prior_bits_per_dim),
            decoder_bits_per_dim: self.terms.iter().find(|t| t.index == 0).map_or(0.0, |t| t.sum / n),
            n: self.len(),
            num_timesteps: self.num_timesteps,
            exact: self.exact,
        }
    }

    /// Append the samples of `other` (another batch of the same evaluation).
    pub fn merge(&mut self, other: NllResult) -> Result<()> {
        let same_terms = self.terms.len() == other.terms.len()
            && self.terms.iter().zip(&other.terms).all(|(a, b)| a.index == b.index && a.weight == b.weight);
        if self.num_timesteps != other.num_timesteps || self.exact != other.exact || !same_terms {
            return Err(TrainError::invalid("nll.merge", "results of different timestep sets"));
        }
        for (a, b) in self.terms.iter_mut().zip(&other.terms) {
            a.sum += b.sum;
            a.sum_sq += b.sum_sq;
        }
        self.bits_per_dim.extend(other.bits_per_dim);
        self.prior_bits_per_dim.extend(other.prior_bits_per_dim);
        Ok(())
    }

    /// Write the per-timestep terms as CSV: `index,t,term,weight,mean_bits_per_dim,std_bits_per_dim`
    /// (term = `L0`, `L_t-1` or `L_T` for the prior, whose index is T).
    pub fn write_terms_csv(&self, path: &Path) -> Result<()> {
        let mut f = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
        let n = self.len().max(1) as f64;
        let mut text = String::from("index,t,term,weight,mean_bits_per_dim,std_bits_per_dim\n");
        let std = |sum: f64, sum_sq: f64| (sum_sq / n - (sum / n).powi(2)).max(0.0).sqrt();
        for t in &self.terms {
            let name = if t.index == 0 { "L0" } else { "L_t-1" };
            let line = format!(
                "{},{},{name},{},{:.10e},{:.10e}\n",
                t.index,
                t.index + 1,
                t.weight,
                t.sum / n,
                std(t.sum, t.sum_sq)
            );
            text.push_str(&line);
        }
        let (ps, pss) = (
            self.prior_bits_per_dim.iter().sum::<f64>(),
            self.prior_bits_per_dim.iter().map(|v| v * v).sum::<f64>(),
        );
        let nt = self.num_timesteps;
        text.push_str(&format!("{nt},{},L_T,1,{:.10e},{:.10e}\n", nt + 1, ps / n, std(ps, pss)));
        f.write_all(text.as_bytes()).map_err(|e| TrainError::io(path, e))
    }
}

/// The evaluated indices (ascending) and how many indices each stands for.
fn evaluated_indices(t: usize, mode: BoundTimesteps) -> Result<Vec<(usize, usize)>> {
    match mode {
        BoundTimesteps::All => Ok((0..t).map(|i| (i, 1)).collect()),
        BoundTimesteps::Stratified { every, seed } => {
            if every == 0 {
                return Err(TrainError::invalid("nll.every", "must be >= 1"));
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let head = every.min(t);
            let mut out: Vec<(usize, usize)> = (0..head).map(|i| (i, 1)).collect();
            let mut start = head;
            while start < t {
                let end = (start + every).min(t);
                out.push((rng.random_range(start..end), end - start));
                start = end;
            }
            Ok(out)
        }
    }
}

/// Check that `x0` holds discrete data with `levels` values 2k/(levels − 1) − 1 in [−1, 1].
fn check_levels(x0: &Tensor, levels: u32) -> Result<()> {
    if levels < 2 {
        return Err(TrainError::invalid("nll.levels", "must be >= 2"));
    }
    let scale = (levels - 1) as f64 / 2.0;
    let v = x0.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    for &x in &v {
        let k = (x + 1.0) * scale;
        if !x.is_finite()
            || !(-1e-4..=(levels - 1) as f64 + 1e-4).contains(&k)
            || (k - k.round()).abs() > 1e-2
        {
            return Err(TrainError::Data(format!(
                "NLL in bits/dim needs discrete data with {levels} levels in [−1, 1] \
                 (values 2k/{} − 1); found {x}",
                levels - 1
            )));
        }
    }
    Ok(())
}

/// The variational bound (DDPM Eq. 5) in bits/dim for each sample of `x0` (`[B, …]`, discrete
/// data with `opts.levels` values in [−1, 1], f32): for every index i = T−1, …, 0 one draw ε from `noise` (per-sample streams,
/// so a sample's value does not depend on its batch), x_t = q_sample(x₀, ε, i), one model call,
/// and the term L_{t−1} (KL, i > 0) or L₀ (decoder, i = 0) of p_θ built by
/// [`p_mean_variance`] with `variance` (a learned variance expects a `[B, 2C, …]` output);
/// plus the prior term L_T. Terms are means over dimensions divided by ln 2.
pub fn nll_bits_per_dim(
    model: &dyn Denoiser,
    variance: VarianceMode,
    schedule: &DiffusionSchedule,
    x0: &Tensor,
    noise: &mut NoiseSource,
    opts: &NllOptions,
) -> Result<NllResult> {
    let b = x0.dim(0)?;
    if x0.rank() < 2 || b == 0 || b != noise.len() {
        return Err(TrainError::Data(format!(
            "x0 must be a non-empty [B, …] batch matching the noise source ({} streams), got {:?}",
            noise.len(),
            x0.dims()
        )));
    }
    check_levels(x0, opts.levels)?;
    let x0 = x0.to_dtype(DType::F32)?;
    let t_len = schedule.len();
    let indices = evaluated_indices(t_len, opts.timesteps)?;
    let to_bits = 1.0 / std::f64::consts::LN_2;
    let mut totals = vec![0.0f64; b];
    let mut terms = Vec::with_capacity(indices.len());
    let shape = x0.dims()[1..].to_vec();
    for &(i, weight) in indices.iter().rev() {
        let idx = vec![i; b];
        let eps = noise.randn(&shape, x0.device())?;
        let x_t = q_sample(schedule, &x0, &eps, &idx)?;
        let out = model.forward(&x_t, &timesteps_tensor(&idx, x0.device())?)?.to_dtype(DType::F32)?;
        let (mean_out, v) = split_output(variance, &out, &x_t)?;
        let p = p_mean_variance(
            schedule,
            model.prediction(),
            variance,
            &mean_out,
            v.as_ref(),
            &x_t,
            &idx,
            opts.clip_x0,
        )?;
        let term =
            vlb_terms(schedule, &x0, &x_t, &idx, &p, opts.levels, Reduction::Mean)?.to_dtype(DType::F64)?;
        let term: Vec<f64> = term.affine(to_bits, 0.0)?.to_vec1()?;
        if let Some(bad) = term.iter().find(|v| !v.is_finite()) {
            return Err(TrainError::Data(format!("non-finite bound term {bad} at timestep index {i}")));
        }
        for (tot, v) in totals.iter_mut().zip(&term) {
            *tot += weight as f64 * v;
        }
        terms.push(TermStats {
            index: i,
            weight,
            sum: term.iter().sum(),
            sum_sq: term.iter().map(|v| v * v).sum(),
        });
    }
    terms.reverse();
    let prior: Vec<f64> =
        prior_kl(schedule, &x0, Reduction::Mean)?.to_dtype(DType::F64)?.affine(to_bits, 0.0)?.to_vec1()?;
    for (tot, p) in totals.iter_mut().zip(&prior) {
        *tot += p;
    }
    Ok(NllResult {
        bits_per_dim: totals,
        prior_bits_per_dim: prior,
        terms,
        num_timesteps: t_len,
        exact: matches!(opts.timesteps, BoundTimesteps::All) || indices.len() == t_len,
    })
}
