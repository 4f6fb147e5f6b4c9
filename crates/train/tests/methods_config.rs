//! The continuous-time methods in `TrainConfig`: serialisation, presets, validation, resume
//! exactness, and the sampling views `load_run` gives for each method.

mod methods_support;

use candle_core::{DType, Device, Tensor};
use methods_support::{moons, temp_dir};
use rediffuse_core::sde::{EdmConfig, Sde};
use rediffuse_core::{Denoiser, NoiseSource, Prediction};
use rediffuse_nn::{MlpConfig, ModelConfig};
use rediffuse_sample::continuous::{denoise_at, Divergence};
use rediffuse_sample::dispatch::{nll_ode, sample, NllOptions, SamplerSpec};
use rediffuse_train::checkpoint::{read_tensors, CHECKPOINT_DIR, EMA_FILE, MODEL_FILE, OPTIMIZER_FILE};
use rediffuse_train::{
    load_run, read_metrics, Method, NoObserver, StepReport, TrainConfig, TrainError, TrainObserver, Trainer,
};

fn small(method: Method, steps: usize) -> TrainConfig {
    let model =
        ModelConfig::Mlp(MlpConfig { hidden: 32, layers: 1, time_embed_dim: 16, ..MlpConfig::new(2) });
    let mut c = TrainConfig::new("moons", model, method);
    // iddpm trains a learned variance: its network outputs twice the data dimensions
    c.model.set_learn_sigma(c.method.variance_mode().is_learned());
    c.steps = steps;
    c.batch_size = 32;
    c.lr = 1e-3;
    c.seed = 5;
    c.log_every = 3;
    c.checkpoint_every = 7;
    c.ema_decay = 0.9;
    c
}

fn all_methods() -> Vec<Method> {
    Method::PRESET_NAMES.iter().map(|n| Method::preset(n).unwrap()).collect()
}

#[test]
fn presets_names_and_serialisation() {
    for (name, m) in Method::PRESET_NAMES.iter().zip(all_methods()) {
        assert_eq!(m.name(), *name);
        let c = small(m.clone(), 10);
        c.validate().unwrap();
        let toml = c.to_toml_string().unwrap();
        assert_eq!(TrainConfig::from_toml_str(&toml).unwrap(), c, "{toml}");
        assert_eq!(TrainConfig::from_json_str(&c.to_json_string().unwrap()).unwrap(), c);
    }
    assert!(Method::preset("score").is_none());
    let t = r#"
data = "moons"
steps = 10
batch_size = 8
lr = 0.001
seed = 1
[model]
kind = "mlp"
data_dim = 2
[method]
kind = "score-sde"
prediction = "score"
eps = 0.001
[method.sde]
kind = "sub-vp"
beta_min = 0.1
beta_max = 20.0
"#;
    let c = TrainConfig::from_toml_str(t).unwrap();
    c.validate().unwrap();
    assert_eq!(c.method, Method::ScoreSde { sde: Sde::sub_vp(), prediction: Prediction::Score, eps: 1e-3 });
    let edm = TrainConfig::from_toml_str(&t.replace(
        "kind = \"score-sde\"\nprediction = \"score\"\neps = 0.001\n[method.sde]\nkind = \"sub-vp\"\nbeta_min = 0.1\nbeta_max = 20.0",
        "kind = \"edm\"\nsigma_data = 1.0\np_mean = -1.2\np_std = 1.2\nsigma_min = 0.002\nsigma_max = 80.0\nrho = 7.0",
    ))
    .unwrap();
    assert_eq!(edm.method, Method::Edm(EdmConfig { sigma_data: 1.0, ..EdmConfig::default() }));
}

#[test]
fn bad_method_values_name_their_field() {
    let cases = [
        (Method::Ncsn { sigma_max: 1.0, sigma_min: 2.0, levels: 10 }, "method.sigma_min"),
        (Method::Ncsn { sigma_max: f64::NAN, sigma_min: 0.01, levels: 10 }, "method.sigma_max"),
        (Method::Ncsn { sigma_max: 1.0, sigma_min: 0.01, levels: 1 }, "method.levels"),
        (Method::ScoreSde { sde: Sde::vp(), prediction: Prediction::V, eps: 1e-3 }, "method.prediction"),
        (Method::ScoreSde { sde: Sde::vp(), prediction: Prediction::Epsilon, eps: 0.0 }, "method.eps"),
        (
            Method::ScoreSde {
                sde: Sde::Vp { beta_min: 20.0, beta_max: 0.1 },
                prediction: Prediction::Epsilon,
                eps: 1e-3,
            },
            "method.sde.beta_max",
        ),
        (Method::Edm(EdmConfig { sigma_data: -1.0, ..EdmConfig::default() }), "method.sigma_data"),
        (Method::Edm(EdmConfig { sigma_min: 100.0, ..EdmConfig::default() }), "method.sigma_min"),
    ];
    for (m, field) in cases {
        match small(m.clone(), 10).validate() {
            Err(TrainError::InvalidConfig { field: f, .. }) => assert_eq!(f, field, "{m:?}"),
            other => panic!("{m:?}: expected InvalidConfig({field}), got {other:?}"),
        }
    }
}

#[derive(Default)]
struct StopAt(Option<u64>, u64);
impl TrainObserver for StopAt {
    fn on_step(&mut self, r: &StepReport) {
        self.1 = r.step;
    }
    fn should_stop(&mut self) -> bool {
        self.0.is_some_and(|s| self.1 >= s)
    }
}

