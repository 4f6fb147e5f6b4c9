//! Property / mutation fuzzing of the training layer's file readers on stable Rust (proptest):
//! safetensors checkpoints (`read_tensors`, `assign_params`), `state.json` (`read_state`), the run
//! config (`TrainConfig::load`, TOML and JSON) and whole run folders (`load_run`, and
//! `Trainer::resume`'s checkpoint loading).
//!
//! The seeds are the files of a real run: a tiny MLP trained for 2 steps by `Trainer`. Each case
//! mutates one file (`fuzz_util`, shared with `crates/data/tests/fuzz_readers.rs`), writes it and
//! reads it back: the reader must return `Ok` or `Err`, never panic or abort (a single
//! allocation above `fuzz_util::ALLOC_LIMIT` aborts the process), and an `Ok` result must be
//! self-consistent. Plain random bytes are fed too.
//!
//! The plain tests run a fixed number of cases; the `*_long` tests are `#[ignore]`d and run
//! `REDIFFUSE_FUZZ_CASES` cases each (default 100 000):
//! `REDIFFUSE_FUZZ_CASES=20000 cargo test --release -p rediffuse-train --test fuzz_readers -- --ignored --nocapture`

mod common;
#[path = "../../data/tests/fuzz_util/mod.rs"]
mod fuzz_util;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use fuzz_util::{apply, fuzz, long_cases, mutations, put, scratch_dir};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rediffuse_nn::{MlpConfig, ModelConfig};
use rediffuse_train::checkpoint::{
    assign_params, read_state, read_tensors, CHECKPOINT_DIR, CONFIG_FILE, EMA_FILE, MODEL_FILE,
    OPTIMIZER_FILE, STATE_FILE, STATE_FORMAT,
};
use rediffuse_train::init::{sorted_params, SeededInit};
use rediffuse_train::{load_run, NoObserver, TrainConfig, Trainer};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The files of one real 2-step run, read once per test process.
struct Seeds {
    /// The run folder (read-only: every test copies what it mutates).
    dir: PathBuf,
    config: TrainConfig,
    config_toml: Vec<u8>,
    config_json: Vec<u8>,
    state: Vec<u8>,
    /// model, ema, optimizer `.safetensors`
    tensors: Vec<(&'static str, Vec<u8>)>,
    data: Tensor,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = scratch_dir("train-seed-run");
        let run = dir.join("run");
        let mut cfg = common::small_config(2);
        cfg.model =
            ModelConfig::Mlp(MlpConfig { hidden: 16, layers: 1, time_embed_dim: 8, ..MlpConfig::new(2) });
        cfg.batch_size = 16;
        cfg.log_every = 1;
        cfg.checkpoint_every = 1;
        let data = common::gaussian_mixture(64, 1);
        let mut tr = Trainer::create(&run, cfg.clone(), data.clone()).unwrap();
        tr.run(&mut NoObserver).unwrap();
        assert_eq!(tr.step(), 2);
        let ck = run.join(CHECKPOINT_DIR);
        let read = |p: &Path| std::fs::read(p).unwrap();
        Seeds {
            config_toml: read(&run.join(CONFIG_FILE)),
            config_json: cfg.to_json_string().unwrap().into_bytes(),
            config: cfg,
            state: read(&ck.join(STATE_FILE)),
            tensors: [MODEL_FILE, EMA_FILE, OPTIMIZER_FILE]
                .into_iter()
                .map(|f| (f, read(&ck.join(f))))
                .collect(),
            dir: run,
            data,
        }
    })
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Copy a run folder (one level of sub-folders) to `to`.
fn copy_run(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_run(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// safetensors

/// The model's parameters, zero-initialised (to check `assign_params` on what was read).
fn model_params(cfg: &TrainConfig) -> (VarMap, Vec<(String, candle_core::Var)>) {
    let varmap = VarMap::new();
    cfg.model.build(SeededInit::zeros_var_builder(&varmap, &Device::Cpu)).unwrap();
    let params = sorted_params(&varmap);
    (varmap, params)
}

fn check_tensors(path: &Path, params: &[(String, candle_core::Var)]) -> Result<(), TestCaseError> {
    if let Ok(map) = read_tensors(path, &Device::Cpu) {
        fuzz_util::accepted();
        for (name, t) in &map {
            let n: usize = t.dims().iter().product();
            prop_assert_eq!(n, t.elem_count(), "{}", name);
            // every value is readable (the bytes were really there)
            let v = t.flatten_all().and_then(|f| f.to_dtype(DType::F32)).and_then(|f| f.to_vec1::<f32>());
            prop_assert_eq!(v.map_err(fail)?.len(), n);
        }
        // Ok or a typed error; on Ok every parameter has its shape
        if assign_params(params, map, path).is_ok() {
            for (_, p) in params {
                prop_assert!(p.elem_count() > 0);
            }
        }
    }
    Ok(())
}

fn safetensors_mutations(cases: u32, name: &str) {
    let s = seeds();
    let dir = scratch_dir(name);
    let path = dir.join("x.safetensors");
    let (_vm, params) = model_params(&s.config);
    let strategy = (0..s.tensors.len(), mutations(6));
    fuzz(name, cases, strategy, |(k, muts)| {
        put(&path, &apply(&s.tensors[k].1, &muts));
        check_tensors(&path, &params)
    });
}

fn safetensors_random(cases: u32, name: &str) {
    let s = seeds();
    let dir = scratch_dir(name);
    let path = dir.join("x.safetensors");
    let (_vm, params) = model_params(&s.config);
    // random header length and JSON-ish header text, then random data
    let header = prop::collection::vec(
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"a\"",
            "\"dtype\"",
            "\"F32\"",
            "\"F64\"",
            "\"U8\"",
            "\"BF16\"",
            "\"shape\"",
            "\"data_offsets\"",
            "\"__metadata__\"",
            "0",
            "1",
            "4",
            "8",
            "18446744073709551615",
            "4294967296",
            "-1",
            " ",
        ]),
        0..40,
    )
    .prop_map(|t| t.concat());
    let strategy = (
        prop_oneof![Just(None), any::<u64>().prop_map(Some), (0u64..200).prop_map(Some)],
        header,
        prop::collection::vec(any::<u8>(), 0..128),
    );
    fuzz(name, cases, strategy, |(len, header, data)| {
        let len = len.unwrap_or(header.len() as u64);
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&data);
        put(&path, &bytes);
        check_tensors(&path, &params)
    });
}

