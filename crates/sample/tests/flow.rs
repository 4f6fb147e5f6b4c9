//! Flow-matching models in σ-space: with the exact velocity field of Gaussian data, `FlowModel`
//! is the exact Gaussian posterior mean at every σ; Euler on the flow-time grid is Euler in t;
//! straightness is 0 for a straight field and positive for a curved one.

use candle_core::{DType, Device, Tensor};
use rediffuse_core::flow::{gaussian_velocity, sigma_of_time};
use rediffuse_core::{Denoiser, NoiseSource, Prediction};
use rediffuse_sample::continuous::{straightness, FlowModel, SigmaDenoiser, FLOW_TIME_SCALE};
use rediffuse_sample::dispatch::{sample, Frame, SampleModel, SamplerSpec, SigmaSchedule};

/// The exact marginal velocity of N(μ, s²) data per coordinate (model time 999·t).
#[derive(Clone)]
struct GaussianVelocity {
    mean: Vec<f64>,
    var: Vec<f64>,
    sigma_min: f64,
}

impl Denoiser for GaussianVelocity {
    fn prediction(&self) -> Prediction {
        Prediction::Sample
    }
    fn forward(&self, x: &Tensor, t: &Tensor) -> rediffuse_core::Result<Tensor> {
        let ts: Vec<f32> = t.to_vec1()?;
        let d = self.mean.len();
        let rows: Vec<Vec<f32>> = x.to_dtype(DType::F32)?.to_vec2()?;
        let mut out = Vec::new();
        for (r, &mt) in rows.iter().zip(&ts) {
            let tt = mt as f64 / FLOW_TIME_SCALE;
            let xr: Vec<f64> = r.iter().map(|&v| v as f64).collect();
            out.extend(
                gaussian_velocity(&xr, tt, &self.mean, &self.var, self.sigma_min).iter().map(|&v| v as f32),
            );
        }
        Ok(Tensor::from_vec(out, (rows.len(), d), x.device())?)
    }
}

#[test]
fn exact_velocity_gives_the_gaussian_posterior_mean() {
    let dev = Device::Cpu;
    let (mean, var) = (vec![0.5, -1.0], vec![0.25, 2.0]);
    for sigma_min in [0.0, 0.05] {
        let m =
            FlowModel::new(GaussianVelocity { mean: mean.clone(), var: var.clone(), sigma_min }, sigma_min)
                .unwrap();
        // σ̃ ≥ σ_min: the flow's range (σ̃ = σ_min is t = 1)
        for sigma in [0.06, 0.3, 1.0, 5.0, 80.0] {
            let x = Tensor::new(&[[0.3f32, 2.0], [-1.5, 0.1], [4.0, -3.0]], &dev).unwrap();
            assert!(m.denoise(&x, &[sigma; 2]).is_err(), "one σ per row");
            let d: Vec<Vec<f32>> = m.denoise(&x, &[sigma; 3]).unwrap().to_vec2().unwrap();
            let xs: Vec<Vec<f32>> = x.to_vec2().unwrap();
            for (row, xr) in d.iter().zip(&xs) {
                for k in 0..2 {
                    // x̃ = x₁ + σ̃ε: E[x₁ | x̃] = μ + s²/(s² + σ̃²)(x̃ − μ)
                    let want = mean[k] + var[k] / (var[k] + sigma * sigma) * (xr[k] as f64 - mean[k]);
                    assert!(
                        (row[k] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "σ_min {sigma_min} σ {sigma}: {} vs {want}",
                        row[k]
                    );
                }
            }
        }
    }
}

#[test]
fn euler_on_the_flow_time_grid_is_euler_in_t() {
    let dev = Device::Cpu;
    let vel = GaussianVelocity { mean: vec![0.5, -1.0], var: vec![0.25, 2.0], sigma_min: 0.0 };
    let eps_t = 1e-3;
    let frame = Frame::ve(sigma_of_time(1.0 - eps_t, 0.0), sigma_of_time(eps_t, 0.0)).unwrap();
    let model = SampleModel::from_sigma(FlowModel::new(vel.clone(), 0.0).unwrap(), frame, 1000)
        .unwrap()
        .with_native_sigma_schedule(SigmaSchedule::FlowTime { sigma_min: 0.0 });
    let n = 5;
    let z = NoiseSource::new(4, 0, n).randn(&[2], &dev).unwrap();
    for steps in [1usize, 3, 8] {
        let (x, stats) = sample(
            &SamplerSpec::Euler { steps },
            &model,
            Some(&z),
            &[2],
            &dev,
            &mut NoiseSource::new(4, 0, n),
            None,
        )
        .unwrap();
        assert_eq!(stats.nfe, steps);
        // x_{t+h} = x_t + h·v(x_t, t) from x_{t₀} = (1 − t₀)·z·… : the σ-space start σ₀·z is x_{t₀} = σ_{t₀} z
        let t0 = eps_t;
        let mut xt = z.affine(1.0 - t0, 0.0).unwrap();
        let h = (1.0 - t0) / steps as f64;
        for k in 0..steps {
            let t = t0 + k as f64 * h;
            let tt = Tensor::from_vec(vec![(FLOW_TIME_SCALE * t) as f32; n], n, &dev).unwrap();
            xt = (xt.clone() + vel.forward(&xt, &tt).unwrap().affine(h, 0.0).unwrap()).unwrap();
        }
        let diff = x.sub(&xt).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-4, "{steps} steps: {diff}");
    }
}

