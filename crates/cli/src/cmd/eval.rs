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
