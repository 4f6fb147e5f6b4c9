//! DPM-Solver (Lu et al. 2022a, Algorithms 1–2 and Eq. 3.6–3.9) and DPM-Solver++ (Lu et al. 2022b,
//! Algorithm 2 and the 3M variant of the reference implementation), written in λ = log(α/σ)
//! and run in σ-space: with x̃ = x_t/α_t and σ̃ = σ_t/α_t = e^{−λ}, every α_t/α_s factor cancels,
//! so h = λ_t − λ_s = ln(σ̃_s/σ̃_t). DPM-Solver-1 is DDIM (Song et al. 2021a, η = 0).

use super::error::{check_sigmas, positive, ContinuousError, Result};
use super::stats::{notify, Callback, SampleStats};
use super::view::{denoise_at, SigmaDenoiser};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// σ̃ values uniform in λ = −ln σ̃ from `sigma_max` to `sigma_min` (n + 1 values; DPM-Solver's
/// "logSNR" time steps). Append 0 yourself to finish with a denoising step.
pub fn lambda_uniform_sigmas(sigma_max: f64, sigma_min: f64, n: usize) -> Result<Vec<f64>> {
    positive("sigma_max", sigma_max)?;
    positive("sigma_min", sigma_min)?;
    if sigma_min >= sigma_max || n == 0 {
        return Err(ContinuousError::invalid("sigmas", "need sigma_min < sigma_max and n >= 1"));
    }
    let (a, b) = (sigma_max.ln(), sigma_min.ln());
    Ok((0..=n).map(|i| (a + (b - a) * i as f64 / n as f64).exp()).collect())
}

fn eps_of(x: &Tensor, den: &Tensor, sigma: f64) -> Result<Tensor> {
    Ok(x.sub(den)?.affine(1.0 / sigma, 0.0)?)
}

/// Single-step DPM-Solver of order 1, 2 or 3 (noise-prediction form) over σ̃₀ > … > σ̃_N, using
/// `order` model evaluations per interval (r₁ = ½ for order 2; r₁ = ⅓, r₂ = ⅔ for order 3).
/// An interval ending at σ̃ = 0 is a first-order (denoising) step. In σ-space, with ε = (x̃ − D)/σ̃:
/// order 1: x̃_t = x̃_s − σ̃_t(e^h − 1)ε_s;
/// order 2: u = x̃_s − σ̃_{s1}(e^{r₁h} − 1)ε_s, x̃_t = x̃_s − σ̃_t(e^h − 1)ε_s − σ̃_t/(2r₁)(e^h − 1)(ε(u) − ε_s);
/// order 3: Lu et al. Algorithm 2 (DPM-Solver-3).
pub fn dpm_solver(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    sigmas: &[f64],
    order: usize,
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    check_sigmas(sigmas)?;
    if !(1..=3).contains(&order) {
        return Err(ContinuousError::invalid("order", format!("must be 1, 2 or 3, got {order}")));
    }
    if sigmas[0] == 0.0 {
        return Err(ContinuousError::invalid("sigmas", "the first noise level must be > 0"));
    }
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    for (i, w) in sigmas.windows(2).enumerate() {
        let (ss, st) = (w[0], w[1]);
        let d0 = denoise_at(model, &x, ss)?;
        stats.nfe += 1;
        let e0 = eps_of(&x, &d0, ss)?;
        // σ̃_t(e^h − 1) = σ̃_s − σ̃_t
        let x_next = if st == 0.0 || order == 1 {
            x.sub(&e0.affine(ss - st, 0.0)?)?
        } else {
            let h = (ss / st).ln();
            let sig_at = |r: f64| (-((-ss.ln()) + r * h)).exp();
            let em1 = h.exp_m1();
            if order == 2 {
                let r1 = 0.5;
                let s1 = sig_at(r1);
                let u = x.sub(&e0.affine(s1 * (r1 * h).exp_m1(), 0.0)?)?;
                let e1 = eps_of(&u, &denoise_at(model, &u, s1)?, s1)?;
                stats.nfe += 1;
                x.sub(&e0.affine(st * em1, 0.0)?)?.sub(&e1.sub(&e0)?.affine(st / (2.0 * r1) * em1, 0.0)?)?
            } else {
                let (r1, r2) = (1.0 / 3.0, 2.0 / 3.0);
                let (s1, s2) = (sig_at(r1), sig_at(r2));
                let u1 = x.sub(&e0.affine(s1 * (r1 * h).exp_m1(), 0.0)?)?;
                let dd1 = eps_of(&u1, &denoise_at(model, &u1, s1)?, s1)?.sub(&e0)?;
                let phi2_r2 = (r2 * h).exp_m1() / (r2 * h) - 1.0;
                let u2 = x
                    .sub(&e0.affine(s2 * (r2 * h).exp_m1(), 0.0)?)?
                    .sub(&dd1.affine(s2 * r2 / r1 * phi2_r2, 0.0)?)?;
                let dd2 = eps_of(&u2, &denoise_at(model, &u2, s2)?, s2)?.sub(&e0)?;
                stats.nfe += 2;
                let phi2 = em1 / h - 1.0;
                x.sub(&e0.affine(st * em1, 0.0)?)?.sub(&dd2.affine(st / r2 * phi2, 0.0)?)?
            }
        };
        x = x_next;
        stats.steps += 1;
        notify(&mut callback, i + 1, st, &x, Some(&d0));
    }
    Ok((x, stats))
}