/// Interrupting a continuous-method run at step 17 and resuming gives bit-identical weights,
/// EMA, optimiser state and metrics to the uninterrupted 40-step run (EDM, VP-SDE, NCSN).
#[test]
fn continuous_methods_resume_exactly() {
    let data = moons(300, 4);
    for m in [Method::edm_default(), Method::score_sde(Sde::vp()), Method::ncsn_default()] {
        let tag = m.name();
        let cfg = small(m.clone(), 40);
        let dir_a = temp_dir(&format!("resume-a-{tag}"));
        Trainer::create(&dir_a, cfg.clone(), data.clone()).unwrap().run(&mut NoObserver).unwrap();
        let dir_b = temp_dir(&format!("resume-b-{tag}"));
        let s = Trainer::create(&dir_b, cfg.clone(), data.clone())
            .unwrap()
            .run(&mut StopAt(Some(17), 0))
            .unwrap();
        assert!(s.stopped_early && s.step == 17);
        let mut b = Trainer::resume(&dir_b, data.clone()).unwrap();
        assert_eq!(b.run(&mut NoObserver).unwrap().step, 40);
        for file in [MODEL_FILE, EMA_FILE, OPTIMIZER_FILE] {
            let ta = read_tensors(&dir_a.join(CHECKPOINT_DIR).join(file), &Device::Cpu).unwrap();
            let tb = read_tensors(&dir_b.join(CHECKPOINT_DIR).join(file), &Device::Cpu).unwrap();
            assert_eq!(ta.len(), tb.len());
            for (k, v) in &ta {
                let f = |t: &Tensor| {
                    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
                };
                assert_eq!(f(v), f(&tb[k]), "{tag} {file} {k}");
            }
        }
        let key = |d: &std::path::Path| {
            read_metrics(&d.join("metrics.jsonl"))
                .unwrap()
                .iter()
                .map(|r| (r.step, r.loss))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&dir_a), key(&dir_b), "{tag}");
        // a different method from the same seed trains differently
        std::fs::remove_dir_all(&dir_a).unwrap();
        std::fs::remove_dir_all(&dir_b).unwrap();
    }
}

/// For every method, `load_run` gives: a network whose outputs carry no autograd graph, a σ-space
/// model equal to the one in `sample_model`, a discrete denoiser consistent with it
/// (D = x_σ − σ·ε of the discrete view), a frame, and a working sampler and NLL.
#[test]
fn load_run_views_for_every_method() {
    let data = moons(256, 2);
    // cold diffusion restores image degradations and has no σ-space view (its own test: cold.rs)
    for m in all_methods().into_iter().filter(|m| !matches!(m, Method::Cold(_))) {
        let tag = m.name();
        let dir = temp_dir(&format!("views-{tag}"));
        Trainer::create(&dir, small(m.clone(), 20), data.clone()).unwrap().run(&mut NoObserver).unwrap();
        let run = load_run(&dir, true, &Device::Cpu).unwrap();
        let x = moons(8, 9);
        let t = Tensor::full(3f32, 8, &Device::Cpu).unwrap();
        let out = run.denoiser.forward(&x, &t).unwrap();
        assert!(!out.track_op(), "{tag}: inference outputs must not record a graph");

        let sm = run.sample_model().unwrap();
        let sig = run.sigma_model().unwrap();
        let frame = run.frame().unwrap();
        assert_eq!(&frame, sm.frame());
        let s = (frame.sigma_min * frame.sigma_max).sqrt();
        let a = denoise_at(&sig, &x, s).unwrap();
        let b = denoise_at(&sm.sigma_model(), &x, s).unwrap();
        let diff = |p: &Tensor, q: &Tensor| {
            (p - q).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
        };
        assert_eq!(diff(&a, &b), 0.0, "{tag}");
        // discrete view at an index i: ε = (x_σ − D(x_σ; σ_i))/σ_i with x_t = x_σ/√(1 + σ_i²)
        let (den, sch) = run.discrete_denoiser().unwrap();
        let i = sch.len() / 2;
        let si = ((1.0 - sch.alpha_bar[i]) / sch.alpha_bar[i]).sqrt();
        let x_t = x.affine(1.0 / (1.0 + si * si).sqrt(), 0.0).unwrap();
        let out = den.forward(&x_t, &Tensor::full(i as f32, 8, &Device::Cpu).unwrap()).unwrap();
        let out = rediffuse_core::prediction::convert(
            den.prediction(),
            Prediction::Epsilon,
            &out,
            &x_t,
            &Tensor::full(sch.sqrt_alpha_bar[i] as f32, (8, 1), &Device::Cpu).unwrap(),
            &Tensor::full(sch.sqrt_one_minus_alpha_bar[i] as f32, (8, 1), &Device::Cpu).unwrap(),
        )
        .unwrap();
        let d = denoise_at(&sig, &x, si).unwrap();
        let eps = (&x - &d).unwrap().affine(1.0 / si, 0.0).unwrap();
        assert!(diff(&out, &eps) < 2e-3 * (1.0 + si as f32), "{tag}: {}", diff(&out, &eps));

        let mut noise = NoiseSource::new(1, 0, 16);
        let spec = SamplerSpec::DpmPp2m { steps: 10 };
        let (y, st) = sample(&spec, &sm, None, &[2], &Device::Cpu, &mut noise, None).unwrap();
        assert_eq!((y.dims(), st.nfe), (&[16usize, 2][..], 10));
        let rep =
            nll_ode(&sm, &x, &NllOptions::new(Divergence::Exact), &mut NoiseSource::new(2, 0, 8)).unwrap();
        assert!(rep.nll_nats.is_finite(), "{tag}");
        assert_eq!(y.dtype(), DType::F32);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