#[test]
fn fuzz_safetensors_mutations() {
    safetensors_mutations(25_000, "safetensors_mutations");
}
#[test]
#[ignore]
fn fuzz_safetensors_mutations_long() {
    safetensors_mutations(long_cases(), "safetensors_mutations_long");
}
#[test]
fn fuzz_safetensors_random() {
    safetensors_random(25_000, "safetensors_random");
}
#[test]
#[ignore]
fn fuzz_safetensors_random_long() {
    safetensors_random(long_cases(), "safetensors_random_long");
}

// ---------------------------------------------------------------------------------------------
// state.json

fn state_mutations(cases: u32, name: &str) {
    let s = seeds();
    let dir = scratch_dir(name);
    let path = dir.join(STATE_FILE);
    let strategy = (mutations(6), any::<bool>());
    fuzz(name, cases, strategy, |(muts, random)| {
        let bytes = if random {
            // random bytes wrapped like a JSON object
            [b"{".to_vec(), apply(&[], &muts), b"}".to_vec()].concat()
        } else {
            apply(&s.state, &muts)
        };
        put(&path, &bytes);
        if let Ok(st) = read_state(&path) {
            fuzz_util::accepted();
            prop_assert_eq!(st.format, STATE_FORMAT);
            prop_assert!(st.loss_sum.is_finite() && st.elapsed_s.is_finite() && st.elapsed_s >= 0.0);
            // what was read writes back and reads again
            let again: rediffuse_train::checkpoint::TrainState =
                serde_json::from_slice(&serde_json::to_vec(&st).map_err(fail)?).map_err(fail)?;
            prop_assert_eq!(again.step, st.step);
        }
        Ok(())
    });
}

#[test]
fn fuzz_state_mutations() {
    state_mutations(30_000, "state_mutations");
}
#[test]
#[ignore]
fn fuzz_state_mutations_long() {
    state_mutations(long_cases(), "state_mutations_long");
}

// ---------------------------------------------------------------------------------------------
// config.toml / config.json

