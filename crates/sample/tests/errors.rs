//! Bad options and inputs are typed errors, never panics.

mod common;

use candle_core::{Device, Tensor};
use common::{init, linear};
use rediffuse_core::analytic::GaussianDenoiser;
use rediffuse_core::{Denoiser, NoiseSource, Prediction};
use rediffuse_sample::{ddim_sample, ddpm_sample, DdimOptions, DdpmOptions, SampleError, TimestepSpacing};

/// A broken model whose output has the wrong shape.
struct WrongShape;
impl Denoiser for WrongShape {
    fn prediction(&self) -> Prediction {
        Prediction::Epsilon
    }
    fn forward(&self, x_t: &Tensor, _t: &Tensor) -> rediffuse_core::Result<Tensor> {
        Ok(x_t.narrow(1, 0, 1)?)
    }
}

fn ddim(eta: f64, steps: usize) -> DdimOptions {
    DdimOptions {
        steps,
        eta,
        spacing: TimestepSpacing::Leading,
        clip_x0: None,
        clipped_model_output: false,
        stride_prev: false,
    }
}

#[test]
fn invalid_options_and_shapes() {
    let s = linear(50);
    let g = GaussianDenoiser::new(vec![0.0, 0.0], vec![vec![1.0, 0.0], vec![0.0, 1.0]], &s).unwrap();
    let bad_eta = [f64::NAN, -0.1, f64::INFINITY];
    for eta in bad_eta {
        let (x, mut n) = init(0, 4, &[2]);
        let r = ddim_sample(&g, &s, x, &ddim(eta, 10), &mut n, None);
        assert!(matches!(r, Err(SampleError::InvalidOption { name: "eta", .. })), "eta {eta}");
    }
    // η so large that σ² > 1 − ᾱ_prev.
    let (x, mut n) = init(0, 4, &[2]);
    assert!(ddim_sample(&g, &s, x, &ddim(3.0, 10), &mut n, None).is_err());
    for steps in [0usize, 51] {
        let (x, mut n) = init(0, 4, &[2]);
        assert!(matches!(
            ddim_sample(&g, &s, x, &ddim(0.0, steps), &mut n, None),
            Err(SampleError::InvalidOption { name: "steps", .. })
        ));
    }
    for clip in [0.0f32, -1.0, f32::NAN] {
        let (x, mut n) = init(0, 4, &[2]);
        let opts = DdpmOptions { clip_x0: Some(clip), ..Default::default() };
        assert!(ddpm_sample(&g, &s, x, &opts, &mut n, None).is_err(), "clip {clip}");
    }
    // Initial noise with the wrong batch for the noise source.
    let x = NoiseSource::new(0, 0, 3).randn(&[2], &Device::Cpu).unwrap();
    let mut n = NoiseSource::new(0, 0, 4);
    assert!(matches!(
        ddpm_sample(&g, &s, x.clone(), &DdpmOptions::default(), &mut n, None),
        Err(SampleError::Shape(_))
    ));
    assert!(matches!(ddim_sample(&g, &s, x, &ddim(0.0, 10), &mut n, None), Err(SampleError::Shape(_))));
    // Initial noise with the wrong per-sample size for the model.
    let (x, mut n) = init(0, 4, &[3]);
    assert!(matches!(ddim_sample(&g, &s, x, &ddim(0.0, 10), &mut n, None), Err(SampleError::Core(_))));
    // Empty batch.
    let x = Tensor::zeros((0, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let mut n = NoiseSource::new(0, 0, 0);
    assert!(ddpm_sample(&g, &s, x, &DdpmOptions::default(), &mut n, None).is_err());
    // A model returning the wrong shape.
    let (x, mut n) = init(0, 4, &[2]);
    assert!(matches!(
        ddim_sample(&WrongShape, &s, x, &ddim(0.0, 5), &mut n, None),
        Err(SampleError::Shape(_))
    ));
}

#[test]
fn options_serde_names() {
    let o = DdpmOptions { variance: rediffuse_sample::DdpmVariance::BetaTilde, clip_x0: Some(1.0) };
    assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"variance":"beta-tilde","clip_x0":1.0}"#);
    let d: DdimOptions =
        serde_json::from_str(r#"{"steps":20,"eta":0.5,"spacing":"linspace","clip_x0":null}"#).unwrap();
    assert_eq!(
        d,
        DdimOptions {
            steps: 20,
            eta: 0.5,
            spacing: TimestepSpacing::Linspace,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        }
    );
}
