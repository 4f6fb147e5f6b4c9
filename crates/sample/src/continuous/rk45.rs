//! Adaptive Dormand–Prince RK5(4) (Dormand & Prince 1980; the `RK45` of scipy's `solve_ivp` used
//! by Song et al. for probability-flow sampling and likelihoods).
//!
//! The state is a batch of independent rows; each row keeps its own time and step size, so a
//! row's solution does not depend on the other rows of the batch. Each call of `f` evaluates the
//! still-active rows at their own times.

use super::error::{positive, ContinuousError, Result};

/// Tolerances and limits of the step-size controller.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rk45Options {
    /// Relative tolerance (Song et al.: 1e-5).
    pub rtol: f64,
    /// Absolute tolerance (Song et al.: 1e-5).
    pub atol: f64,
    /// First step size |h₀|; `None` picks 0.01·‖y‖/‖f(y)‖ per row (scaled RMS norms).
    pub h_init: Option<f64>,
    /// Maximum number of step attempts per row.
    pub max_steps: usize,
}

impl Default for Rk45Options {
    fn default() -> Self {
        Self { rtol: 1e-5, atol: 1e-5, h_init: None, max_steps: 10_000 }
    }
}

/// Costs of one adaptive solve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rk45Stats {
    /// Batched evaluations of `f`.
    pub nfe: usize,
    /// Evaluations seen by each row.
    pub nfe_per_row: Vec<usize>,
    pub accepted_per_row: Vec<usize>,
    pub rejected_per_row: Vec<usize>,
}

const C: [f64; 7] = [0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0];
const A: [[f64; 6]; 7] = [
    [0.0; 6],
    [0.2, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0, 0.0],
    [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0.0],
    [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
];
/// b₅ − b₄ (error estimator weights).
const E: [f64; 7] =
    [71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0];

/// Integrate dy/dt = f(t, y) for `rows` independent rows of `y0` (row-major) from `t0` to `t1`
/// (either direction). `f(rows, ts, y)` receives the indices of the evaluated rows, their times and
/// their states (row-major) and returns the derivatives in the same layout.
/// Error norm: RMS over a row of e/(atol + rtol·max(|y|, |y_new|)); accept if ≤ 1;
/// h ← h·clamp(0.9·err^{−1/5}, 0.2, 10) (no growth right after a rejection).
pub fn solve_rk45<F>(
    mut f: F,
    t0: f64,
    t1: f64,
    y0: &[f64],
    rows: usize,
    opts: &Rk45Options,
) -> Result<(Vec<f64>, Rk45Stats)>
where
    F: FnMut(&[usize], &[f64], &[f64]) -> Result<Vec<f64>>,
{
    positive("rtol", opts.rtol)?;
    positive("atol", opts.atol)?;
    if let Some(h) = opts.h_init {
        positive("h_init", h)?;
    }
    if !(t0.is_finite() && t1.is_finite()) || t0 == t1 {
        return Err(ContinuousError::invalid("t1", "integration interval must be finite and non-empty"));
    }
    if rows == 0 || !y0.len().is_multiple_of(rows) {
        return Err(ContinuousError::Shape(format!("{} values are not {rows} rows", y0.len())));
    }
    let dim = y0.len() / rows;
    let dir = (t1 - t0).signum();
    let span = (t1 - t0).abs();
    let mut y = y0.to_vec();
    let mut t = vec![t0; rows];
    let mut stats = Rk45Stats {
        nfe: 1,
        nfe_per_row: vec![1; rows],
        accepted_per_row: vec![0; rows],
        rejected_per_row: vec![0; rows],
    };
    let all: Vec<usize> = (0..rows).collect();
    let mut k1 = f(&all, &t, &y)?;
    check_len(&k1, y.len())?;
    let rms = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / dim as f64).sqrt();
    let mut h: Vec<f64> = (0..rows)
        .map(|r| {
            let row = &y[r * dim..(r + 1) * dim];
            let scale: Vec<f64> = row.iter().map(|v| opts.atol + opts.rtol * v.abs()).collect();
            let d0 = rms(&row.iter().zip(&scale).map(|(v, s)| v / s).collect::<Vec<_>>());
            let d1 =
                rms(&k1[r * dim..(r + 1) * dim].iter().zip(&scale).map(|(v, s)| v / s).collect::<Vec<_>>());
            let h0 = opts.h_init.unwrap_or(if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 });
            h0.min(span) * dir
        })
        .collect();
    let mut after_reject = vec![false; rows];
    let mut attempts = vec![0usize; rows];
    loop {
        let active: Vec<usize> = (0..rows).filter(|&r| (t[r] - t1) * dir < 0.0).collect();
        if active.is_empty() {
            break;
        }
        let na = active.len();
        for &r in &active {
            attempts[r] += 1;
            if attempts[r] > opts.max_steps {
                return Err(ContinuousError::Solver(format!(
                    "row {r} exceeded {} steps at t = {}",
                    opts.max_steps, t[r]
                )));
            }
            if ((t[r] + h[r]) - t1) * dir > 0.0 {
                h[r] = t1 - t[r];
            }
        }
        // k[s] holds the stage derivatives of the active rows (row-major, na × dim).
        let mut k: Vec<Vec<f64>> = Vec::with_capacity(7);
        k.push(active.iter().flat_map(|&r| k1[r * dim..(r + 1) * dim].iter().copied()).collect());
        let mut y_new = vec![0.0; na * dim];
        for s in 1..7 {
            let mut ys = vec![0.0; na * dim];
            for (i, &r) in active.iter().enumerate() {
                for j in 0..dim {
                    let mut acc = 0.0;
                    for (q, kq) in k.iter().enumerate() {
                        acc += A[s][q] * kq[i * dim + j];
                    }
                    ys[i * dim + j] = y[r * dim + j] + h[r] * acc;
                }
            }
            let ts: Vec<f64> = active.iter().map(|&r| t[r] + C[s] * h[r]).collect();
            let ks = f(&active, &ts, &ys)?;
            check_len(&ks, na * dim)?;
            if s == 6 {
                y_new = ys;
            }
            k.push(ks);
        }
        stats.nfe += 6;
        for (i, &r) in active.iter().enumerate() {
            stats.nfe_per_row[r] += 6;
            let mut acc = 0.0;
            for j in 0..dim {
                let mut e = 0.0;
                for (q, kq) in k.iter().enumerate() {
                    e += E[q] * kq[i * dim + j];
                }
                let sc = opts.atol + opts.rtol * y[r * dim + j].abs().max(y_new[i * dim + j].abs());
                acc += (h[r] * e / sc).powi(2);
            }
            let err = (acc / dim as f64).sqrt();
            if !err.is_finite() {
                return Err(ContinuousError::Solver(format!(
                    "non-finite error estimate in row {r} at t = {}",
                    t[r]
                )));
            }
            if err <= 1.0 {
                t[r] = if ((t[r] + h[r]) - t1).abs() < 1e-14 * span.max(1.0) { t1 } else { t[r] + h[r] };
                y[r * dim..(r + 1) * dim].copy_from_slice(&y_new[i * dim..(i + 1) * dim]);
                k1[r * dim..(r + 1) * dim].copy_from_slice(&k[6][i * dim..(i + 1) * dim]);
                stats.accepted_per_row[r] += 1;
                let fac = if err == 0.0 { 10.0 } else { (0.9 * err.powf(-0.2)).clamp(0.2, 10.0) };
                h[r] *= if after_reject[r] { fac.min(1.0) } else { fac };
                after_reject[r] = false;
            } else {
                stats.rejected_per_row[r] += 1;
                h[r] *= (0.9 * err.powf(-0.2)).clamp(0.2, 1.0);
                after_reject[r] = true;
            }
            if h[r].abs() < 1e-14 * span.max(1.0) {
                return Err(ContinuousError::Solver(format!(
                    "step size underflow in row {r} at t = {}",
                    t[r]
                )));
            }
        }
    }
    Ok((y, stats))
}