fn config_mutations(cases: u32, name: &str) {
    let s = seeds();
    let dir = scratch_dir(name);
    let strategy = (any::<bool>(), mutations(5), any::<bool>());
    fuzz(name, cases, strategy, |(json, muts, random)| {
        let (file, seed) = if json { ("config.json", &s.config_json) } else { (CONFIG_FILE, &s.config_toml) };
        let bytes = if random { apply(&[], &muts) } else { apply(seed, &muts) };
        let path = dir.join(file);
        put(&path, &bytes);
        if let Ok(cfg) = TrainConfig::load(&path) {
            fuzz_util::accepted();
            cfg.validate().map_err(fail)?;
            // what was read is written back unchanged (TOML and JSON)
            let t = cfg.to_toml_string().map_err(fail)?;
            prop_assert_eq!(&TrainConfig::from_toml_str(&t).map_err(fail)?, &cfg, "{}", t);
            let j = cfg.to_json_string().map_err(fail)?;
            prop_assert_eq!(&TrainConfig::from_json_str(&j).map_err(fail)?, &cfg, "{}", j);
            // the schedule and the network of an accepted config can be built
            cfg.method.schedule().map_err(fail)?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_config_mutations() {
    config_mutations(30_000, "config_mutations");
}
#[test]
#[ignore]
fn fuzz_config_mutations_long() {
    config_mutations(long_cases(), "config_mutations_long");
}

// ---------------------------------------------------------------------------------------------
// whole run folders

/// Which file of the run folder a case corrupts.
#[derive(Debug, Clone, Copy)]
enum Target {
    Config,
    State,
    Tensors(usize),
    /// Delete a file (index into config, state, model, ema, optimizer).
    Remove(usize),
}

fn run_folder(cases: u32, name: &str, resume: bool) {
    let s = seeds();
    let dir = scratch_dir(name).join("run");
    copy_run(&s.dir, &dir);
    let ck = dir.join(CHECKPOINT_DIR);
    let files: Vec<(PathBuf, &Vec<u8>)> =
        [(dir.join(CONFIG_FILE), &s.config_toml), (ck.join(STATE_FILE), &s.state)]
            .into_iter()
            .chain(s.tensors.iter().map(|(f, b)| (ck.join(f), b)))
            .collect();
    let target = prop_oneof![
        3 => Just(Target::Config),
        2 => Just(Target::State),
        4 => (0usize..3).prop_map(Target::Tensors),
        1 => (0usize..5).prop_map(Target::Remove),
    ];
    let strategy = (target, mutations(5), any::<bool>());
    let x = common::gaussian_mixture(4, 7);
    let t = Tensor::new(&[0f32, 3.0, 10.0, 49.0], &Device::Cpu).unwrap();
    fuzz(name, cases, strategy, |(target, muts, use_ema)| {
        let (k, bytes) = match target {
            Target::Config => (0, Some(apply(&s.config_toml, &muts))),
            Target::State => (1, Some(apply(&s.state, &muts))),
            Target::Tensors(i) => (2 + i, Some(apply(&s.tensors[i].1, &muts))),
            Target::Remove(i) => (i, None),
        };
        match &bytes {
            Some(b) => put(&files[k].0, b),
            None => std::fs::remove_file(&files[k].0).unwrap(),
        }
        let result = if resume {
            match Trainer::resume(&dir, s.data.clone()) {
                Ok(tr) => {
                    fuzz_util::accepted();
                    let y = tr.net().forward(&x, &t, false).map_err(fail)?;
                    prop_assert_eq!(y.dims(), x.dims());
                    Ok(())
                }
                Err(_) => Ok(()),
            }
        } else {
            match load_run(&dir, use_ema, &Device::Cpu) {
                Ok(run) => {
                    fuzz_util::accepted();
                    prop_assert_eq!(
                        run.schedule.len(),
                        match &run.config.method {
                            rediffuse_train::Method::Ddpm { timesteps, .. } => *timesteps,
                            _ => run.schedule.len(),
                        }
                    );
                    prop_assert_eq!(run.ema, use_ema);
                    let y = run.denoiser.net.forward(&x, &t, false).map_err(fail)?;
                    prop_assert_eq!(y.dims(), x.dims());
                    let _ = run.sample_model();
                    Ok(())
                }
                Err(_) => Ok(()),
            }
        };
        put(&files[k].0, files[k].1);
        result
    });
}

#[test]
fn fuzz_run_folder() {
    run_folder(15_000, "run_folder", false);
}
#[test]
#[ignore]
fn fuzz_run_folder_long() {
    run_folder(long_cases(), "run_folder_long", false);
}
#[test]
fn fuzz_run_folder_resume() {
    run_folder(6_000, "run_folder_resume", true);
}
#[test]
#[ignore]
fn fuzz_run_folder_resume_long() {
    run_folder(long_cases(), "run_folder_resume_long", true);
}