/// What a DPM-Solver step extrapolates: the noise ε (DPM-Solver, Lu et al. 2022a) or the data
/// D (DPM-Solver++, Lu et al. 2022b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DpmAlgorithm {
    /// diffusers' `algorithm_type = "dpmsolver"`.
    #[default]
    Noise,
    /// diffusers' `algorithm_type = "dpmsolver++"`.
    Data,
}

/// diffusers' `DPMSolverSinglestepScheduler.get_order_list`: the orders of `steps` model
/// evaluations in chunks 1, 2, …, k (a chunk of order k spans k grid intervals). As diffusers,
/// lower orders end the list (`lower_order_final`) when the grid ends at σ = 0 (`final_zero`, whose
/// last step is then first order) or when `steps` is not a multiple of `order`.
pub fn singlestep_orders(steps: usize, order: usize, final_zero: bool) -> Result<Vec<usize>> {
    if !(1..=3).contains(&order) {
        return Err(ContinuousError::invalid("order", format!("must be 1, 2 or 3, got {order}")));
    }
    if steps == 0 {
        return Err(ContinuousError::invalid("steps", "need at least 1 step"));
    }
    let rep =
        |chunk: &[usize], n: usize| chunk.iter().copied().cycle().take(chunk.len() * n).collect::<Vec<_>>();
    let lower_order_final = final_zero || !steps.is_multiple_of(order);
    let mut o = match (order, lower_order_final) {
        (1, _) => vec![1; steps],
        (_, false) => rep(&[1, 2, 3][..order], steps / order),
        (3, true) => match steps % 3 {
            0 => [rep(&[1, 2, 3], steps / 3 - 1), vec![1, 2, 1]].concat(),
            1 => [rep(&[1, 2, 3], steps / 3), vec![1]].concat(),
            _ => [rep(&[1, 2, 3], steps / 3), vec![1, 2]].concat(),
        },
        (_, true) => match steps % 2 {
            0 => [rep(&[1, 2], steps / 2 - 1), vec![1, 1]].concat(),
            _ => [rep(&[1, 2], steps / 2), vec![1]].concat(),
        },
    };
    if final_zero {
        if let Some(last) = o.last_mut() {
            *last = 1;
        }
    }
    Ok(o)
}

