//! The σ grids of the σ-space samplers (DPM-Solver(++), UniPC, Euler, Heun): uniform in λ, Karras'
//! ρ-schedule, or diffusers' choice of training timesteps of a discrete schedule.

use super::{invalid, Result, SampleModel};
use crate::continuous::lambda_uniform_sigmas;
use crate::timesteps::{ddim_timesteps, TimestepSpacing};
use rediffuse_core::sde::karras_sigmas;
use rediffuse_core::DiffusionSchedule;
use serde::{Deserialize, Serialize};

/// Where a σ-space sampler puts its `steps` noise levels σ₀ > … > σ_{steps−1} (a final 0 follows).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SigmaSchedule {
    /// Uniform in λ = −ln σ from the frame's σ_max to σ_min (DPM-Solver's "logSNR" steps).
    LogSnr,
    /// Karras et al. (2022) Eq. 5 over the frame's [σ_min, σ_max] (diffusers' `use_karras_sigmas`).
    Karras { rho: f64 },
    /// Training timesteps of the model's discrete schedule picked as diffusers' schedulers do for
    /// `timestep_spacing` (`steps_offset = 0`), σ = √((1 − ᾱ_t)/ᾱ_t) at those timesteps:
    /// * DPM-Solver(++), UniPC (`DPMSolverMultistepScheduler`, `DPMSolverSinglestepScheduler`,
    ///   `UniPCMultistepScheduler`): linspace `round(linspace(0, T−1, N+1))[::-1][:-1]`, leading
    ///   `(arange(N+1)·(T // (N+1)))[::-1][:-1]`, trailing `round(arange(T, 0, −T/N)) − 1`;
    /// * Euler, Heun (`EulerDiscreteScheduler`, `HeunDiscreteScheduler`): linspace
    ///   `linspace(0, T−1, N)[::-1]` (fractional timesteps, σ interpolated linearly in t as
    ///   diffusers' `np.interp`), leading `(arange(N)·(T // N))[::-1]`, trailing as above.
    ///
    /// ᾱ = 0 (zero terminal SNR) is replaced by 2⁻²⁴ as diffusers does. Timesteps with
    /// λ = −ln σ below `lambda_min_clipped` are left out first (T becomes the count of the others),
    /// as `DPMSolverMultistepScheduler(lambda_min_clipped)` does.
    Timesteps {
        spacing: TimestepSpacing,
        #[serde(default = "default_lambda_min_clipped")]
        lambda_min_clipped: Option<f64>,
    },
    /// Uniform in flow time t = 1/(σ + 1 − σ_min) (`rediffuse_core::flow`) from the frame's σ_max
    /// to t = 1: t_i = t₀ + i(1 − t₀)/steps, so that Euler on it is rectified flow's Euler in t
    /// (the default of flow-matching runs; one step allowed).
    FlowTime { sigma_min: f64 },
    /// Karras' ρ-schedule over the frame without its σ_min end point
    /// (`rediffuse_core::sde::nested_karras_sigmas`): the N-step grid is every other point of the
    /// 2N-step one (progressively distilled runs' default; one step allowed).
    NestedKarras { rho: f64 },
}

/// The default λ clip of [`SigmaSchedule::Timesteps`]: −5.1, diffusers' recommended value for the
/// cosine schedule (whose last timesteps have σ up to ~10⁴ and an unreliable x̂₀). It removes no
/// timestep of the linear (λ ≥ −5.06 at T = 1000) or scaled-linear schedules, whose grids are
/// then exactly diffusers' defaults.
pub const DEFAULT_LAMBDA_MIN_CLIPPED: f64 = -5.1;

fn default_lambda_min_clipped() -> Option<f64> {
    Some(DEFAULT_LAMBDA_MIN_CLIPPED)
}

impl SigmaSchedule {
    /// Diffusers' timesteps with `spacing` and the default λ clip.
    pub fn timesteps(spacing: TimestepSpacing) -> Self {
        SigmaSchedule::Timesteps { spacing, lambda_min_clipped: default_lambda_min_clipped() }
    }
}

/// Where the σ grid ends: σ = 0 (a final denoising step; diffusers' `final_sigmas_type = "zero"`)
/// or the model's smallest σ (`"sigma_min"`, the only choice diffusers offers for its noise-form
/// DPM-Solver), only with [`SigmaSchedule::Timesteps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinalSigma {
    #[default]
    Zero,
    SigmaMin,
}

/// Which diffusers scheduler family a grid follows (they pick timesteps differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridFamily {
    /// DPM-Solver, DPM-Solver++, UniPC.
    Dpm,
    /// Euler, Heun.
    Euler,
}