#[test]
fn straightness_is_zero_for_straight_paths() {
    let dev = Device::Cpu;
    // a point mass at μ: v* = (μ − x)/(1 − t) is constant along each path (straight)
    let point = GaussianVelocity { mean: vec![0.7, -0.2], var: vec![0.0, 0.0], sigma_min: 0.0 };
    let z = NoiseSource::new(1, 0, 16).randn(&[2], &dev).unwrap();
    let (s, end) = straightness(&FlowModel::new(point, 0.0).unwrap(), &z, 50).unwrap();
    assert!(s < 1e-6, "{s}");
    let e: Vec<Vec<f32>> = end.to_vec2().unwrap();
    assert!(e.iter().all(|r| (r[0] - 0.7).abs() < 1e-3 && (r[1] + 0.2).abs() < 1e-3));
    // a spread-out Gaussian (independent coupling) has curved paths
    let wide = GaussianVelocity { mean: vec![0.0, 0.0], var: vec![4.0, 0.01], sigma_min: 0.0 };
    let (s2, _) = straightness(&FlowModel::new(wide, 0.0).unwrap(), &z, 50).unwrap();
    assert!(s2 > 1e-2, "{s2}");
    assert!(
        FlowModel::new(GaussianVelocity { mean: vec![0.0], var: vec![1.0], sigma_min: 0.0 }, 1.0).is_err()
    );
}

#[test]
fn a_requested_flow_time_grid_takes_the_flows_own_sigma_min() {
    use rediffuse_sample::dispatch::GridFamily;
    let vel = GaussianVelocity { mean: vec![0.0], var: vec![1.0], sigma_min: 0.05 };
    let frame = Frame::ve(sigma_of_time(0.999, 0.05), sigma_of_time(1e-3, 0.05)).unwrap();
    let native = SigmaSchedule::FlowTime { sigma_min: 0.05 };
    let m = SampleModel::from_sigma(FlowModel::new(vel, 0.05).unwrap(), frame, 1000)
        .unwrap()
        .with_native_sigma_schedule(native)
        .with_sigma_schedule(Some(SigmaSchedule::FlowTime { sigma_min: 0.0 }))
        .unwrap();
    assert_eq!(m.default_sigma_schedule(GridFamily::Euler), native);
    // other grids are kept as given
    let k = m.with_sigma_schedule(Some(SigmaSchedule::Karras { rho: 7.0 })).unwrap();
    assert_eq!(k.default_sigma_schedule(GridFamily::Euler), SigmaSchedule::Karras { rho: 7.0 });
}