/// Single-step DPM-Solver / DPM-Solver++ on a grid σ̃₀ > … > σ̃_N of N model evaluations, as
/// diffusers' `DPMSolverSinglestepScheduler(solver_type = "midpoint")`: the orders follow
/// [`singlestep_orders`]; a chunk of order k starts at a grid point s, its intermediate points are
/// the next grid points (each reached by the lower-order update from s). With h = λ_t − λ_s,
/// r₀ = (λ_u − λ_s)/h for the latest intermediate point u, and ε / D at s and u:
/// * noise form: x̃_t = x̃_s − σ̃_t(e^h − 1)ε_s − c·(ε_u − ε_s)/r₀ with c = 0 (order 1),
///   ½σ̃_t(e^h − 1) (order 2), σ̃_t((e^h − 1)/h − 1) (order 3);
/// * data form: x̃_t = (σ̃_t/σ̃_s)x̃_s − (e^{−h} − 1)D_s + c·(D_u − D_s)/r₀ with c = 0, −½(e^{−h} − 1),
///   (e^{−h} − 1)/h + 1.
///
/// A step to σ̃ = 0 returns the denoised estimate. NFE = N.
pub fn dpm_solver_singlestep(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    sigmas: &[f64],
    order: usize,
    algorithm: DpmAlgorithm,
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    check_sigmas(sigmas)?;
    if sigmas[0] == 0.0 {
        return Err(ContinuousError::invalid("sigmas", "the first noise level must be > 0"));
    }
    let n = sigmas.len() - 1;
    let orders = singlestep_orders(n, order, sigmas[n] == 0.0)?;
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    // start of the current chunk: (σ̃_s, x̃_s, model value at s: ε_s or D_s)
    let mut start: Option<(f64, Tensor, Tensor)> = None;
    for (i, w) in sigmas.windows(2).enumerate() {
        let (su, st) = (w[0], w[1]);
        let d = denoise_at(model, &x, su)?;
        stats.nfe += 1;
        let m = match algorithm {
            DpmAlgorithm::Noise => eps_of(&x, &d, su)?,
            DpmAlgorithm::Data => d.clone(),
        };
        let k = orders[i];
        if k == 1 || start.is_none() {
            start = Some((su, x.clone(), m.clone()));
        }
        let Some((ss, xs, ms)) = start.as_ref() else {
            return Err(ContinuousError::invalid("order", "a single-step chunk must start with order 1"));
        };
        let x_next = if st == 0.0 {
            d.clone()
        } else {
            let h = (ss / st).ln();
            let r0 = (ss / su).ln() / h;
            let d1 = if k > 1 { Some(m.sub(ms)?.affine(1.0 / r0, 0.0)?) } else { None };
            match algorithm {
                DpmAlgorithm::Noise => {
                    let em1 = h.exp_m1();
                    let first = xs.sub(&ms.affine(st * em1, 0.0)?)?;
                    match (k, d1) {
                        (2, Some(d1)) => first.sub(&d1.affine(0.5 * st * em1, 0.0)?)?,
                        (3, Some(d1)) => first.sub(&d1.affine(st * (em1 / h - 1.0), 0.0)?)?,
                        _ => first,
                    }
                }
                DpmAlgorithm::Data => {
                    let em1 = (-h).exp_m1();
                    let first = xs.affine(st / ss, 0.0)?.sub(&ms.affine(em1, 0.0)?)?;
                    match (k, d1) {
                        (2, Some(d1)) => first.sub(&d1.affine(0.5 * em1, 0.0)?)?,
                        (3, Some(d1)) => first.add(&d1.affine(em1 / h + 1.0, 0.0)?)?,
                        _ => first,
                    }
                }
            }
        };
        x = x_next;
        stats.steps += 1;
        notify(&mut callback, i + 1, st, &x, Some(&d));
    }
    Ok((x, stats))
}

