//! iDDPM through the trainer: `Method::Iddpm` with a learn_sigma MLP trains on moons, a run with
//! importance sampling resumes bit for bit (sampler history included), and `load_run` gives every
//! sampler a view of the learned-variance network.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{temp_dir, Recorder};
use rediffuse_core::{BetaSchedule, Denoiser, NoiseSource, Prediction};
use rediffuse_data::toy2d::Toy2d;
use rediffuse_nn::{MlpConfig, ModelConfig};
use rediffuse_sample::dispatch::{sample, SamplerSpec};
use rediffuse_sample::{DdimOptions, TimestepSpacing};
use rediffuse_train::checkpoint::{read_state, read_tensors, CHECKPOINT_DIR, STATE_FILE};
use rediffuse_train::iddpm::{IddpmConfig, IddpmObjective};
use rediffuse_train::{load_run, read_metrics, Method, NoObserver, TrainConfig, TrainError, Trainer};
use std::path::Path;

fn moons(n: usize, seed: u64) -> Tensor {
    Toy2d::Moons.sample_tensor(n, seed, &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap()
}

fn iddpm_config(steps: usize, timesteps: usize, iddpm: IddpmConfig) -> TrainConfig {
    let model = ModelConfig::Mlp(MlpConfig { hidden: 64, layers: 2, learn_sigma: true, ..MlpConfig::new(2) });
    let method =
        Method::Iddpm { schedule: BetaSchedule::cosine(), timesteps, prediction: Prediction::Epsilon, iddpm };
    let mut c = TrainConfig::new("moons", model, method);
    c.steps = steps;
    c.batch_size = 128;
    c.lr = 2e-3;
    c.warmup_steps = 20;
    c.seed = 5;
    c
}

/// Hybrid loss with T = 1000 on moons (600 steps, batch 128): the mean loss of the last 100 steps is
/// well below that of the first 100 and below the ε̂ = 0 level of L_simple (1).
#[test]
fn iddpm_trains_on_moons() {
    let dir = temp_dir("iddpm-moons");
    let mut cfg = iddpm_config(600, 1000, IddpmConfig::default());
    cfg.log_every = 100;
    let mut tr = Trainer::create(&dir, cfg, moons(4096, 1)).unwrap();
    assert!(tr.importance_sampler().is_none());
    let s = tr.run(&mut NoObserver).unwrap();
    assert_eq!(s.step, 600);
    let m: Vec<f64> = read_metrics(&dir.join("metrics.jsonl")).unwrap().iter().map(|r| r.loss).collect();
    println!("iddpm moons losses per 100 steps: {m:.4?}");
    assert!(m.iter().all(|l| l.is_finite()));
    assert!(m[5] < 0.7 * m[0], "loss did not fall: {m:?}");
    assert!(m[5] < 0.8, "final loss {}", m[5]);

    // the loaded run: the raw denoiser has 2·d outputs, the discrete view d; DDIM and the
    // learned-variance sampler (respaced to 50 steps) give finite points near the data scale
    let run = load_run(&dir, true, &Device::Cpu).unwrap();
    assert!(run.variance_mode().is_learned());
    let x = moons(8, 2);
    let t = Tensor::new(&[10f32, 100., 200., 300., 500., 700., 900., 999.], &Device::Cpu).unwrap();
    assert_eq!(run.denoiser.forward(&x, &t).unwrap().dims(), &[8, 4]);
    let (disc, sch) = run.discrete_denoiser().unwrap();
    assert_eq!(sch.len(), 1000);
    assert_eq!(disc.forward(&x, &t).unwrap().dims(), &[8, 2]);
    let model = run.sample_model().unwrap();
    for spec in [
        SamplerSpec::DdpmLearned { steps: Some(50), clip_x0: None },
        SamplerSpec::Ddim(DdimOptions {
            steps: 50,
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
            clip_x0: None,
            clipped_model_output: false,
            stride_prev: false,
        }),
        SamplerSpec::DpmPp2m { steps: 20 },
    ] {
        let mut noise = NoiseSource::new(9, 0, 256);
        let (out, stats) = sample(&spec, &model, None, &[2], &Device::Cpu, &mut noise, None).unwrap();
        let v: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
        let rms = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        println!("{}: nfe {}, rms {rms:.3}", spec.name(), stats.nfe);
        assert!(v.iter().all(|x| x.is_finite()));
        // moons are normalised to unit variance per axis
        assert!((0.6..1.5).contains(&rms), "{}: rms {rms}", spec.name());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn weights_equal(a: &Path, b: &Path) {
    for f in ["model.safetensors", "ema.safetensors", "optimizer.safetensors"] {
        let ta = read_tensors(&a.join(CHECKPOINT_DIR).join(f), &Device::Cpu).unwrap();
        let tb = read_tensors(&b.join(CHECKPOINT_DIR).join(f), &Device::Cpu).unwrap();
        assert_eq!(ta.len(), tb.len());
        for (k, v) in &ta {
            let d = (v.to_dtype(DType::F64).unwrap() - tb[k].to_dtype(DType::F64).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert_eq!(d, 0.0, "{f}:{k}");
        }
    }
}

/// Importance sampling with T = 50 (warmed up after ~15 steps of batch 128): 60 steps in one go ==
/// 33 steps, stop, resume, 27 steps — the same metrics, bit-identical weights, EMA, optimiser and
/// sampler history. The sampler is warmed up before the interruption, so the resumed steps draw
/// t from the checkpointed p_t.
#[test]
fn resume_with_importance_sampling_is_exact() {
    let iddpm =
        IddpmConfig { importance_sampling: true, objective: IddpmObjective::Vlb, ..IddpmConfig::default() };
    let mut cfg = iddpm_config(60, 50, iddpm);
    cfg.log_every = 4;
    cfg.checkpoint_every = 11;
    cfg.grad_clip = Some(1.0);
    let data = moons(1000, 3);

    let dir_a = temp_dir("iddpm-resume-a");
    let mut a = Trainer::create(&dir_a, cfg.clone(), data.clone()).unwrap();
    a.run(&mut NoObserver).unwrap();
    let sampler_a = a.importance_sampler().unwrap().clone();
    assert!(sampler_a.is_warmed_up());
    let p = sampler_a.probabilities();
    let (lo, hi) = p.iter().fold((1.0f64, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
    println!("p_t after 60 steps: min {lo:.4}, max {hi:.4} (uniform {:.4})", 1.0 / 50.0);
    assert!(hi > 2.0 * lo, "p_t should be far from uniform");

    let dir_b = temp_dir("iddpm-resume-b");
    let mut b = Trainer::create(&dir_b, cfg.clone(), data.clone()).unwrap();
    let s = b.run(&mut Recorder { stop_at: Some(33), ..Default::default() }).unwrap();
    assert!(s.stopped_early && s.step == 33);
    assert!(b.importance_sampler().unwrap().is_warmed_up(), "warm-up must happen before the stop");
    drop(b);
    let state = read_state(&dir_b.join(CHECKPOINT_DIR).join(STATE_FILE)).unwrap();
    assert!(state.importance_sampler.as_ref().is_some_and(|s| s.is_warmed_up()));
    let mut b = Trainer::resume(&dir_b, data.clone()).unwrap();
    assert_eq!(b.step(), 33);
    b.run(&mut NoObserver).unwrap();

    let key = |d: &Path| {
        read_metrics(&d.join("metrics.jsonl"))
            .unwrap()
            .iter()
            .map(|r| (r.step, r.loss, r.lr))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&dir_a).len(), 15);
    assert_eq!(key(&dir_a), key(&dir_b));
    weights_equal(&dir_a, &dir_b);
    assert_eq!(b.importance_sampler().unwrap(), &sampler_a);

    // a checkpoint that lost its sampler state is refused, not silently restarted
    let state_path = dir_b.join(CHECKPOINT_DIR).join(STATE_FILE);
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("importance_sampler");
    std::fs::write(&state_path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(Trainer::resume(&dir_b, data), Err(TrainError::Corrupt { .. })));
    for d in [dir_a, dir_b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Config checks: iddpm needs learn_sigma and other methods refuse it; the iddpm table is
/// validated; TOML round-trips with and without the `[method.iddpm]` table.
#[test]
fn iddpm_config_rules() {
    let field = |c: &TrainConfig| match c.validate() {
        Err(TrainError::InvalidConfig { field, .. }) => field,
        other => panic!("expected an InvalidConfig error, got {other:?}"),
    };
    let good = iddpm_config(10, 100, IddpmConfig::default());
    good.validate().unwrap();
    let mut no_sigma = good.clone();
    no_sigma.model.set_learn_sigma(false);
    assert_eq!(field(&no_sigma), "model.learn_sigma");
    let mut ddpm = good.clone();
    ddpm.method = Method::ddpm_default();
    assert_eq!(field(&ddpm), "model.learn_sigma");
    let mut bad = good.clone();
    bad.method = Method::Iddpm {
        schedule: BetaSchedule::cosine(),
        timesteps: 100,
        prediction: Prediction::Epsilon,
        iddpm: IddpmConfig { lambda_vlb: -1.0, ..IddpmConfig::default() },
    };
    assert_eq!(field(&bad), "method.iddpm.lambda_vlb");

    let text = good.to_toml_string().unwrap();
    assert!(text.contains("kind = \"iddpm\"") && text.contains("learn_sigma = true"), "{text}");
    assert_eq!(TrainConfig::from_toml_str(&text).unwrap(), good);
    let minimal = r#"
data = "moons"
steps = 10
batch_size = 8
lr = 0.001
seed = 0
[model]
kind = "mlp"
data_dim = 2
learn_sigma = true
[method]
kind = "iddpm"
timesteps = 100
prediction = "epsilon"
[method.schedule]
kind = "cosine"
s = 0.008
max_beta = 0.999
"#;
    let c = TrainConfig::from_toml_str(minimal).unwrap();
    c.validate().unwrap();
    assert!(matches!(&c.method, Method::Iddpm { iddpm, .. } if *iddpm == IddpmConfig::default()));
    assert_eq!(Method::preset("iddpm"), Some(Method::iddpm_default()));
    assert_eq!(Method::iddpm_default().name(), "iddpm");
    assert!(Method::iddpm_default().continuous_sde().is_err());
}

/// Without importance sampling, the batch loss of the iDDPM objective is the mean of its
/// per-sample losses for the same draws, and a fixed-variance network is refused.
#[test]
fn iddpm_objective_batch_and_per_sample_agree() {
    use rand::SeedableRng;
    use rediffuse_train::Objective;
    let cfg = iddpm_config(1, 100, IddpmConfig::default());
    let obj = Objective::new(&cfg.method).unwrap();
    assert!(obj.new_sampler().unwrap().is_none());
    let vm = candle_nn::VarMap::new();
    let net = cfg.model.build(candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let x0 = moons(32, 4);
    let rng = || rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let per: f32 =
        obj.loss_per_sample(net.as_ref(), &x0, &mut rng()).unwrap().mean_all().unwrap().to_scalar().unwrap();
    let batch: f32 = obj.batch_loss(net.as_ref(), &x0, &mut rng(), None).unwrap().to_scalar().unwrap();
    assert!((per - batch).abs() <= 1e-6 * per.abs(), "{per} vs {batch}");
    assert!(per.is_finite() && per > 0.0);

    let mut plain = cfg.model.clone();
    plain.set_learn_sigma(false);
    let vm = candle_nn::VarMap::new();
    let net = plain.build(candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let e = obj.batch_loss(net.as_ref(), &x0, &mut rng(), None).unwrap_err();
    assert!(e.to_string().contains("learned-variance"), "{e}");
}
