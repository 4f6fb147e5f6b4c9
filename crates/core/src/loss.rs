//! Forward-process sampling and the simplified training objective.

use crate::error::Result;
use crate::prediction::{target, Prediction};
use crate::schedule::DiffusionSchedule;
use crate::tensor_util::{gather_coef, mean_flat};
use candle_core::Tensor;

/// x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε (DDPM Eq. 4, reparameterised as in Eq. 9).
/// `idx` holds one timestep index per batch element.
pub fn q_sample(schedule: &DiffusionSchedule, x0: &Tensor, eps: &Tensor, idx: &[usize]) -> Result<Tensor> {
    let (a, s) = coefs(schedule, idx, x0)?;
    Ok(x0.broadcast_mul(&a)?.add(&eps.broadcast_mul(&s)?)?)
}

/// The `[B, 1, …]` tensors √ᾱ and √(1 − ᾱ) at `idx`, shaped to broadcast against `like`.
pub fn coefs(schedule: &DiffusionSchedule, idx: &[usize], like: &Tensor) -> Result<(Tensor, Tensor)> {
    let r = like.rank();
    let dev = like.device();
    Ok((
        gather_coef(&schedule.sqrt_alpha_bar, idx, r, dev)?,
        gather_coef(&schedule.sqrt_one_minus_alpha_bar, idx, r, dev)?,
    ))
}

/// Per-sample L_simple (DDPM Eq. 14): mean over elements of ‖target − output‖²,
/// where the target is ε, x₀ or v according to `kind`. Returns `[B]`.
pub fn l_simple_per_sample(
    schedule: &DiffusionSchedule,
    kind: Prediction,
    output: &Tensor,
    x0: &Tensor,
    eps: &Tensor,
    idx: &[usize],
) -> Result<Tensor> {
    let (a, s) = coefs(schedule, idx, x0)?;
    let tgt = target(kind, x0, eps, &a, &s)?;
    mean_flat(&output.sub(&tgt)?.sqr()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseSource;
    use crate::schedule::BetaSchedule;
    use candle_core::Device;

    /// q(x_t|x₀) in closed form has the same moments as iterating
    /// q(x_t|x_{t−1}) (Eq. 2) t times, over many seeds.
    #[test]
    fn closed_form_matches_markov_chain() {
        let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
        let n = 20000usize;
        let x0 = 1.5f64;
        for &t in &[1usize, 10, 250, 999] {
            let mut noise = NoiseSource::new(42, 0, n);
            let draws = noise.randn_vec(&[t]);
            let mut m = 0.0;
            let mut m2 = 0.0;
            for i in 0..n {
                let mut x = x0;
                for k in 0..t {
                    let b = sch.betas[k];
                    x = (1.0 - b).sqrt() * x + b.sqrt() * draws[i * t + k] as f64;
                }
                m += x;
                m2 += x * x;
            }
            m /= n as f64;
            let var = m2 / n as f64 - m * m;
            let ab = sch.alpha_bar[t - 1];
            let (em, ev) = (ab.sqrt() * x0, 1.0 - ab);
            let se_m = (ev / n as f64).sqrt();
            assert!((m - em).abs() < 5.0 * se_m, "t={t}: mean {m} vs {em}");
            assert!(
                (var - ev).abs() < 5.0 * ev * (2.0 / n as f64).sqrt() + 1e-12,
                "t={t}: var {var} vs {ev}"
            );
        }
        // and the tensor q_sample follows the closed form
        let d = Device::Cpu;
        let x0t = Tensor::full(x0 as f32, (n, 1), &d).unwrap();
        let eps = NoiseSource::new(3, 0, n).randn(&[1], &d).unwrap();
        let xt = q_sample(&sch, &x0t, &eps, &vec![499; n]).unwrap();
        let v: Vec<f32> = xt.flatten_all().unwrap().to_vec1().unwrap();
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert!((m - sch.sqrt_alpha_bar[499] * x0).abs() < 0.03);
    }

    /// Posterior mean and variance (Eq. 6–7) agree with Bayes' rule computed numerically
    /// on a grid: p(x_{t−1}|x_t, x₀) ∝ q(x_t|x_{t−1}) q(x_{t−1}|x₀).
    #[test]
    fn posterior_matches_numerical_bayes() {
        let sch = DiffusionSchedule::new(BetaSchedule::cosine(), 100).unwrap();
        for &(i, x0, xt) in &[(1usize, 0.7f64, 0.2f64), (30, -1.0, 0.5), (80, 0.3, -1.4)] {
            let ab_prev = sch.alpha_bar_prev[i];
            let b = sch.betas[i];
            let (lo, hi, k) = (-8.0, 8.0, 400_000);
            let h = (hi - lo) / k as f64;
            let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
            for j in 0..k {
                let y = lo + (j as f64 + 0.5) * h;
                let lik = (-(xt - (1.0 - b).sqrt() * y).powi(2) / (2.0 * b)).exp();
                let prior = (-(y - ab_prev.sqrt() * x0).powi(2) / (2.0 * (1.0 - ab_prev))).exp();
                let w = lik * prior;
                z += w;
                m1 += w * y;
                m2 += w * y * y;
            }
            let mean = m1 / z;
            let var = m2 / z - mean * mean;
            let mu = sch.posterior_mean_coef1[i] * x0 + sch.posterior_mean_coef2[i] * xt;
            assert!((mean - mu).abs() < 1e-6, "i={i}: {mean} vs {mu}");
            assert!((var - sch.posterior_variance[i]).abs() / var < 1e-4, "i={i}");
        }
    }
}
