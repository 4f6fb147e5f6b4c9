//! `rediffuse els-calibrate`: how well the ELS machine (seed 002, Analytic Theory) predicts a
//! trained network, and the patch size per noise level that predicts it best.
//!
//! The network's own deterministic trajectories (Euler in σ = DDIM, η = 0, from seeded noise) are followed;
//! at every step the network's x̂₀ is compared with the ELS machine's for each candidate patch
//! side and with the empirical ("perfect") denoiser's, by r² per sample (median over samples).
//! The best patch side per step forms the calibrated schedule written to `--out`, which
//! `sample --analytic els:<data> --patch FILE` reads.

use crate::args::ElsCalibrateArgs;
use crate::io::{positive, prepare_output};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use rediffuse_core::analytic::{ElsDenoiser, EmpiricalDenoiser, PatchKnot, PatchSchedule};
use rediffuse_core::NoiseSource;
use rediffuse_data::npy::write_bytes_atomic;
use rediffuse_sample::continuous::stats::StepInfo;
use rediffuse_sample::continuous::{euler, median, r_squared, AnalyticSigma, SigmaDenoiser};
use rediffuse_sample::dispatch::GridFamily;
use serde_json::json;
use std::time::Instant;

pub fn run(a: ElsCalibrateArgs) -> Result<()> {
    prepare_output(&a.out, a.force)?;
    let samples = positive("samples", a.samples)?;
    let steps = positive("steps", a.steps)?;
    let analytic_n = a.analytic_n.map(|v| positive("analytic-n", v)).transpose()?;
    if a.patches.is_empty() {
        bail!("--patches needs at least one odd patch side");
    }
    let mut patches = Vec::new();
    for &p in &a.patches {
        if p < 1 || p % 2 == 0 {
            bail!("--patches takes odd patch sides >= 1, got {p}");
        }
        patches.push(p as usize);
    }
    patches.sort_unstable();
    patches.dedup();

    let device = Device::Cpu;
    let run = rediffuse_train::load_run(&a.run, !a.no_ema, &device)
        .with_context(|| format!("loading run {}", a.run.display()))?;
    let shape = crate::cmd::data::run_sample_shape(&run.config)?;
    if run.config.latent.is_some() {
        bail!("els-calibrate compares pixel-space denoisers; {} is a latent-diffusion run", a.run.display());
    }
    if shape.len() != 3 {
        bail!("els-calibrate needs an image run, {} samples shape {shape:?}", a.run.display());
    }
    let data_spec = a.data.clone().unwrap_or_else(|| run.config.data.clone());
    let data = crate::cmd::data::load(&data_spec, analytic_n, 0, &device)
        .with_context(|| format!("loading the data `{data_spec}`"))?;
    if data.dims()[1..] != shape[..] {
        bail!("the data `{data_spec}` has images {:?}, the run samples {shape:?}", &data.dims()[1..]);
    }
    let schedule = run.schedule.clone();
    let machines = patches
        .iter()
        .map(|&p| {
            let els = ElsDenoiser::new(&data, &schedule, PatchSchedule::constant(p)?)?;
            Ok(AnalyticSigma { model: Box::new(els) })
        })
        .collect::<Result<Vec<_>>>()?;
    let ideal = AnalyticSigma { model: Box::new(EmpiricalDenoiser::new(&data, &schedule)?) };

    let model = run.sample_model()?;
    let sigmas =
        model.sigma_grid(model.default_sigma_schedule(GridFamily::Euler), GridFamily::Euler, steps)?;
    let x = NoiseSource::new(a.seed, 0, samples).randn(&shape, &device)?.affine(sigmas[0], 0.0)?;
    let started = Instant::now();
    if !a.quiet {
        eprintln!(
            "{} trajectories × {steps} steps; ELS on {} images, patch sides {patches:?}",
            samples,
            data.dim(0)?
        );
        eprintln!("{:>4} {:>9}  {}  {:>8}  best", "step", "sigma", header(&patches), "ideal");
    }
    let (mut rows, mut knots, mut best_r2, mut ideal_r2s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut compare =
        |i: usize, sigma: f64, x: &candle_core::Tensor, denoised: &candle_core::Tensor| -> Result<()> {
            let r2 = |m: &dyn SigmaDenoiser| -> Result<f64> {
                let d = m.denoise(x, &vec![sigma; samples])?;
                Ok(median(&r_squared(denoised, &d)?))
            };
            let per_patch = machines.iter().map(|m| r2(m)).collect::<Result<Vec<_>>>()?;
            let ideal_r2 = r2(&ideal)?;
            let (best_i, best) = best_of(&per_patch);
            knots.push(PatchKnot { sigma, patch: patches[best_i] });
            if !a.quiet {
                let cells: Vec<String> = per_patch.iter().map(|v| format!("{v:8.4}")).collect();
                eprintln!("{i:>4} {sigma:>9.4}  {}  {ideal_r2:8.4}  P={}", cells.join(" "), patches[best_i]);
            }
            rows.push(json!({
                "step": i, "sigma": sigma, "r2": per_patch, "r2_empirical": ideal_r2,
                "best_patch": patches[best_i], "best_r2": best,
            }));
            best_r2.push(best);
            ideal_r2s.push(ideal_r2);
            Ok(())
        };
    // Euler's callback reports each step's D(x_i; σ_i) with the x after the step, so x_i is kept.
    let mut previous = x.clone();
    let mut failure = None;
    let mut visit = |info: &StepInfo<'_>| {
        let i = info.step - 1;
        if failure.is_none() {
            let result = match info.denoised {
                Some(d) => compare(i, sigmas[i], &previous, d),
                None => Err(anyhow::anyhow!("the Euler sampler reported no denoised estimate")),
            };
            failure = result.err();
        }
        previous = info.x.clone();
    };
    euler(&model.sigma_model(), &x, &sigmas, Some(&mut visit))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let schedule = PatchSchedule::new(knots).context("building the calibrated schedule")?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mean_best, mean_ideal) = (mean(&best_r2), mean(&ideal_r2s));
    let report = json!({
        "run": a.run.display().to_string(),
        "data": data_spec,
        "images": data.dim(0)?,
        "samples": samples,
        "steps": steps,
        "seed": a.seed,
        "patches": patches,
        "rows": rows,
        "mean_best_r2": mean_best,
        "mean_empirical_r2": mean_ideal,
        "seconds": started.elapsed().as_secs_f64(),
        "knots": schedule.knots(),
    });
    write_bytes_atomic(&a.out, serde_json::to_string_pretty(&report)?.as_bytes())
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "median r² over steps: ELS (best patch per step) {mean_best:.4}, empirical denoiser {mean_ideal:.4}; \
         schedule written to {} ({:.1} s)",
        a.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn header(patches: &[usize]) -> String {
    patches.iter().map(|p| format!("{:>8}", format!("P={p}"))).collect::<Vec<_>>().join(" ")
}

/// Index and value of the largest r² (the first on ties; NaN never wins).
fn best_of(values: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, &v) in values.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}
