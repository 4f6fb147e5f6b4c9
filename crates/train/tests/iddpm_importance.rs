//! Importance sampling of timesteps (iDDPM §3.3): warm-up, p_t ∝ √E[L_t²], unbiasedness of the
//! reweighted loss, exact checkpoint round trip.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rediffuse_train::iddpm::{IddpmConfig, ImportanceSampler};

/// A fixed loss table L(t) spanning three orders of magnitude (like L_vlb over t).
fn table(t: usize) -> Vec<f64> {
    (0..t).map(|i| 10.0 * (-(i as f64) / 4.0).exp() + 0.01).collect()
}

/// Feed `rounds` losses for every timestep; round r multiplies L(t) by (1 + 0.1·r mod 3).
fn fill(s: &mut ImportanceSampler, l: &[f64], rounds: usize) {
    for r in 0..rounds {
        let ts: Vec<usize> = (0..l.len()).collect();
        let ls: Vec<f64> = l.iter().map(|v| v * (1.0 + 0.1 * (r % 3) as f64)).collect();
        s.update(&ts, &ls).unwrap();
    }
}

#[test]
fn uniform_until_every_timestep_has_ten_values() {
    let t = 20;
    let l = table(t);
    let mut s = ImportanceSampler::from_config(&IddpmConfig::default(), t).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    fill(&mut s, &l, 9);
    // one timestep short of its tenth value
    s.update(&(0..t - 1).collect::<Vec<_>>(), &l[..t - 1]).unwrap();
    assert!(!s.is_warmed_up());
    assert!(s.probabilities().iter().all(|&p| (p - 1.0 / t as f64).abs() < 1e-15));
    let (_, w) = s.sample_t(&mut rng, 100);
    assert!(w.iter().all(|&w| w == 1.0));
    s.update(&[t - 1], &[l[t - 1]]).unwrap();
    assert!(s.is_warmed_up());
    assert!(s.probabilities()[0] > 3.0 / t as f64, "after warm-up large-loss timesteps dominate");
}

#[test]
fn probabilities_are_proportional_to_root_mean_square_loss() {
    let t = 20;
    let l = table(t);
    for u in [0.0, 1e-3, 0.2] {
        let mut s = ImportanceSampler::new(t, 10, u).unwrap();
        fill(&mut s, &l, 13); // more than 10: only the last 10 rounds count
        let rms: Vec<f64> = (0..t)
            .map(|i| {
                let h: Vec<f64> = (3..13).map(|r| l[i] * (1.0 + 0.1 * (r % 3) as f64)).collect();
                assert_eq!(s.history(i).unwrap(), h.as_slice());
                (h.iter().map(|x| x * x).sum::<f64>() / 10.0).sqrt()
            })
            .collect();
        let total: f64 = rms.iter().sum();
        let p = s.probabilities();
        for i in 0..t {
            let want = (1.0 - u) * rms[i] / total + u / t as f64;
            assert!((p[i] - want).abs() < 1e-14, "u={u} t={i}: {} vs {want}", p[i]);
        }
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

/// E_{t∼p}[w_t·L(t)] = (1/T)Σ_t L(t): exactly from the probabilities and the returned weights,
/// and by Monte Carlo from `sample_t`, whose empirical frequencies match p. The weighted estimator
/// also has a smaller variance than uniform sampling on this table.
#[test]
fn reweighting_keeps_the_loss_unbiased() {
    let t = 20;
    let l = table(t);
    let mut s = ImportanceSampler::from_config(&IddpmConfig::default(), t).unwrap();
    fill(&mut s, &l, 10);
    let p = s.probabilities();
    let uniform_mean = l.iter().sum::<f64>() / t as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 200_000;
    let (ts, w) = s.sample_t(&mut rng, n);
    for (&ti, &wi) in ts.iter().zip(&w) {
        assert!((wi as f64 - 1.0 / (t as f64 * p[ti])).abs() < 1e-6 * wi as f64);
    }
    let exact: f64 = (0..t).map(|i| p[i] * (1.0 / (t as f64 * p[i])) * l[i]).sum();
    assert!((exact - uniform_mean).abs() < 1e-12);
    let vals: Vec<f64> = ts.iter().zip(&w).map(|(&ti, &wi)| wi as f64 * l[ti]).collect();
    let m = vals.iter().sum::<f64>() / n as f64;
    let var = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    let se = (var / n as f64).sqrt();
    println!("importance-weighted mean {m:.6} ± {se:.2e}, uniform-t mean {uniform_mean:.6}");
    assert!((m - uniform_mean).abs() < 4.0 * se, "{m} vs {uniform_mean} (se {se})");
    let mut counts = vec![0usize; t];
    for &ti in &ts {
        counts[ti] += 1;
    }
    for i in 0..t {
        let f = counts[i] as f64 / n as f64;
        let sd = (p[i] * (1.0 - p[i]) / n as f64).sqrt();
        assert!((f - p[i]).abs() < 5.0 * sd + 1e-9, "t={i}: freq {f} vs p {}", p[i]);
    }
    let var_uniform = l.iter().map(|v| (v - uniform_mean).powi(2)).sum::<f64>() / t as f64;
    println!("per-sample variance: importance {var:.4}, uniform {var_uniform:.4}");
    assert!(var < 0.2 * var_uniform);
}

#[test]
fn state_round_trips_through_json_exactly() {
    let t = 30;
    let l = table(t);
    let mut s = ImportanceSampler::from_config(&IddpmConfig::default(), t).unwrap();
    fill(&mut s, &l, 12);
    s.update(&[3, 3, 5], &[0.7, 0.8, 0.9]).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    let mut back: ImportanceSampler = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let (mut r1, mut r2) = (ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(1));
    for _ in 0..5 {
        let (a, wa) = s.sample_t(&mut r1, 64);
        let (b, wb) = back.sample_t(&mut r2, 64);
        assert_eq!((&a, &wa), (&b, &wb));
        let ls: Vec<f64> = a.iter().map(|&i| l[i] * 1.5).collect();
        s.update(&a, &ls).unwrap();
        back.update(&b, &ls).unwrap();
    }
    assert_eq!(back, s);

    // corrupt states are rejected
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut too_long = v.clone();
    too_long["history"][0] = serde_json::json!(vec!["1.0"; 11]);
    assert!(serde_json::from_value::<ImportanceSampler>(too_long).is_err());
    let mut wrong_t = v.clone();
    wrong_t["timesteps"] = serde_json::json!(31);
    assert!(serde_json::from_value::<ImportanceSampler>(wrong_t).is_err());
    let mut bad_u = v.clone();
    bad_u["uniform_prob"] = serde_json::json!(1.5);
    assert!(serde_json::from_value::<ImportanceSampler>(bad_u).is_err());
    let mut nan = v;
    nan["history"][2][0] = serde_json::json!("NaN");
    assert!(serde_json::from_value::<ImportanceSampler>(nan).is_err());
}

#[test]
fn bad_updates_and_parameters_are_errors() {
    let mut s = ImportanceSampler::new(5, 10, 0.0).unwrap();
    assert!(s.update(&[0, 1], &[1.0]).is_err());
    assert!(s.update(&[5], &[1.0]).is_err());
    assert!(s.update(&[1], &[f64::NAN]).is_err());
    assert!(s.history(1).unwrap().is_empty(), "a rejected update leaves the history unchanged");
    assert!(ImportanceSampler::new(0, 10, 0.0).is_err());
    assert!(ImportanceSampler::new(5, 0, 0.0).is_err());
    assert!(ImportanceSampler::new(5, 10, f64::NAN).is_err());
}
