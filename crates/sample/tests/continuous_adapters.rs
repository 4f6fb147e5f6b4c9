//! Adapters between discrete/continuous/EDM models and the σ-space view agree with the exact
//! Gaussian denoiser; the reverse adapter drives a DDIM loop identically to DPM-Solver-1.

mod continuous_util;

use candle_core::{DType, Device, Tensor};
use continuous_util::{gaussian, start};
use rediffuse_core::sde::{DiscreteSigmas, EdmConfig, Sde};
use rediffuse_core::{BetaSchedule, Denoiser, DiffusionSchedule, Prediction};
use rediffuse_sample::continuous::*;

fn maxdiff(a: &Tensor, b: &Tensor) -> f64 {
    a.sub(b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
}

/// Exact continuous-time network for Gaussian data: given x_t and model time `t·scale` (or s(t)),
/// returns ε or the score of the SDE marginal.
struct ExactContinuous {
    data: GaussianData,
    sde: Sde,
    kind: Prediction,
    time_input: TimeInput,
}

impl Denoiser for ExactContinuous {
    fn prediction(&self) -> Prediction {
        self.kind
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let raw: Vec<f64> = t.to_dtype(DType::F64)?.to_vec1()?;
        let ts: Vec<f64> = raw
            .iter()
            .map(|&v| match self.time_input {
                TimeInput::Scaled { scale } => v / scale,
                TimeInput::MarginalStd => self.sde.t_from_sigma(v / self.sde.mean_coef(0.0)).unwrap(),
            })
            .collect();
        let (score, _) = sde_score(&self.data, &self.sde, x_t, &ts).unwrap();
        Ok(match self.kind {
            Prediction::Score => score,
            _ => {
                let s: Vec<f64> = ts.iter().map(|&t| -self.sde.marginal_std(t)).collect();
                let s = Tensor::from_vec(s, (ts.len(), 1), x_t.device())?;
                score.broadcast_mul(&s)?
            }
        })
    }
}

#[test]
fn discrete_adapter_is_exact_at_any_sigma() {
    let data = gaussian();
    let sch = DiffusionSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let eps_model = DiscreteGaussianEps { data: data.clone(), sigmas: DiscreteSigmas::new(&sch).unwrap() };
    let model = DiscreteModel::new(eps_model, &sch).unwrap();
    let (x, _) = start(32, 3.0, 1, DType::F64);
    for s in [model.sigma_min(), 0.05, 0.731, sch.sigma(500), 20.0, model.sigma_max()] {
        let err = maxdiff(&denoise_at(&model, &x, s).unwrap(), &data.denoise(&x, &[s; 32]).unwrap());
        // model time travels as f32 (Denoiser contract): ~1e-7 relative in t
        assert!(err < 1e-6, "σ = {s}: {err}");
    }
    assert!(denoise_at(&model, &x, 0.0).unwrap().to_vec2::<f64>().unwrap() == x.to_vec2::<f64>().unwrap());
    assert!(model.denoise(&x, &[1.0; 3]).is_err());
}

#[test]
fn continuous_adapter_is_exact_for_each_sde() {
    let data = gaussian();
    let (x, _) = start(16, 2.0, 2, DType::F64);
    for sde in [Sde::vp(), Sde::ve(), Sde::sub_vp()] {
        for (kind, time_input) in [
            (Prediction::Epsilon, TimeInput::Scaled { scale: 999.0 }),
            (Prediction::Score, TimeInput::Scaled { scale: 1.0 }),
            (Prediction::Epsilon, TimeInput::MarginalStd),
        ] {
            if time_input == TimeInput::MarginalStd && sde != Sde::ve() {
                continue;
            }
            let net = ExactContinuous { data: data.clone(), sde, kind, time_input };
            let model = ContinuousModel::new(net, sde, time_input).unwrap();
            for t in [0.01, 0.3, 0.9] {
                let s = sde.sigma(t);
                let err = maxdiff(&denoise_at(&model, &x, s).unwrap(), &data.denoise(&x, &[s; 16]).unwrap());
                assert!(err < 1e-6 * (1.0 + s), "{sde:?} {kind:?} t={t}: {err}");
            }
        }
    }
    let net =
        ExactContinuous { data, sde: Sde::ve(), kind: Prediction::V, time_input: TimeInput::MarginalStd };
    assert!(ContinuousModel::new(net, Sde::ve(), TimeInput::MarginalStd).is_err());
}

/// DDIM (η = 0) written with the discrete schedule over the reverse adapter equals
/// DPM-Solver-1 on the σ-space model, step for step.
#[test]
fn reverse_adapter_runs_ddim() {
    let data = gaussian();
    let sde = Sde::vp();
    let sch = sde.discrete_schedule(1000).unwrap();
    let view = DiscreteView::new(data.clone(), &sch).unwrap();
    let (x0, _) = start(64, 1.0, 3, DType::F64);
    let idx: Vec<usize> = (0..25).rev().map(|i| i * 40 + 39).collect();
    let mut x = x0.clone();
    for (k, &i) in idx.iter().enumerate() {
        let t = Tensor::from_vec(vec![i as f32; 64], 64, &Device::Cpu).unwrap();
        let eps = view.forward(&x, &t).unwrap();
        let (a, s) = (sch.sqrt_alpha_bar[i], sch.sqrt_one_minus_alpha_bar[i]);
        let x0hat = x.sub(&eps.affine(s, 0.0).unwrap()).unwrap().affine(1.0 / a, 0.0).unwrap();
        let ab_prev = if k + 1 < idx.len() { sch.alpha_bar[idx[k + 1]] } else { 1.0 };
        x = x0hat
            .affine(ab_prev.sqrt(), 0.0)
            .unwrap()
            .add(&eps.affine((1.0 - ab_prev).sqrt(), 0.0).unwrap())
            .unwrap();
    }
    let mut sig: Vec<f64> = idx.iter().map(|&i| sch.sigma(i)).collect();
    sig.push(0.0);
    let xs = x0.affine((1.0 + sig[0] * sig[0]).sqrt(), 0.0).unwrap();
    let (y, _) = dpm_solver(&data, &xs, &sig, 1, None).unwrap();
    let err = maxdiff(&x, &y);
    println!("DDIM over DiscreteView vs DPM-Solver-1: {err:.2e}");
    assert!(err < 1e-9);
    // the view's ε is the exact ε of the VP-discretised Gaussian at fractional t
    let exact = DiscreteGaussianEps { data, sigmas: DiscreteSigmas::new(&sch).unwrap() };
    let t = Tensor::from_vec(vec![123.25f32; 64], 64, &Device::Cpu).unwrap();
    assert!(maxdiff(&view.forward(&x0, &t).unwrap(), &exact.forward(&x0, &t).unwrap()) < 1e-10);
}

/// EDM preconditioning around a raw network whose F makes D exact gives back the exact D.
struct ExactEdmRaw {
    data: GaussianData,
    cfg: EdmConfig,
}

impl Denoiser for ExactEdmRaw {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x_in: &Tensor, c_noise: &Tensor) -> rediffuse_core::Result<Tensor> {
        let sig: Vec<f64> =
            c_noise.to_dtype(DType::F64)?.to_vec1::<f64>()?.iter().map(|c| (4.0 * c).exp()).collect();
        let b = sig.len();
        let col = |v: Vec<f64>| Tensor::from_vec(v, (b, 1), x_in.device()).unwrap();
        let x = x_in.broadcast_div(&col(sig.iter().map(|&s| self.cfg.c_in(s)).collect()))?;
        let d = self.data.denoise(&x, &sig).unwrap();
        let skip = col(sig.iter().map(|&s| self.cfg.c_skip(s)).collect());
        let out = col(sig.iter().map(|&s| self.cfg.c_out(s)).collect());
        Ok(d.sub(&x.broadcast_mul(&skip)?)?.broadcast_div(&out)?)
    }
}

#[test]
fn edm_precond_round_trip() {
    let data = gaussian();
    let cfg = EdmConfig::default();
    let model = EdmPrecond::new(ExactEdmRaw { data: data.clone(), cfg }, cfg).unwrap();
    let (x, _) = start(8, 5.0, 4, DType::F64);
    for s in [0.002, 0.3, 5.0, 80.0] {
        // c_noise travels as f32, so σ is reconstructed to ~1e-7 relative
        let err = maxdiff(&denoise_at(&model, &x, s).unwrap(), &data.denoise(&x, &[s; 8]).unwrap());
        assert!(err < 1e-4, "σ = {s}: {err}");
    }
    assert!(EdmPrecond::new(ExactEdmRaw { data, cfg }, EdmConfig { sigma_data: -1.0, ..cfg }).is_err());
}