impl SampleModel<'_> {
    /// The σ schedule used when a spec leaves it open: [`SampleModel::with_sigma_schedule`]'s, else
    /// diffusers' linspace timesteps for discrete-time models (DDPM-trained networks, analytic
    /// denoisers on a schedule), else uniform in λ (DPM family) or Karras ρ = 7 (Euler, Heun).
    pub fn default_sigma_schedule(&self, family: GridFamily) -> SigmaSchedule {
        match (self.sigma_schedule.or(self.native_schedule), self.discrete_native, family) {
            (Some(s), _, _) => s,
            (None, true, _) => SigmaSchedule::timesteps(TimestepSpacing::Linspace),
            (None, false, GridFamily::Dpm) => SigmaSchedule::LogSnr,
            (None, false, GridFamily::Euler) => SigmaSchedule::Karras { rho: 7.0 },
        }
    }

    /// σ₀ > … > σ_{steps−1} > 0 of `schedule` for `family`, then 0 or σ_min ([`FinalSigma`]):
    /// `steps + 1` values.
    pub fn sigma_grid(&self, schedule: SigmaSchedule, family: GridFamily, steps: usize) -> Result<Vec<f64>> {
        let one_step_ok = matches!(
            schedule,
            SigmaSchedule::Timesteps { .. }
                | SigmaSchedule::FlowTime { .. }
                | SigmaSchedule::NestedKarras { .. }
        );
        if steps < 2 && !one_step_ok {
            return Err(invalid("steps", format!("need at least 2 steps, got {steps}")));
        }
        if steps == 0 {
            return Err(invalid("steps", "need at least 1 step"));
        }
        let f = &self.frame;
        if self.final_sigma == FinalSigma::SigmaMin && !matches!(schedule, SigmaSchedule::Timesteps { .. }) {
            return Err(invalid(
                "final_sigma",
                "sigma-min needs the timesteps grid (it already ends at σ_min)",
            ));
        }
        let mut out = match schedule {
            SigmaSchedule::LogSnr => lambda_uniform_sigmas(f.sigma_max, f.sigma_min, steps - 1)?,
            SigmaSchedule::Karras { rho } => {
                let mut k = karras_sigmas(steps, f.sigma_min, f.sigma_max, rho)?;
                k.pop();
                k
            }
            SigmaSchedule::Timesteps { spacing, lambda_min_clipped } => {
                timestep_sigmas(&self.schedule, spacing, family, steps, lambda_min_clipped)?
            }
            SigmaSchedule::FlowTime { sigma_min } => flow_time_sigmas(f.sigma_max, sigma_min, steps)?,
            SigmaSchedule::NestedKarras { rho } => {
                let mut k = rediffuse_core::sde::nested_karras_sigmas(steps, f.sigma_min, f.sigma_max, rho)?;
                k.pop();
                k
            }
        };
        out.push(match self.final_sigma {
            FinalSigma::Zero => 0.0,
            FinalSigma::SigmaMin => schedule_sigmas(&self.schedule)[0],
        });
        if out.windows(2).any(|w| w[1] >= w[0]) {
            return Err(invalid(
                "steps",
                format!("{steps} steps give repeated noise levels on this schedule"),
            ));
        }
        Ok(out)
    }
}

/// σ₀ = `sigma_max` > … > σ_{steps−1}: the σ-space levels of flow times uniform from
/// t₀ = t(σ_max) to 1 (the last, t = 1, is left for the final level).
fn flow_time_sigmas(sigma_max: f64, sigma_min: f64, steps: usize) -> Result<Vec<f64>> {
    rediffuse_core::flow::check_sigma_min(sigma_min)?;
    let t0 = rediffuse_core::flow::time_of_sigma(sigma_max, sigma_min);
    Ok((0..steps)
        .map(|i| {
            let t = t0 + i as f64 * (1.0 - t0) / steps as f64;
            rediffuse_core::flow::sigma_of_time(t, sigma_min)
        })
        .collect())
}

