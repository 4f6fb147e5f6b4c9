//! `rediffuse eval`: distances between samples and data, and run plots.

use crate::args::{EvalArgs, MetricKind};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use rediffuse_data::npy::read_npy_tensor;
use rediffuse_eval::{
    energy::energy_distance, mmd::mmd_rbf, samples::tensor_rows, sliced::sliced_wasserstein,
};
use serde_json::json;
use std::path::Path;

pub fn run(a: EvalArgs) -> Result<()> {
    if let Some(p) = &a.json {
        crate::io::prepare_output(p, a.force)?;
    }
    if matches!(a.metric, MetricKind::Nll | MetricKind::NllOde) {
        return crate::cmd::nll::run(&a);
    }
    if crate::cmd::features::is_feature_metric(a.metric) {
        return crate::cmd::features::run(&a);
    }
    if a.features.is_some() || a.stats.is_some() || a.save_stats.is_some() {
        bail!("--features/--stats/--save-stats apply to --metric fid|kid|is|prd|memorization");
    }
    let device = Device::Cpu;
    if a.metric == MetricKind::Psnr {
        return psnr(&a);
    }
    if a.metric == MetricKind::Straightness {
        return straightness(&a);
    }
    let samples_path = a.samples.as_ref().context("--samples is required for this metric")?;
    let data = a.data.as_deref().context("--data is required for this metric")?;
    let samples = read_npy_tensor(samples_path, &device)
        .with_context(|| format!("reading {}", samples_path.display()))?;
    let n_samples = samples.dim(0)?;
    let n_ref = a.n.unwrap_or(n_samples);
    let reference = crate::cmd::data::load(data, Some(n_ref), a.seed, &device)?;
    if samples.dims()[1..] != reference.dims()[1..] {
        bail!(
            "samples have shape {:?} per row but the data {:?}",
            &samples.dims()[1..],
            &reference.dims()[1..]
        );
    }
    let (x, d) = tensor_rows(&samples)?;
    let (y, _) = tensor_rows(&reference)?;
    let (name, value, extra) = match a.metric {
        MetricKind::Swd => (
            "swd",
            sliced_wasserstein(&x, &y, d, a.projections, a.seed)?,
            json!({"projections": a.projections}),
        ),
        MetricKind::Mmd => {
            let r = mmd_rbf(&x, &y, d, None)?;
            ("mmd", r.value, json!({"bandwidth": r.bandwidth}))
        }
        MetricKind::Energy => ("energy", energy_distance(&x, &y, d)?, json!({})),
        other => bail!("--metric {other:?} is handled elsewhere"),
    };
    println!("{name}: {value:.6}");
    if let Some(path) = &a.json {
        let mut obj = json!({
            "metric": name,
            "value": value,
            "n_samples": n_samples,
            "n_reference": reference.dim(0)?,
            "data": data,
        });
        if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        rediffuse_data::npy::write_bytes_atomic(path, serde_json::to_string_pretty(&obj)?.as_bytes())?;
    }
    Ok(())
}

/// `--metric psnr`: the samples against the row-aligned ground truth `--data FILE.npy`.
fn psnr(a: &EvalArgs) -> Result<()> {
    let device = Device::Cpu;
    let samples_path = a.samples.as_ref().context("--samples is required for psnr")?;
    let data =
        a.data.as_deref().context("--data (the ground truth .npy, row-aligned) is required for psnr")?;
    let samples = read_npy_tensor(samples_path, &device)
        .with_context(|| format!("reading {}", samples_path.display()))?;
    let truth = read_npy_tensor(Path::new(data), &device).with_context(|| format!("reading {data}"))?;
    let n = a.n.unwrap_or(samples.dim(0)?);
    if samples.dims()[1..] != truth.dims()[1..] || samples.dim(0)? < n || truth.dim(0)? < n {
        bail!(
            "psnr compares row by row: samples {:?} and ground truth {:?} must have the same shape (first {n} rows)",
            samples.dims(),
            truth.dims()
        );
    }
    let (x, d) = tensor_rows(&samples.narrow(0, 0, n)?)?;
    let (y, _) = tensor_rows(&truth.narrow(0, 0, n)?)?;
    let p = rediffuse_eval::psnr::psnr(&x, &y, d, 2.0)?;
    println!(
        "psnr: {:.4} dB (mean over {n} rows), {:.4} dB (pooled MSE {:.6})",
        p.mean_db, p.pooled_db, p.mse
    );
    if let Some(path) = &a.json {
        let obj = json!({
            "metric": "psnr", "value": p.mean_db, "pooled_db": p.pooled_db, "mse": p.mse,
            "exact_rows": p.exact_rows, "n": n, "samples": samples_path, "data": data,
        });
        rediffuse_data::npy::write_bytes_atomic(path, serde_json::to_string_pretty(&obj)?.as_bytes())?;
    }
    Ok(())
}

/// `--metric straightness`: Liu et al.'s straightness of a flow run's ODE paths from `--n` noise
/// draws (stream k of `--seed`), by `--steps` Euler steps.
fn straightness(a: &EvalArgs) -> Result<()> {
    let dir = a.run.as_ref().context("--run (a flow run) is required for straightness")?;
    let run = rediffuse_train::load_run(dir, !a.no_ema, &Device::Cpu)
        .with_context(|| format!("loading run {}", dir.display()))?;
    let rediffuse_train::Method::Flow(flow) = run.config.method else {
        bail!(
            "straightness is defined for flow runs (train --method flow), not `{}`",
            run.config.method.name()
        );
    };
    let n = a.n.unwrap_or(500);
    let steps = a.steps.unwrap_or(100);
    if n == 0 || steps == 0 {
        bail!("--n and --steps must be >= 1");
    }
    let shape = run.config.model.sample_shape();
    let model = rediffuse_sample::continuous::FlowModel::new(&run.denoiser, flow.sigma_min)?;
    let (mut total, mut done) = (0.0, 0usize);
    for (start, count) in rediffuse_core::noise::batches(n, a.batch_size.max(1)) {
        let z = rediffuse_core::NoiseSource::new(a.seed, start as u64, count).randn(&shape, &Device::Cpu)?;
        let (s, _) = rediffuse_sample::continuous::straightness(&model, &z, steps)?;
        total += s * count as f64;
        done += count;
    }
    let value = total / done as f64;
    println!("straightness: {value:.6} (per dimension, {n} paths, {steps} Euler steps)");
    if let Some(path) = &a.json {
        let obj = json!({"metric": "straightness", "value": value, "n": n, "steps": steps, "run": dir});
        rediffuse_data::npy::write_bytes_atomic(path, serde_json::to_string_pretty(&obj)?.as_bytes())?;
    }
    Ok(())
}

/// Draw the loss curve of a run folder from its `metrics.jsonl`.
pub fn loss_plot(run: &Path, png: &Path) -> Result<()> {
    let records = rediffuse_train::read_metrics(&run.join("metrics.jsonl"))?;
    let pts: Vec<(f64, f64)> = records.iter().map(|r| (r.step as f64, r.loss)).collect();
    rediffuse_eval::plot::line_plot_png(
        png,
        &[("loss".to_string(), pts)],
        "training loss",
        "step",
        "loss",
        true,
    )?;
    Ok(())
}
