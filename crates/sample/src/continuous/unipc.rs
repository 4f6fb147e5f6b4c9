//! UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
//! Diffusion Models", Algorithms 2–3 and Eq. 8–11) in data-prediction form: the multistep
//! predictor UniP-p and the corrector UniC-p, which reuses the model evaluation of the next step
//! (no extra NFE), with B(h) = h ("bh1") or B(h) = e^h − 1 ("bh2").
//!
//! Written in σ-space like [`super::dpm_solver`]: with x̃ = x/α and σ̃ = σ/α, the VP update
//! x_t = (σ_t/σ_s)x_s − α_t(e^{−h} − 1)m₀ − α_t B(h)·Σ ρ_k D_k becomes
//! x̃_t = (σ̃_t/σ̃_s)x̃_s − (e^{−h} − 1)m₀ − B(h)·Σ ρ_k D_k, h = λ_t − λ_s, λ = −ln σ̃.

use super::error::{check_sigmas, ContinuousError, Result};
use super::stats::{notify, Callback, SampleStats};
use super::view::{denoise_at, SigmaDenoiser};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// The B(h) of UniPC (Zhao et al. 2023, §3.3): both give the same order of accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UniPcVariant {
    /// B(h) = h (written for h̃ = −h in data prediction).
    Bh1,
    /// B(h) = e^h − 1 (diffusers' default).
    #[default]
    Bh2,
}

/// UniPC settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniPcOptions {
    /// Order p of the predictor (1–3); the corrector UniC-p raises the accuracy to p + 1.
    pub order: usize,
    pub variant: UniPcVariant,
    /// Apply the corrector UniC at every model evaluation after the first (it reuses that
    /// evaluation: no extra NFE).
    pub corrector: bool,
    /// Lower the order over the last steps (order ≤ number of steps left), as diffusers'
    /// `lower_order_final`.
    pub lower_order_final: bool,
}

impl Default for UniPcOptions {
    fn default() -> Self {
        Self { order: 2, variant: UniPcVariant::Bh2, corrector: true, lower_order_final: true }
    }
}

/// One earlier evaluation point: λ = −ln σ̃ and the model's denoised output there.
struct Point {
    lambda: f64,
    denoised: Tensor,
}