/// Diffusers' inference timesteps (descending, possibly fractional for the Euler family).
pub fn diffusers_timesteps(
    num_train_timesteps: usize,
    spacing: TimestepSpacing,
    family: GridFamily,
    steps: usize,
) -> Result<Vec<f64>> {
    let t = num_train_timesteps;
    if steps == 0 || steps > t {
        return Err(invalid("steps", format!("must lie in 1..={t} (training timesteps), got {steps}")));
    }
    Ok(match (family, spacing) {
        (_, TimestepSpacing::Trailing) => {
            ddim_timesteps(t, steps, spacing)?.into_iter().map(|v| v as f64).collect()
        }
        (GridFamily::Dpm, _) => {
            // N + 1 points ending at 0, the last dropped (final_sigmas_type = "zero" adds σ = 0)
            if steps + 1 > t {
                return Err(invalid("steps", format!("must be < {t} with this spacing, got {steps}")));
            }
            let mut v = ddim_timesteps(t, steps + 1, spacing)?;
            v.pop();
            v.into_iter().map(|v| v as f64).collect()
        }
        (GridFamily::Euler, TimestepSpacing::Leading) => {
            ddim_timesteps(t, steps, spacing)?.into_iter().map(|v| v as f64).collect()
        }
        (GridFamily::Euler, TimestepSpacing::Linspace) => {
            if steps == 1 {
                vec![0.0]
            } else {
                let step = (t - 1) as f64 / (steps - 1) as f64;
                (0..steps)
                    .rev()
                    .map(|i| if i == steps - 1 { (t - 1) as f64 } else { i as f64 * step })
                    .collect()
            }
        }
    })
}

/// σ_t = √((1 − ᾱ_t)/ᾱ_t) of every training timestep (ᾱ = 0 read as 2⁻²⁴).
fn schedule_sigmas(schedule: &DiffusionSchedule) -> Vec<f64> {
    schedule
        .alpha_bar
        .iter()
        .map(|&a| {
            let a = if a > 0.0 { a } else { 2f64.powi(-24) };
            ((1.0 - a) / a).sqrt()
        })
        .collect()
}

/// σ at diffusers' timesteps of `schedule` (linear interpolation in t between training indices).
fn timestep_sigmas(
    schedule: &DiffusionSchedule,
    spacing: TimestepSpacing,
    family: GridFamily,
    steps: usize,
    lambda_min_clipped: Option<f64>,
) -> Result<Vec<f64>> {
    let sig = schedule_sigmas(schedule);
    let clipped = match lambda_min_clipped {
        Some(l) if l.is_nan() => return Err(invalid("lambda_min_clipped", "must not be NaN")),
        Some(l) => sig.iter().filter(|&&s| -s.ln() < l).count(),
        None => 0,
    };
    if clipped + 2 > sig.len() {
        return Err(invalid("lambda_min_clipped", "leaves fewer than 2 timesteps"));
    }
    let ts = diffusers_timesteps(sig.len() - clipped, spacing, family, steps)?;
    Ok(ts
        .iter()
        .map(|&t| {
            let lo = (t.floor() as usize).min(sig.len() - 1);
            let hi = (lo + 1).min(sig.len() - 1);
            let w = t - lo as f64;
            (1.0 - w) * sig[lo] + w * sig[hi]
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timesteps printed by diffusers 0.3x for T = 1000 (see the CLI golden file).
    #[test]
    fn diffusers_timestep_choices() {
        let dpm = diffusers_timesteps(1000, TimestepSpacing::Linspace, GridFamily::Dpm, 10).unwrap();
        assert_eq!(dpm, vec![999., 899., 799., 699., 599., 500., 400., 300., 200., 100.]);
        let lead = diffusers_timesteps(1000, TimestepSpacing::Leading, GridFamily::Dpm, 10).unwrap();
        assert_eq!(lead, vec![900., 810., 720., 630., 540., 450., 360., 270., 180., 90.]);
        let trail = diffusers_timesteps(1000, TimestepSpacing::Trailing, GridFamily::Dpm, 10).unwrap();
        assert_eq!(trail, vec![999., 899., 799., 699., 599., 499., 399., 299., 199., 99.]);
        let euler = diffusers_timesteps(1000, TimestepSpacing::Linspace, GridFamily::Euler, 10).unwrap();
        assert_eq!(euler, vec![999., 888., 777., 666., 555., 444., 333., 222., 111., 0.]);
        let frac = diffusers_timesteps(1000, TimestepSpacing::Linspace, GridFamily::Euler, 4).unwrap();
        assert_eq!(frac, vec![999., 666., 333., 0.]);
        let e20 = diffusers_timesteps(1000, TimestepSpacing::Linspace, GridFamily::Euler, 20).unwrap();
        assert!((e20[1] - 946.4210526315).abs() < 1e-9);
        assert!(diffusers_timesteps(1000, TimestepSpacing::Linspace, GridFamily::Dpm, 1000).is_err());
        assert!(diffusers_timesteps(1000, TimestepSpacing::Linspace, GridFamily::Euler, 0).is_err());
    }
}
