//! iDDPM's hybrid objective: values, the stop-gradient on μ_θ, and config validation.

use candle_core::{Device, Tensor, Var};
use rediffuse_core::loss::{l_simple_per_sample, q_sample};
use rediffuse_core::vlb::{p_mean_variance, vlb_terms, Reduction, VarianceMode};
use rediffuse_core::{BetaSchedule, DiffusionSchedule, NoiseSource, Prediction};
use rediffuse_train::iddpm::{iddpm_loss, weighted_mean, IddpmConfig, IddpmObjective};
use rediffuse_train::TrainError;

struct Batch {
    sch: DiffusionSchedule,
    x0: Tensor,
    eps: Tensor,
    xt: Tensor,
    idx: Vec<usize>,
    out: Var,
}

/// A batch of 6 images [1, 4, 4] on a cosine schedule, t including index 0 (the L₀ term), and a
/// random stand-in network output [6, 2, 4, 4] as a Var.
fn batch() -> Batch {
    let dev = Device::Cpu;
    let sch = DiffusionSchedule::new(BetaSchedule::cosine(), 100).unwrap();
    let k: Vec<f32> =
        NoiseSource::new(1, 0, 6).uniform().iter().cycle().take(96).copied().map(|u| u as f32).collect();
    // 8-bit values in [−1, 1]
    let x0: Vec<f32> = k
        .iter()
        .enumerate()
        .map(|(j, u)| (((u * 255.0) as usize + 37 * j) % 256) as f32 / 127.5 - 1.0)
        .collect();
    let x0 = Tensor::from_vec(x0, (6, 1, 4, 4), &dev).unwrap();
    let eps = NoiseSource::new(2, 0, 6).randn(&[1, 4, 4], &dev).unwrap();
    let idx = vec![0usize, 1, 7, 42, 80, 99];
    let xt = q_sample(&sch, &x0, &eps, &idx).unwrap();
    let out = NoiseSource::new(3, 0, 6).randn(&[2, 4, 4], &dev).unwrap().affine(0.5, 0.0).unwrap();
    Batch { sch, x0, eps, xt, idx, out: Var::from_tensor(&out).unwrap() }
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
}

