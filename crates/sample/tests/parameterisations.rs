//! The samplers only see (x̂₀, ε̂): the same analytic model exposed as ε-, v- or
//! score-prediction gives the same samples, and DDPM matches Eq. 11 for ε-models.

mod common;

use candle_core::Tensor;
use common::{init, linear, max_abs_diff};
use rediffuse_core::analytic::{GmmDenoiser, GmmSpec};
use rediffuse_core::prediction::convert;
use rediffuse_core::tensor_util::{scalar_like, timesteps_tensor};
use rediffuse_core::{Denoiser, DiffusionSchedule, Prediction};
use rediffuse_sample::{ddim_sample, ddpm_sample, DdimOptions, DdpmOptions, DdpmVariance, TimestepSpacing};

/// Re-expresses an x̂₀ model's output as `kind` (all rows share one timestep).
struct Reparam<'a> {
    inner: &'a GmmDenoiser,
    kind: Prediction,
    schedule: &'a DiffusionSchedule,
}

impl Denoiser for Reparam<'_> {
    fn prediction(&self) -> Prediction {
        self.kind
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let x0 = self.inner.forward(x_t, t)?;
        let i = t.to_vec1::<f32>()?[0] as usize;
        let b = x_t.dim(0)?;
        let a = scalar_like(self.schedule.sqrt_alpha_bar[i], b, x_t.rank(), x_t.device())?;
        let s = scalar_like(self.schedule.sqrt_one_minus_alpha_bar[i], b, x_t.rank(), x_t.device())?;
        convert(Prediction::Sample, self.kind, &x0, x_t, &a, &s)
    }
}

fn spec() -> GmmSpec {
    GmmSpec { weights: vec![1.0, 2.0], means: vec![vec![-0.5, 0.5], vec![0.8, -0.3]], stds: vec![0.2, 0.3] }
}

#[test]
fn all_prediction_kinds_give_the_same_samples() {
    let s = linear(100);
    let den = GmmDenoiser::new(&spec(), &s).unwrap();
    let (x, noise) = init(3, 32, &[2]);
    let reference = {
        let mut n = noise.clone();
        let opts = DdimOptions {
            steps: 25,
            eta: 0.5,
            spacing: TimestepSpacing::Linspace,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        };
        ddim_sample(&den, &s, x.clone(), &opts, &mut n, None).unwrap()
    };
    for kind in [Prediction::Epsilon, Prediction::V, Prediction::Score] {
        let model = Reparam { inner: &den, kind, schedule: &s };
        let mut n = noise.clone();
        let opts = DdimOptions {
            steps: 25,
            eta: 0.5,
            spacing: TimestepSpacing::Linspace,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        };
        let out = ddim_sample(&model, &s, x.clone(), &opts, &mut n, None).unwrap();
        let d = max_abs_diff(&reference, &out);
        println!("{kind:?}: max diff {d:e}");
        assert!(d < 1e-3, "{kind:?}: {d}");
    }
}

#[test]
fn ddpm_matches_eq11_for_epsilon_model() {
    let s = linear(100);
    let den = GmmDenoiser::new(&spec(), &s).unwrap();
    let model = Reparam { inner: &den, kind: Prediction::Epsilon, schedule: &s };
    for variance in [DdpmVariance::Beta, DdpmVariance::BetaTilde] {
        let (x, noise) = init(8, 16, &[2]);
        let mut n1 = noise.clone();
        let opts = DdpmOptions { variance, clip_x0: None };
        let got = ddpm_sample(&model, &s, x.clone(), &opts, &mut n1, None).unwrap();
        // Eq. 11: x_{t−1} = (x_t − β_t/√(1 − ᾱ_t)·ε̂)/√α_t + σ_t z, z = 0 at t = 1.
        let mut n2 = noise.clone();
        let mut xt = x;
        for i in (0..100).rev() {
            let t = timesteps_tensor(&[i; 16], xt.device()).unwrap();
            let eps = model.forward(&xt, &t).unwrap();
            let mean = (xt - eps.affine(s.betas[i] / s.sqrt_one_minus_alpha_bar[i], 0.0).unwrap())
                .unwrap()
                .affine(1.0 / s.alphas[i].sqrt(), 0.0)
                .unwrap();
            let var = if variance == DdpmVariance::Beta { s.betas[i] } else { s.posterior_variance[i] };
            xt = if i > 0 {
                let z = n2.randn(&[2], mean.device()).unwrap();
                (mean + z.affine(var.sqrt(), 0.0).unwrap()).unwrap()
            } else {
                mean
            };
        }
        let d = max_abs_diff(&got, &xt);
        println!("Eq. 11 {variance:?}: max diff {d:e}");
        assert!(d < 1e-4, "{variance:?}: {d}");
    }
}
