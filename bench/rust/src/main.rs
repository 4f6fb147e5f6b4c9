//! rediffuse speed benchmark (the Rust side of `bench/compare.sh`).
//!
//! * `rediffuse-bench serve [--threads N]`: reads commands from stdin, one per line,
//!   and answers each with one JSON line: `describe CASE` → `{"params", "config"}`,
//!   `run CASE REPS` → `{"ms": [...]}`, `quit`. The driver `bench/compare.py` alternates
//!   these calls with the PyTorch reference.
//! * `rediffuse-bench table [--threads N] [--reps R] [CASE…]`: standalone medians.
//! * `rediffuse-bench breakdown [--threads N] [--reps R]`: forward / backward / optimiser
//!   split of the benchmark U-Net's training step.

mod cases;

use std::collections::HashMap;
use std::io::{BufRead, Write};

use anyhow::{bail, Context, Result};
use cases::{Case, UnetCase, CASES};
use rediffuse_nn::ops;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

struct Args {
    mode: String,
    threads: usize,
    reps: usize,
    cases: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_else(|| "table".into());
    let mut args = Args { mode, threads: 0, reps: 10, cases: Vec::new() };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => args.threads = it.next().context("--threads needs a value")?.parse()?,
            "--reps" => args.reps = it.next().context("--reps needs a value")?.parse()?,
            c if CASES.contains(&c) => args.cases.push(c.to_string()),
            other => bail!("unknown argument `{other}` (cases: {})", CASES.join(", ")),
        }
    }
    if args.reps == 0 {
        bail!("--reps must be positive");
    }
    Ok(args)
}

fn serve() -> Result<()> {
    let mut cache: HashMap<String, Case> = HashMap::new();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["quit"] => break,
            ["describe", name] => {
                let case = get(&mut cache, name)?;
                case.describe()?
            }
            ["run", name, reps] => {
                let reps: usize = reps.parse()?;
                let case = get(&mut cache, name)?;
                let ms = (0..reps).map(|_| case.run()).collect::<Result<Vec<f64>>>()?;
                serde_json::json!({ "ms": ms })
            }
            ["drop", name] => {
                cache.remove(*name);
                serde_json::json!({})
            }
            _ => serde_json::json!({ "error": format!("bad command `{line}`") }),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

fn get<'a>(cache: &'a mut HashMap<String, Case>, name: &str) -> Result<&'a mut Case> {
    if !cache.contains_key(name) {
        cache.insert(name.to_string(), Case::new(name)?);
    }
    Ok(cache.get_mut(name).expect("inserted above"))
}

fn table(args: &Args) -> Result<()> {
    let names: Vec<String> = if args.cases.is_empty() {
        CASES.iter().map(|s| s.to_string()).collect()
    } else {
        args.cases.clone()
    };
    println!("threads: {}", ops::num_threads());
    println!("{:<22} {:>12}", "case", "median ms");
    for name in names {
        let mut case = Case::new(&name)?;
        for _ in 0..2 {
            case.run()?;
        }
        let profile = std::env::var_os("REDIFFUSE_BENCH_PROFILE").is_some();
        ops::set_profiling(profile);
        let mut ms = (0..args.reps).map(|_| case.run()).collect::<Result<Vec<f64>>>()?;
        ops::set_profiling(false);
        println!("{:<22} {:>12.2}", name, median(&mut ms));
        for (op, total, n) in ops::take_profile() {
            println!("    {op:<34} {:>9.2} ms/call ({n} calls)", total / n as f64);
        }
    }
    Ok(())
}

fn breakdown(args: &Args) -> Result<()> {
    let mut case = UnetCase::new(&cases::unet_config("unet")?)?;
    println!("threads: {}, params: {}", ops::num_threads(), case.net.param_count());
    let _ = case.forward_backward()?;
    let (mut f, mut b) = (Vec::new(), Vec::new());
    for _ in 0..args.reps {
        let (fw, bw) = case.forward_backward()?;
        f.push(fw);
        b.push(bw);
    }
    println!("forward (train mode) {:>9.2} ms", median(&mut f));
    println!("backward             {:>9.2} ms", median(&mut b));
    let mut o = (0..args.reps).map(|_| case.optimiser_step()).collect::<Result<Vec<f64>>>()?;
    println!("AdamW step           {:>9.2} ms", median(&mut o));
    ops::set_profiling(true);
    let (fw, bw) = case.forward_backward()?;
    ops::set_profiling(false);
    println!("one profiled step: forward {fw:.2} ms, backward {bw:.2} ms; kernel totals:");
    let prof = ops::take_profile();
    let total: f64 = prof.iter().map(|p| p.1).sum();
    for (name, ms, n) in prof {
        println!("  {name:<34} {ms:>9.2} ms  ({n} calls)");
    }
    println!("  {:<34} {total:>9.2} ms  (rest is candle ops and autograd)", "all kernels");
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    ops::init_threads((args.threads > 0).then_some(args.threads));
    match args.mode.as_str() {
        "serve" => serve(),
        "table" => table(&args),
        "breakdown" => breakdown(&args),
        "probe" => probe(&args),
        other => bail!("unknown mode `{other}` (serve, table, breakdown, probe)"),
    }
}

/// Timings of candle primitives on a 64×64×28×28 tensor (to read the breakdown).
fn probe(args: &Args) -> Result<()> {
    use candle_core::{Device, Tensor};
    let dims = (64usize, 64usize, 28usize, 28usize);
    let a = Tensor::randn(0f32, 1., dims, &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1., dims, &Device::Cpu)?;
    let g = Tensor::ones(64, candle_core::DType::F32, &Device::Cpu)?;
    let z = Tensor::zeros(64, candle_core::DType::F32, &Device::Cpu)?;
    let time = |name: &str, f: &dyn Fn() -> Result<Tensor>| -> Result<()> {
        let mut v = Vec::new();
        for _ in 0..args.reps {
            let s = std::time::Instant::now();
            let t = f()?;
            v.push(s.elapsed().as_secs_f64() * 1e3);
            drop(t);
        }
        println!("{name:<28} {:>9.2} ms", median(&mut v));
        Ok(())
    };
    time("candle mul", &|| Ok((&a * &b)?))?;
    time("candle add", &|| Ok((&a + &b)?))?;
    time("candle zeros_like", &|| Ok(a.zeros_like()?))?;
    time("candle zeros_like+add", &|| Ok(a.zeros_like()?.add(&b)?))?;
    time("candle sum_all", &|| Ok(a.sum_all()?))?;
    time("ops group_norm", &|| Ok(ops::group_norm(&a, &g, &z, 8, 1e-5, false)?))?;
    time("ops group_norm+silu", &|| Ok(ops::group_norm(&a, &g, &z, 8, 1e-5, true)?))?;
    time("ops silu", &|| Ok(ops::silu(&a)?))?;
    let gv = candle_core::Var::from_tensor(&g)?;
    let zv = candle_core::Var::from_tensor(&z)?;
    let av = candle_core::Var::from_tensor(&a)?;
    let y = ops::group_norm(&av, &gv, &zv, 8, 1e-5, true)?;
    let loss = y.sum_all()?;
    ops::set_profiling(true);
    time("gn+silu backward (sum loss)", &|| Ok(loss.backward()?.get(&av).unwrap().clone()))?;
    ops::set_profiling(false);
    for (name, ms, n) in ops::take_profile() {
        println!("  {name:<34} {:>9.2} ms/call", ms / n as f64);
    }
    Ok(())
}