fn check_len(v: &[f64], n: usize) -> Result<()> {
    if v.len() != n {
        return Err(ContinuousError::Shape(format!("derivative has {} values, expected {n}", v.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y' = −2t·y has y = y₀·e^{−t²}; y' = cos(t)·y has y = y₀·e^{sin t}.
    #[test]
    fn closed_form_odes_to_tolerance() {
        let opts = Rk45Options { rtol: 1e-8, atol: 1e-10, ..Default::default() };
        let (y, st) = solve_rk45(
            |rows, ts, y| {
                Ok(rows
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &r)| {
                        let t = ts[i];
                        let v = y[i];
                        [if r == 0 { -2.0 * t * v } else { t.cos() * v }]
                    })
                    .collect())
            },
            0.0,
            2.0,
            &[1.5, 0.5],
            2,
            &opts,
        )
        .unwrap();
        assert!((y[0] - 1.5 * (-4.0f64).exp()).abs() < 1e-7, "{}", y[0]);
        assert!((y[1] - 0.5 * 2.0f64.sin().exp()).abs() < 1e-7, "{}", y[1]);
        assert!(st.nfe_per_row[0] != st.nfe_per_row[1] || st.nfe > 7);
        // backwards in time
        let (yb, _) = solve_rk45(|_, _, y| Ok(y.to_vec()), 1.0, 0.0, &[1.0], 1, &opts).unwrap();
        assert!((yb[0] - (-1.0f64).exp()).abs() < 1e-8);
        assert!(solve_rk45(|_, _, y| Ok(y.to_vec()), 0.0, 0.0, &[1.0], 1, &opts).is_err());
    }
}
