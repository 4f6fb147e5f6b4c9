//! Sub-sequences of the training timesteps used by accelerated samplers.

use crate::error::{Result, SampleError};
use serde::{Deserialize, Serialize};

/// How K inference timesteps are picked from T training steps; the three
/// variants of diffusers' `DDIMScheduler.timestep_spacing` ("Common Diffusion
/// Noise Schedules and Sample Steps are Flawed", Table 2), with `steps_offset = 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimestepSpacing {
    /// `(arange(0, K) · (T // K))` reversed: starts at `(K−1)·(T//K)`, ends at 0.
    Leading,
    /// `round(arange(T, 0, −T/K)) − 1`: starts at T−1.
    Trailing,
    /// `round(linspace(0, T−1, K))` reversed: starts at T−1, ends at 0.
    Linspace,
}

/// The K timestep indices (descending) of `spacing` over `num_train_timesteps` = T.
/// Rounding is half-to-even, as numpy's `round`. Requires 1 ≤ K ≤ T.
pub fn ddim_timesteps(
    num_train_timesteps: usize,
    steps: usize,
    spacing: TimestepSpacing,
) -> Result<Vec<usize>> {
    let (t, k) = (num_train_timesteps, steps);
    if k == 0 || k > t {
        return Err(SampleError::invalid(
            "steps",
            format!("must be in 1..={t} (training timesteps), got {k}"),
        ));
    }
    let out: Vec<usize> = match spacing {
        TimestepSpacing::Leading => {
            let ratio = t / k;
            (0..k).rev().map(|i| i * ratio).collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = t as f64 / k as f64;
            (0..k).map(|i| (t as f64 - i as f64 * ratio).round_ties_even() as usize - 1).collect()
        }
        TimestepSpacing::Linspace => {
            if k == 1 {
                vec![0]
            } else {
                let step = (t - 1) as f64 / (k - 1) as f64;
                (0..k)
                    .rev()
                    .map(|i| if i == k - 1 { t - 1 } else { (i as f64 * step).round_ties_even() as usize })
                    .collect()
            }
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TimestepSpacing::*;

    #[test]
    fn diffusers_values_t1000_k10() {
        assert_eq!(
            ddim_timesteps(1000, 10, Leading).unwrap(),
            vec![900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
        );
        assert_eq!(
            ddim_timesteps(1000, 10, Trailing).unwrap(),
            vec![999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
        );
        // linspace(0, 999, 10) = 0, 111, …, 999 exactly.
        assert_eq!(
            ddim_timesteps(1000, 10, Linspace).unwrap(),
            vec![999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
        );
    }

    #[test]
    fn hand_derived_uneven_cases() {
        // T=1000, K=3: leading ratio 333 -> 666, 333, 0.
        assert_eq!(ddim_timesteps(1000, 3, Leading).unwrap(), vec![666, 333, 0]);
        // trailing: 1000, 666.67, 333.33 -> round 1000, 667, 333 -> −1.
        assert_eq!(ddim_timesteps(1000, 3, Trailing).unwrap(), vec![999, 666, 332]);
        // linspace(0, 999, 3) = 0, 499.5, 999 -> 499.5 rounds to even 500.
        assert_eq!(ddim_timesteps(1000, 3, Linspace).unwrap(), vec![999, 500, 0]);
        // T=10, K=4: trailing 10, 7.5, 5, 2.5 -> half-to-even 10, 8, 5, 2 -> 9, 7, 4, 1.
        assert_eq!(ddim_timesteps(10, 4, Trailing).unwrap(), vec![9, 7, 4, 1]);
        // linspace(0, 9, 4) = 0, 3, 6, 9.
        assert_eq!(ddim_timesteps(10, 4, Linspace).unwrap(), vec![9, 6, 3, 0]);
        // leading ratio 10 // 4 = 2 -> 6, 4, 2, 0.
        assert_eq!(ddim_timesteps(10, 4, Leading).unwrap(), vec![6, 4, 2, 0]);
        // linspace(0, 49, 20): step 49/19 = 2.5789…; i=1 -> 2.58 -> 3, i=19 -> 49.
        let l = ddim_timesteps(50, 20, Linspace).unwrap();
        assert_eq!((l[0], l[18], l[19]), (49, 3, 0));
    }

    #[test]
    fn full_and_single_step() {
        for s in [Leading, Trailing, Linspace] {
            let all = ddim_timesteps(7, 7, s).unwrap();
            assert_eq!(all, vec![6, 5, 4, 3, 2, 1, 0], "{s:?}");
        }
        assert_eq!(ddim_timesteps(1000, 1, Leading).unwrap(), vec![0]);
        assert_eq!(ddim_timesteps(1000, 1, Trailing).unwrap(), vec![999]);
        assert_eq!(ddim_timesteps(1000, 1, Linspace).unwrap(), vec![0]);
    }

    #[test]
    fn strictly_decreasing_in_range_for_all_sizes() {
        for t in 1..=80usize {
            for k in 1..=t {
                for s in [Leading, Trailing, Linspace] {
                    let ts = ddim_timesteps(t, k, s).unwrap();
                    assert_eq!(ts.len(), k);
                    assert!(ts.windows(2).all(|w| w[0] > w[1]), "T={t} K={k} {s:?}: {ts:?}");
                    assert!(ts[0] < t);
                }
            }
        }
    }

    #[test]
    fn invalid_step_counts() {
        assert!(ddim_timesteps(1000, 0, Leading).is_err());
        assert!(ddim_timesteps(1000, 1001, Trailing).is_err());
        let json = serde_json::to_string(&Trailing).unwrap();
        assert_eq!(json, "\"trailing\"");
    }
}