/// The coefficient system of UniP/UniC (Zhao et al. 2023, Eq. 10): R_{ik} = r_k^{i−1} for
/// r = (r₁, …, r_{p−1}, 1) and b_i = h̃φ_{i+1}(h̃)·i!/B(h̃) with h̃ = −h, where h̃φ₁ = e^{h̃} − 1
/// and φ_{k+1}(h̃) = (φ_k(h̃) − 1/k!)/h̃.
fn coefficient_system(rks: &[f64], hh: f64, b_h: f64) -> (Vec<Vec<f64>>, Vec<f64>) {
    let p = rks.len();
    let mut h_phi_k = hh.exp_m1() / hh - 1.0;
    let mut factorial = 1.0;
    let mut r = Vec::with_capacity(p);
    let mut b = Vec::with_capacity(p);
    for i in 1..=p {
        r.push(rks.iter().map(|rk| rk.powi(i as i32 - 1)).collect());
        b.push(h_phi_k * factorial / b_h);
        factorial *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    (r, b)
}

/// Solve the small dense system `a·x = y` by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut y: Vec<f64>) -> Result<Vec<f64>> {
    let n = y.len();
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap_or(c);
        if a[piv][c].abs() < 1e-300 || !a[piv][c].is_finite() {
            return Err(ContinuousError::invalid("sigmas", "UniPC coefficient system is singular"));
        }
        a.swap(c, piv);
        y.swap(c, piv);
        let (top, rest) = a.split_at_mut(c + 1);
        let pivot_row = &top[c];
        for (i, row) in rest.iter_mut().enumerate() {
            let f = row[c] / pivot_row[c];
            for (v, p) in row[c..].iter_mut().zip(&pivot_row[c..]) {
                *v -= f * p;
            }
            y[c + 1 + i] -= f * y[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (y[r] - s) / a[r][r];
    }
    Ok(x)
}

/// The shared part of UniP and UniC from the point `s0` (σ̃_s, x̃_s, newest of `hist`) to σ̃_t:
/// returns x̃_t without the higher-order terms, the divided differences D_k = (m_k − m₀)/r_k of
/// the older points, r_k, h̃ = −h and B(h̃).
struct Step {
    base: Tensor,
    d1s: Vec<Tensor>,
    rks: Vec<f64>,
    hh: f64,
    b_h: f64,
}

fn step_base(
    x_s: &Tensor,
    sigma_s: f64,
    sigma_t: f64,
    hist: &[Point],
    order: usize,
    variant: UniPcVariant,
) -> Result<Step> {
    let m0 = &hist[hist.len() - 1];
    let h = sigma_s.ln() - sigma_t.ln();
    let hh = -h;
    let mut rks = Vec::with_capacity(order);
    let mut d1s = Vec::with_capacity(order);
    for k in 1..order {
        let mk = &hist[hist.len() - 1 - k];
        let rk = (mk.lambda - m0.lambda) / h;
        d1s.push(mk.denoised.sub(&m0.denoised)?.affine(1.0 / rk, 0.0)?);
        rks.push(rk);
    }
    rks.push(1.0);
    let b_h = match variant {
        UniPcVariant::Bh1 => hh,
        UniPcVariant::Bh2 => hh.exp_m1(),
    };
    let base = x_s.affine(sigma_t / sigma_s, 0.0)?.sub(&m0.denoised.affine(hh.exp_m1(), 0.0)?)?;
    Ok(Step { base, d1s, rks, hh, b_h })
}

/// Σ_k ρ_k D_k (+ extra) scaled by B(h̃), subtracted from the base.
fn finish(step: Step, rhos: &[f64], extra: Option<(f64, Tensor)>) -> Result<Tensor> {
    let mut res: Option<Tensor> = None;
    for (rho, d) in rhos.iter().zip(&step.d1s) {
        let term = d.affine(*rho, 0.0)?;
        res = Some(match res {
            Some(r) => r.add(&term)?,
            None => term,
        });
    }
    if let Some((rho, d)) = extra {
        let term = d.affine(rho, 0.0)?;
        res = Some(match res {
            Some(r) => r.add(&term)?,
            None => term,
        });
    }
    Ok(match res {
        Some(r) => step.base.sub(&r.affine(step.b_h, 0.0)?)?,
        None => step.base,
    })
}

/// UniP-p (Zhao et al. 2023, Algorithm 3 predictor): ρ = ½ for p = 2, else R_{p−1}ρ = b_{p−1}.
fn predictor(x: &Tensor, ss: f64, st: f64, hist: &[Point], order: usize, v: UniPcVariant) -> Result<Tensor> {
    let step = step_base(x, ss, st, hist, order, v)?;
    let rhos = match order {
        1 => vec![],
        2 => vec![0.5],
        _ => {
            let (r, b) = coefficient_system(&step.rks, step.hh, step.b_h);
            let m = order - 1;
            solve(r[..m].iter().map(|row| row[..m].to_vec()).collect(), b[..m].to_vec())?
        }
    };
    finish(step, &rhos, None)
}

/// UniC-p (Zhao et al. 2023, Algorithm 2): corrects x̃_t (predicted from `x_prev` at σ̃_s) with
/// the model output `d_t` at x̃_t: ρ = ½ for p = 1, else Rρ = b; the last ρ weighs D_t = d_t − m₀.
fn corrector(
    x_prev: &Tensor,
    ss: f64,
    st: f64,
    d_t: &Tensor,
    hist: &[Point],
    order: usize,
    v: UniPcVariant,
) -> Result<Tensor> {
    let step = step_base(x_prev, ss, st, hist, order, v)?;
    let rhos = if order == 1 {
        vec![0.5]
    } else {
        let (r, b) = coefficient_system(&step.rks, step.hh, step.b_h);
        solve(r, b)?
    };
    let d_t_diff = d_t.sub(&hist[hist.len() - 1].denoised)?;
    let last = rhos[rhos.len() - 1];
    finish(step, &rhos[..rhos.len() - 1], Some((last, d_t_diff)))
}

/// Multistep UniPC over σ̃₀ > … > σ̃_N (N model evaluations): at every point the model is
/// evaluated once; the corrector refines the current state with that evaluation, then the
/// predictor of order min(p, steps done + 1, steps left) moves to the next level (a step ending
/// at σ̃ = 0 returns the denoised estimate, diffusers' `final_sigmas_type = "zero"`).
pub fn unipc_multistep(
    model: &impl SigmaDenoiser,
    x: &Tensor,
    sigmas: &[f64],
    options: &UniPcOptions,
    mut callback: Callback<'_>,
) -> Result<(Tensor, SampleStats)> {
    check_sigmas(sigmas)?;
    let order = options.order;
    if !(1..=3).contains(&order) {
        return Err(ContinuousError::invalid("order", format!("must be 1, 2 or 3, got {order}")));
    }
    if sigmas[0] == 0.0 {
        return Err(ContinuousError::invalid("sigmas", "the first noise level must be > 0"));
    }
    let n = sigmas.len() - 1;
    let mut x = x.clone();
    let mut stats = SampleStats::default();
    let mut hist: Vec<Point> = Vec::new();
    // the state the last predictor started from, its σ̃ and order
    let mut last: Option<(Tensor, f64, usize)> = None;
    for i in 0..n {
        let (ss, st) = (sigmas[i], sigmas[i + 1]);
        let d = denoise_at(model, &x, ss)?;
        stats.nfe += 1;
        if let (true, Some((x_prev, s_prev, p_prev))) = (options.corrector, &last) {
            x = corrector(x_prev, *s_prev, ss, &d, &hist, *p_prev, options.variant)?;
        }
        hist.push(Point { lambda: -ss.ln(), denoised: d.clone() });
        if hist.len() > order {
            hist.remove(0);
        }
        let mut p = order.min(i + 1);
        if options.lower_order_final {
            p = p.min(n - i);
        }
        let x_next = if st == 0.0 { d.clone() } else { predictor(&x, ss, st, &hist, p, options.variant)? };
        last = Some((x, ss, p));
        x = x_next;
        stats.steps += 1;
        notify(&mut callback, i + 1, st, &x, Some(&d));
    }
    Ok((x, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_recovers_a_known_solution() {
        let a = vec![vec![1.0, 1.0, 1.0], vec![0.5, 1.0, 2.0], vec![0.25, 1.0, 4.0]];
        let x = [0.3, -1.2, 2.5];
        let y: Vec<f64> = a.iter().map(|row| row.iter().zip(&x).map(|(u, v)| u * v).sum()).collect();
        let got = solve(a, y).unwrap();
        for (g, w) in got.iter().zip(&x) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        assert!(solve(vec![vec![1.0, 2.0], vec![2.0, 4.0]], vec![1.0, 2.0]).is_err());
    }

    /// b₁ = h̃φ₂(h̃)/B(h̃) → ½ as h → 0 for both variants (φ₂(0) = ½, B(h̃) ≈ h̃).
    #[test]
    fn first_coefficient_tends_to_one_half() {
        for hh in [-1e-3, -1e-2] {
            for b_h in [hh, f64::exp_m1(hh)] {
                let (_, b) = coefficient_system(&[1.0], hh, b_h);
                assert!((b[0] - 0.5).abs() < 0.01, "{b:?}");
            }
        }
    }
}
