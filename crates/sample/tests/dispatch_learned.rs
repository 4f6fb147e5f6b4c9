//! `SamplerSpec::DdpmLearned` through `dispatch::sample`: the learned-variance model attached with
//! `SampleModel::with_learned_variance` is sampled exactly as by `learned_variance_sample`
//! (all steps, and respaced with `space_timesteps`), while the other samplers see the mean half.

mod common;

use candle_core::{Device, Tensor};
use common::{linear, max_abs_diff};
use rediffuse_core::analytic::GaussianDenoiser;
use rediffuse_core::vlb::LearnedVarianceDenoiser;
use rediffuse_core::{Denoiser, NoiseSource, Prediction};
use rediffuse_sample::dispatch::{sample, DispatchError, Progress, SampleModel, SamplerSpec};
use rediffuse_sample::{
    learned_variance_sample, space_timesteps, DdimOptions, DdpmOptions, DdpmVariance, LearnedVarianceOptions,
};

/// A fixed-variance model exposed as a learned one: [model output, v ≡ const].
#[derive(Clone)]
struct ConstV<'a>(&'a GaussianDenoiser, f32);
impl Denoiser for ConstV<'_> {
    fn prediction(&self) -> Prediction {
        self.0.prediction()
    }
    fn forward(&self, x_t: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let out = self.0.forward(x_t, t)?;
        Ok(Tensor::cat(&[&out, &out.ones_like()?.affine(self.1 as f64, 0.0)?], 1)?)
    }
}

#[test]
fn ddpm_learned_dispatch_equals_the_direct_sampler() {
    let s = linear(100);
    let den = GaussianDenoiser::new(vec![0.5, -0.3], vec![vec![0.4, 0.1], vec![0.1, 0.2]], &s).unwrap();
    let full = ConstV(&den, 0.3);
    let model = SampleModel::from_discrete(LearnedVarianceDenoiser::new(full.clone()), s.clone())
        .unwrap()
        .with_learned_variance(full.clone());
    assert!(model.learned_variance().is_some());
    let n = 16;
    for (steps, clip) in [(None, None), (Some(10), Some(0.9f32))] {
        let spec = SamplerSpec::DdpmLearned { steps, clip_x0: clip };
        assert_eq!(spec.prior_scale(&model).unwrap(), 1.0);
        let mut seen = Vec::new();
        let mut cb = |p: &Progress<'_>| seen.push((p.step, p.total));
        let mut noise = NoiseSource::new(3, 0, n);
        let (got, stats) =
            sample(&spec, &model, None, &[2], &Device::Cpu, &mut noise, Some(&mut cb)).unwrap();
        let k = steps.unwrap_or(100);
        assert_eq!(stats.nfe, k);
        assert_eq!(seen.len(), k);
        assert_eq!(seen.last(), Some(&(k, Some(k))));

        let mut noise = NoiseSource::new(3, 0, n);
        let x_t = noise.randn(&[2], &Device::Cpu).unwrap();
        let ts = steps.map(|k| space_timesteps(100, &[k]).unwrap());
        let opts = LearnedVarianceOptions { clip_x0: clip, ..LearnedVarianceOptions::default() };
        let want = learned_variance_sample(&full, &s, ts.as_deref(), x_t, &opts, &mut noise, None).unwrap();
        assert_eq!(max_abs_diff(&got, &want), 0.0, "steps {steps:?}");
    }

    // DDPM on the mean half with σ² = β̃ differs from the learned variance v = 0.3 (more noise)
    let spec = SamplerSpec::Ddpm(DdpmOptions { variance: DdpmVariance::BetaTilde, clip_x0: None });
    let (fixed, _) =
        sample(&spec, &model, None, &[2], &Device::Cpu, &mut NoiseSource::new(3, 0, n), None).unwrap();
    let learned = SamplerSpec::DdpmLearned { steps: None, clip_x0: None };
    let (lv, _) =
        sample(&learned, &model, None, &[2], &Device::Cpu, &mut NoiseSource::new(3, 0, n), None).unwrap();
    assert!(max_abs_diff(&fixed, &lv) > 1e-3);
    // DDIM runs on the mean half
    let ddim = SamplerSpec::Ddim(DdimOptions { steps: 10, ..DdimOptions::default() });
    let (x, _) =
        sample(&ddim, &model, None, &[2], &Device::Cpu, &mut NoiseSource::new(3, 0, n), None).unwrap();
    assert_eq!(x.dims(), &[n, 2]);
}

#[test]
fn ddpm_learned_errors() {
    let s = linear(50);
    let den = GaussianDenoiser::new(vec![0.0], vec![vec![1.0]], &s).unwrap();
    let plain = SampleModel::from_discrete(&den, s.clone()).unwrap();
    let run = |m: &SampleModel<'_>, spec: SamplerSpec| {
        sample(&spec, m, None, &[1], &Device::Cpu, &mut NoiseSource::new(0, 0, 2), None).unwrap_err()
    };
    let e = run(&plain, SamplerSpec::DdpmLearned { steps: None, clip_x0: None });
    assert!(matches!(e, DispatchError::Invalid { name: "sampler", .. }), "{e}");
    let learned = SampleModel::from_discrete(LearnedVarianceDenoiser::new(ConstV(&den, 0.0)), s)
        .unwrap()
        .with_learned_variance(ConstV(&den, 0.0));
    for k in [0, 51] {
        let e = run(&learned, SamplerSpec::DdpmLearned { steps: Some(k), clip_x0: None });
        assert!(matches!(e, DispatchError::Invalid { name: "steps", .. }), "{e}");
    }
    let e = run(&learned, SamplerSpec::DdpmLearned { steps: Some(5), clip_x0: Some(-1.0) });
    assert!(e.to_string().contains("clip"), "{e}");
    let j = serde_json::to_string(&SamplerSpec::DdpmLearned { steps: Some(5), clip_x0: None }).unwrap();
    assert!(j.contains("\"kind\":\"ddpm-learned\""), "{j}");
    assert_eq!(
        serde_json::from_str::<SamplerSpec>(r#"{"kind":"ddpm-learned"}"#).unwrap(),
        SamplerSpec::DdpmLearned { steps: None, clip_x0: None }
    );
}