fn v1(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn hybrid_value_is_l_simple_plus_lambda_t_vlb_bits() {
    let b = batch();
    let cfg = IddpmConfig::default();
    assert_eq!(cfg.lambda_vlb, 1e-3);
    for pred in [Prediction::Epsilon, Prediction::V, Prediction::Sample] {
        let l = iddpm_loss(&cfg, &b.sch, pred, b.out.as_tensor(), &b.x0, &b.eps, &b.xt, &b.idx).unwrap();
        let mean = b.out.narrow(1, 0, 1).unwrap();
        let v = b.out.narrow(1, 1, 1).unwrap();
        let ls = l_simple_per_sample(&b.sch, pred, &mean, &b.x0, &b.eps, &b.idx).unwrap();
        let p =
            p_mean_variance(&b.sch, pred, VarianceMode::LearnedRange, &mean, Some(&v), &b.xt, &b.idx, None)
                .unwrap();
        let vlb = vlb_terms(&b.sch, &b.x0, &b.xt, &b.idx, &p, 256, Reduction::Mean).unwrap();
        let (ls, vlb, got, got_vlb) = (v1(&ls), v1(&vlb), v1(&l.loss), v1(&l.vlb));
        for k in 0..6 {
            let want = ls[k] as f64 + 1e-3 * 100.0 * vlb[k] as f64 / std::f64::consts::LN_2;
            assert!((got[k] as f64 - want).abs() < 1e-4 * want.abs().max(1.0), "{pred:?} {k}");
            assert!(
                (got_vlb[k] as f64 - vlb[k] as f64 / std::f64::consts::LN_2).abs()
                    < 1e-4 * (1.0 + got_vlb[k].abs() as f64)
            );
        }
        assert_eq!(v1(&l.l_simple), ls);
    }
}

/// With the stop-gradient, the mean half's gradient is exactly that of L_simple alone and the
/// v half's gradient is that of λ·T·L_vlb alone; without it (Vlb objective) the mean half is
/// trained by the bound.
#[test]
fn mean_half_gets_gradient_only_from_l_simple() {
    let b = batch();
    let cfg = IddpmConfig::default();
    let pred = Prediction::Epsilon;
    let l = iddpm_loss(&cfg, &b.sch, pred, b.out.as_tensor(), &b.x0, &b.eps, &b.xt, &b.idx).unwrap();
    let grads = l.loss.mean_all().unwrap().backward().unwrap();
    let g = grads.get(b.out.as_tensor()).unwrap();
    let (g_mean, g_v) = (g.narrow(1, 0, 1).unwrap(), g.narrow(1, 1, 1).unwrap());

    // L_simple alone, as a function of the mean half only.
    let mean = Var::from_tensor(&b.out.narrow(1, 0, 1).unwrap()).unwrap();
    let ls = l_simple_per_sample(&b.sch, pred, mean.as_tensor(), &b.x0, &b.eps, &b.idx).unwrap();
    let g_ls = ls.mean_all().unwrap().backward().unwrap();
    let d_mean = max_abs(&g_mean, g_ls.get(mean.as_tensor()).unwrap());
    println!("max |∂L_hybrid/∂mean − ∂L_simple/∂mean| = {d_mean:e}");
    assert!(d_mean < 1e-7, "{d_mean}");

    // λ·T·L_vlb alone, as a function of v only (mean fixed).
    let v = Var::from_tensor(&b.out.narrow(1, 1, 1).unwrap()).unwrap();
    let fixed_mean = b.out.narrow(1, 0, 1).unwrap().detach();
    let p = p_mean_variance(
        &b.sch,
        pred,
        VarianceMode::LearnedRange,
        &fixed_mean,
        Some(v.as_tensor()),
        &b.xt,
        &b.idx,
        None,
    )
    .unwrap();
    let vlb = vlb_terms(&b.sch, &b.x0, &b.xt, &b.idx, &p, 256, Reduction::Mean).unwrap();
    let scaled = vlb.affine(1e-3 * 100.0 / std::f64::consts::LN_2, 0.0).unwrap().mean_all().unwrap();
    let g_vlb = scaled.backward().unwrap();
    let g_vlb = g_vlb.get(v.as_tensor()).unwrap();
    let d_v = max_abs(&g_v, g_vlb);
    let norm_v = g_v.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    println!("max |∂L_hybrid/∂v − ∂(λT L_vlb)/∂v| = {d_v:e}, max |∂/∂v| = {norm_v:e}");
    assert!(norm_v > 1e-6, "v must receive gradient");
    assert!(d_v < 1e-6 * norm_v.max(1.0));

    // Without the stop-gradient the mean half receives the bound's gradient as well.
    let cfg_vlb = IddpmConfig { objective: IddpmObjective::Vlb, ..IddpmConfig::default() };
    let l = iddpm_loss(&cfg_vlb, &b.sch, pred, b.out.as_tensor(), &b.x0, &b.eps, &b.xt, &b.idx).unwrap();
    let g = l.loss.mean_all().unwrap().backward().unwrap();
    let g_mean_vlb = g.get(b.out.as_tensor()).unwrap().narrow(1, 0, 1).unwrap();
    let m = g_mean_vlb.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(m > 1e-4, "the VLB objective trains the mean: {m}");
    // and its value is T·L_t in bits
    let want: Vec<f32> = v1(&l.vlb).iter().map(|x| x * 100.0).collect();
    for (a, w) in v1(&l.loss).iter().zip(&want) {
        assert!((a - w).abs() < 1e-4 * w.abs().max(1.0));
    }
}

#[test]
fn weighted_mean_and_shape_errors() {
    let b = batch();
    let cfg = IddpmConfig::default();
    let l = iddpm_loss(&cfg, &b.sch, Prediction::Epsilon, b.out.as_tensor(), &b.x0, &b.eps, &b.xt, &b.idx)
        .unwrap();
    let w = [0.5f32, 1.0, 2.0, 1.0, 0.25, 4.0];
    let got: f32 = weighted_mean(&l.loss, &w).unwrap().to_scalar().unwrap();
    let want = v1(&l.loss).iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() / 6.0;
    assert!((got - want).abs() < 1e-5 * want.abs().max(1.0));
    assert!(weighted_mean(&l.loss, &w[..5]).is_err());
    // a fixed-variance (C-channel) output is rejected
    let half = b.out.narrow(1, 0, 1).unwrap();
    let r = iddpm_loss(&cfg, &b.sch, Prediction::Epsilon, &half, &b.x0, &b.eps, &b.xt, &b.idx);
    assert!(r.is_err());
    let r =
        iddpm_loss(&cfg, &b.sch, Prediction::Epsilon, b.out.as_tensor(), &b.x0, &b.eps, &b.xt, &b.idx[..5]);
    assert!(r.is_err());
}

#[test]
fn config_serde_defaults_and_validation() {
    let c: IddpmConfig = toml::from_str("importance_sampling = true").unwrap();
    assert_eq!(c, IddpmConfig { importance_sampling: true, ..IddpmConfig::default() });
    assert_eq!((c.lambda_vlb, c.history_per_term, c.uniform_prob, c.data_levels), (1e-3, 10, 1e-3, 256));
    let t = toml::to_string(&IddpmConfig { objective: IddpmObjective::Vlb, ..c.clone() }).unwrap();
    assert!(t.contains("objective = \"vlb\""), "{t}");
    assert_eq!(toml::from_str::<IddpmConfig>(&t).unwrap().objective, IddpmObjective::Vlb);
    assert!(toml::from_str::<IddpmConfig>("lambda = 1.0").is_err(), "unknown fields are rejected");
    for (bad, field) in [
        (IddpmConfig { lambda_vlb: -1.0, ..IddpmConfig::default() }, "iddpm.lambda_vlb"),
        (IddpmConfig { lambda_vlb: f64::NAN, ..IddpmConfig::default() }, "iddpm.lambda_vlb"),
        (IddpmConfig { history_per_term: 0, ..IddpmConfig::default() }, "iddpm.history_per_term"),
        (IddpmConfig { uniform_prob: 1.0, ..IddpmConfig::default() }, "iddpm.uniform_prob"),
        (IddpmConfig { uniform_prob: -0.1, ..IddpmConfig::default() }, "iddpm.uniform_prob"),
        (IddpmConfig { data_levels: 1, ..IddpmConfig::default() }, "iddpm.data_levels"),
    ] {
        match bad.validate() {
            Err(TrainError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected InvalidConfig({field}), got {other:?}"),
        }
    }
}