/// Multistep DPM-Solver++ in data-prediction form, order 2 (2M, "midpoint" variant as in
/// diffusers' default) or 3 (3M). The first steps warm up with lower orders, a step ending at
/// σ̃ = 0 is first order (as in diffusers with `final_sigmas_type = "zero"`), and with fewer than
/// 15 steps the last step is first order and the one before it at most second order (diffusers'
/// default `lower_order_final = True`; [`dpmpp_multistep_with`] can turn it off). NFE = N.
/// With h = λ_t − λ_s, D-values m₀, m₁, m₂ of the last evaluations and r_k = h_{k}/h:
/// x̃_t = (σ̃_t/σ̃_s)x̃_s − (e^{−h} − 1)·[D₀ + ½D₁] (2M), or the 3M formula
/// x̃_t = (σ̃_t/σ̃_s)x̃_s − (e^{−h} − 1)D₀ + ((e^{−h} − 1)/h + 1)D₁ − ((e^{−h} − 1 + h)/h² − ½)D₂.
pub fn dpmpp_multistep(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    sigmas: &[f64],
    order: usize,
    callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    dpmpp_multistep_with(model, x, sigmas, order, true, callback)
}

/// [`dpmpp_multistep`] with diffusers' `lower_order_final` as a choice: `false` keeps the full
/// order up to the step before σ̃ = 0 at any number of steps.
pub fn dpmpp_multistep_with(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    sigmas: &[f64],
    order: usize,
    lower_order_final: bool,
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    check_sigmas(sigmas)?;
    if !(1..=3).contains(&order) {
        return Err(ContinuousError::invalid("order", format!("must be 1, 2 or 3, got {order}")));
    }
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    // history of (λ, D) for previous evaluation points, newest last
    let mut hist: Vec<(f64, Tensor)> = Vec::new();
    let n = sigmas.len() - 1;
    for (i, w) in sigmas.windows(2).enumerate() {
        let (ss, st) = (w[0], w[1]);
        let d = denoise_at(model, &x, ss)?;
        stats.nfe += 1;
        let lam_s = -ss.ln();
        let cap = match (lower_order_final && n < 15, n - 1 - i) {
            (true, 0) => 1,
            (true, 1) => 2,
            _ => 3,
        };
        let eff_order = if st == 0.0 { 1 } else { order.min(hist.len() + 1).min(cap) };
        let x_next = if st == 0.0 {
            d.clone()
        } else {
            let h = ss.ln() - st.ln();
            let em1 = (-h).exp_m1(); // e^{−h} − 1
            let base = x.affine(st / ss, 0.0)?;
            match eff_order {
                1 => base.sub(&d.affine(em1, 0.0)?)?,
                2 => {
                    let (lam1, m1) = &hist[hist.len() - 1];
                    let r0 = (lam_s - lam1) / h;
                    let d1 = d.sub(m1)?.affine(1.0 / r0, 0.0)?;
                    base.sub(&d.affine(em1, 0.0)?)?.sub(&d1.affine(0.5 * em1, 0.0)?)?
                }
                _ => {
                    let (lam1, m1) = &hist[hist.len() - 1];
                    let (lam2, m2) = &hist[hist.len() - 2];
                    let r0 = (lam_s - lam1) / h;
                    let r1 = (lam1 - lam2) / h;
                    let d1_0 = d.sub(m1)?.affine(1.0 / r0, 0.0)?;
                    let d1_1 = m1.sub(m2)?.affine(1.0 / r1, 0.0)?;
                    let diff = d1_0.sub(&d1_1)?;
                    let d1 = d1_0.add(&diff.affine(r0 / (r0 + r1), 0.0)?)?;
                    let d2 = diff.affine(1.0 / (r0 + r1), 0.0)?;
                    base.sub(&d.affine(em1, 0.0)?)?
                        .add(&d1.affine(em1 / h + 1.0, 0.0)?)?
                        .sub(&d2.affine((em1 + h) / (h * h) - 0.5, 0.0)?)?
                }
            }
        };
        hist.push((lam_s, d.clone()));
        if hist.len() > 2 {
            hist.remove(0);
        }
        x = x_next;
        stats.steps += 1;
        notify(&mut callback, i + 1, st, &x, Some(&d));
    }
    Ok((x, stats))
}
