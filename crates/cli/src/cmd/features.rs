//! `rediffuse eval --metric fid|kid|is|prd|memorization`: feature-based metrics of samples
//! against reference data (or saved reference statistics), with a chosen feature network.

use crate::args::{EvalArgs, MetricKind};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rediffuse_data::images::Split;
use rediffuse_data::npy::{read_npy_tensor, write_bytes_atomic};
use rediffuse_eval::features::{
    extract_features, extract_logits, fid, inception_score_from_logits, kid, memorization, precision_recall,
    ClassifierFeatures, FeatureExtractor, FeatureMatrix, FeatureStats, InceptionV3Fid, KidConfig,
    RawFeatures,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The feature network named by `--features`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureSpec {
    /// The flattened values themselves.
    Raw,
    /// pytorch-fid's Inception-v3 from a safetensors file.
    Inception(PathBuf),
    /// A folder written by `rediffuse train-classifier`.
    Classifier(PathBuf),
}

impl FromStr for FeatureSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.split_once(':') {
            None if s == "raw" => Ok(FeatureSpec::Raw),
            Some(("inception", p)) if !p.is_empty() => Ok(FeatureSpec::Inception(PathBuf::from(p))),
            Some(("classifier", p)) if !p.is_empty() => Ok(FeatureSpec::Classifier(PathBuf::from(p))),
            _ => bail!("--features `{s}`: expected inception:WEIGHTS.safetensors, classifier:DIR or raw"),
        }
    }
}

impl FeatureSpec {
    /// Build the extractor for samples of per-sample shape `[C, H, W]`.
    pub(crate) fn build(&self, shape: [usize; 3], device: &Device) -> Result<Box<dyn FeatureExtractor>> {
        Ok(match self {
            FeatureSpec::Raw => Box::new(RawFeatures::new(shape[0], shape[1], shape[2])?),
            FeatureSpec::Inception(path) => {
                if !path.is_file() {
                    bail!("Inception weights file {} not found", path.display());
                }
                Box::new(InceptionV3Fid::load(path, device)?)
            }
            FeatureSpec::Classifier(dir) => {
                if !dir.is_dir() {
                    bail!(
                        "classifier folder {} not found (train one with `rediffuse train-classifier`)",
                        dir.display()
                    );
                }
                let c = ClassifierFeatures::load(dir, device)?;
                let want = c.config().input_shape();
                if want != shape {
                    bail!(
                        "the classifier in {} takes images of shape {want:?}, the samples have {shape:?}",
                        dir.display()
                    );
                }
                Box::new(c)
            }
        })
    }
}

/// View `[N, D]` as `[N, D, 1, 1]`; keep `[N, C, H, W]`.
pub(crate) fn as_images(t: Tensor, what: &str) -> Result<Tensor> {
    match *t.dims() {
        [n, d] => Ok(t.reshape((n, d, 1, 1))?),
        [_, _, _, _] => Ok(t),
        ref other => bail!("{what} must be N×D or N×C×H×W, got shape {other:?}"),
    }
}

fn per_sample(t: &Tensor) -> [usize; 3] {
    let d = t.dims();
    [d[1], d[2], d[3]]
}

/// Write `stats` to `path` through a temporary file and a rename; refuses an existing file.
fn save_stats_atomic(stats: &FeatureStats, path: &Path) -> Result<()> {
    if path.exists() {
        bail!("{} already exists (remove it to write new statistics)", path.display());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    if let Err(e) = stats.save(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub fn run(a: &EvalArgs) -> Result<()> {
    let device = Device::Cpu;
    let metric = a.metric;
    let spec: FeatureSpec = match (&a.features, metric) {
        (Some(s), _) => s.parse()?,
        (None, MetricKind::Memorization) => FeatureSpec::Raw,
        (None, _) => bail!(
            "--metric {} needs --features inception:WEIGHTS.safetensors|classifier:DIR|raw",
            name(metric)
        ),
    };
    if a.batch_size == 0 {
        bail!("--batch-size must be >= 1");
    }
    if a.n == Some(0) {
        bail!("--n must be a positive integer");
    }
    let uses_reference = !matches!(metric, MetricKind::Is | MetricKind::Accuracy);
    if !uses_reference && (a.data.is_some() || a.stats.is_some()) {
        bail!("--metric {} uses only the samples; drop --data/--stats", name(metric));
    }
    if (metric == MetricKind::Accuracy) != a.labels.is_some() {
        bail!("--labels FILE goes with --metric accuracy (the intended class of every sample)");
    }
    if a.stats.is_some() && metric != MetricKind::Fid {
        bail!("--stats holds only feature moments, which only FID uses; give --data for {}", name(metric));
    }
    if uses_reference && a.data.is_none() && a.stats.is_none() {
        bail!(
            "--metric {} needs reference data: --data <name|file.npy> (or --stats FILE for fid)",
            name(metric)
        );
    }

    let samples_path = a.samples.as_ref().context("--samples is required for this metric")?;
    let samples = read_npy_tensor(samples_path, &device)
        .with_context(|| format!("reading {}", samples_path.display()))?;
    let mut samples = as_images(samples, "--samples")?;
    let available = samples.dim(0)?;
    if let Some(n) = a.n {
        if n > available {
            bail!("--n {n} exceeds the {available} samples in {}", samples_path.display());
        }
        samples = samples.narrow(0, 0, n)?;
    }
    let n_samples = samples.dim(0)?;
    if n_samples == 0 {
        bail!("{} holds no samples", samples_path.display());
    }
    let extractor = spec.build(per_sample(&samples), &device)?;
    let id = extractor.id();

    let reference = match &a.data {
        Some(data) => {
            // FID, KID and memorisation compare against every reference row (as pytorch-fid), so
            // sets of different sizes work; --n draws that many from both. Precision/recall use as
            // many reference rows as samples where the reference has them (balanced k-NN radii).
            // (A generated toy set has no "all rows": it gives as many as there are samples.)
            let generated = matches!(
                crate::cmd::data::parse(data)?,
                crate::cmd::data::Data::Plain(rediffuse_data::DataSpec::Toy(_))
            );
            let n_ref = match a.n {
                None if generated => Some(n_samples),
                n => n.filter(|_| metric != MetricKind::Prd),
            };
            let r = crate::cmd::data::load_split(data, n_ref, a.seed, Split::Train, &device)
                .with_context(|| format!("loading the reference data `{data}` (use --n to draw fewer)"))?;
            let mut r = as_images(r, "--data")?;
            if metric == MetricKind::Prd {
                let keep = a.n.unwrap_or(n_samples).min(r.dim(0)?);
                r = r.narrow(0, 0, keep)?;
            }
            if per_sample(&r) != per_sample(&samples) {
                bail!(
                    "samples have shape {:?} per row but the data {data} {:?}",
                    per_sample(&samples),
                    per_sample(&r)
                );
            }
            Some(r)
        }
        None => None,
    };
    let features_of = |t: &Tensor, what: &str| -> Result<FeatureMatrix> {
        extract_features(extractor.as_ref(), t, a.batch_size)
            .with_context(|| format!("features of the {what}"))
    };

    let mut out = json!({
        "metric": name(metric),
        "n_samples": n_samples,
        "features": id,
        "feature_dim": extractor.dim(),
        "samples": a.samples,
        "data": a.data,
    });
    let value = match metric {
        MetricKind::Fid => {
            let ref_stats = match (&reference, &a.stats) {
                (Some(r), _) => FeatureStats::from_features(&features_of(r, "reference data")?, id.clone())?,
                (None, Some(path)) => {
                    let s =
                        FeatureStats::load(path).with_context(|| format!("reading {}", path.display()))?;
                    if s.extractor != id {
                        bail!(
                            "statistics in {} were computed with features `{}`, but --features gives `{id}`",
                            path.display(),
                            s.extractor
                        );
                    }
                    out["stats"] = json!(path);
                    s
                }
                (None, None) => bail!("--metric fid needs --data or --stats"),
            };
            if let Some(path) = &a.save_stats {
                save_stats_atomic(&ref_stats, path)?;
                eprintln!("saved reference statistics ({} images) to {}", ref_stats.n, path.display());
            }
            out["n_reference"] = json!(ref_stats.n);
            let sample_stats = FeatureStats::from_features(&features_of(&samples, "samples")?, id.clone())?;
            let v = fid(&sample_stats, &ref_stats)?;
            println!("fid: {v:.6}");
            v
        }
        MetricKind::Kid => {
            let r = reference.as_ref().context("KID needs --data")?;
            let cfg = KidConfig { num_subsets: a.kid_subsets, subset_size: a.kid_subset_size, seed: a.seed };
            let res = kid(&features_of(r, "reference data")?, &features_of(&samples, "samples")?, &cfg)?;
            out["n_reference"] = json!(r.dim(0)?);
            out["std"] = json!(res.std);
            out["subset_size"] = json!(res.subset_size);
            out["num_subsets"] = json!(res.num_subsets);
            println!("kid: {:.6} ± {:.6}", res.mean, res.std);
            res.mean
        }
        MetricKind::Is => {
            let logits = extract_logits(extractor.as_ref(), &samples, a.batch_size)
                .context("logits of the samples")?
                .with_context(|| format!("features `{id}` have no class logits; the Inception Score needs classifier:DIR or inception weights with the fc layer"))?;
            let mut order: Vec<usize> = (0..logits.rows()).collect();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(a.seed));
            let res = inception_score_from_logits(&logits.select_rows(&order)?, a.splits)?;
            out["std"] = json!(res.std);
            out["splits"] = json!(res.splits);
            println!("is: {:.4} ± {:.4}", res.mean, res.std);
            res.mean
        }
        MetricKind::Accuracy => {
            let path = a.labels.as_ref().context("--metric accuracy needs --labels")?;
            let arr =
                rediffuse_data::npy::read_npy(path).with_context(|| format!("reading {}", path.display()))?;
            if arr.shape != [n_samples] {
                bail!(
                    "{} has shape {:?}, expected [{n_samples}] (one label per sample)",
                    path.display(),
                    arr.shape
                );
            }
            let logits = extract_logits(extractor.as_ref(), &samples, a.batch_size)
                .context("logits of the samples")?
                .with_context(|| format!("features `{id}` have no class logits; accuracy needs classifier:DIR or inception weights with the fc layer"))?;
            let k = logits.cols();
            let mut hits = vec![0usize; k];
            let mut counts = vec![0usize; k];
            for (i, &y) in arr.data.iter().enumerate() {
                if !(y >= 0.0 && y.fract() == 0.0 && (y as usize) < k) {
                    bail!("label {y} of sample {i} in {} is not a class index 0..{k}", path.display());
                }
                let row = logits.row(i);
                let pred = (0..k).max_by(|&p, &q| row[p].total_cmp(&row[q])).unwrap_or(0);
                counts[y as usize] += 1;
                hits[y as usize] += usize::from(pred == y as usize);
            }
            let acc = hits.iter().sum::<usize>() as f64 / n_samples as f64;
            let per_class: Vec<Option<f64>> =
                hits.iter().zip(&counts).map(|(&h, &c)| (c > 0).then(|| h as f64 / c as f64)).collect();
            out["per_class"] = json!(per_class);
            let shown: Vec<String> =
                per_class.iter().map(|p| p.map_or("-".into(), |v| format!("{v:.2}"))).collect();
            println!("accuracy: {acc:.4} (per class: {})", shown.join(" "));
            acc
        }
        MetricKind::Prd => {
            let r = reference.as_ref().context("precision/recall needs --data")?;
            let pr = precision_recall(
                &features_of(r, "reference data")?,
                &features_of(&samples, "samples")?,
                a.k,
            )?;
            out["n_reference"] = json!(r.dim(0)?);
            out["precision"] = json!(pr.precision);
            out["recall"] = json!(pr.recall);
            out["k"] = json!(pr.k);
            println!("precision: {:.4}  recall: {:.4}", pr.precision, pr.recall);
            pr.precision
        }
        MetricKind::Memorization => {
            let r = reference.as_ref().context("memorization needs the training set as --data")?;
            let rep = memorization(
                &features_of(&samples, "samples")?,
                &features_of(r, "training data")?,
                a.threshold,
            )?;
            let mut sorted = rep.ratios.clone();
            sorted.sort_by(f64::total_cmp);
            out["n_reference"] = json!(r.dim(0)?);
            out["fraction_near_copies"] = json!(rep.fraction_below);
            out["threshold"] = json!(rep.threshold);
            out["median_ratio"] = json!(sorted[sorted.len() / 2]);
            out["ratios"] = json!(rep.ratios);
            out["nearest_index"] = json!(rep.nearest_index);
            out["nearest_distance"] = json!(rep.nearest_distance);
            println!(
                "near copies (d1/d2 < {:.3}): {:.4} of {} samples; median d1/d2 {:.4}",
                rep.threshold,
                rep.fraction_below,
                n_samples,
                sorted[sorted.len() / 2]
            );
            rep.fraction_below
        }
        MetricKind::Swd
        | MetricKind::Mmd
        | MetricKind::Energy
        | MetricKind::Nll
        | MetricKind::NllOde
        | MetricKind::Straightness
        | MetricKind::Psnr => {
            bail!("--metric {} is not a feature metric", name(metric))
        }
    };
    out["value"] = json!(value);
    if let Some(path) = &a.json {
        write_bytes_atomic(path, serde_json::to_string_pretty(&out)?.as_bytes())?;
    }
    Ok(())
}

/// The metric's command-line name.
fn name(metric: MetricKind) -> &'static str {
    match metric {
        MetricKind::Swd => "swd",
        MetricKind::Mmd => "mmd",
        MetricKind::Energy => "energy",
        MetricKind::Fid => "fid",
        MetricKind::Kid => "kid",
        MetricKind::Is => "is",
        MetricKind::Accuracy => "accuracy",
        MetricKind::Prd => "prd",
        MetricKind::Memorization => "memorization",
        MetricKind::Nll => "nll",
        MetricKind::NllOde => "nll-ode",
        MetricKind::Psnr => "psnr",
        MetricKind::Straightness => "straightness",
    }
}

/// Whether `metric` is computed here (rather than on raw rows in `eval.rs`).
pub fn is_feature_metric(metric: MetricKind) -> bool {
    matches!(
        metric,
        MetricKind::Fid
            | MetricKind::Kid
            | MetricKind::Is
            | MetricKind::Accuracy
            | MetricKind::Prd
            | MetricKind::Memorization
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_specs_parse() {
        assert_eq!("raw".parse::<FeatureSpec>().unwrap(), FeatureSpec::Raw);
        assert_eq!(
            "inception:w.safetensors".parse::<FeatureSpec>().unwrap(),
            FeatureSpec::Inception("w.safetensors".into())
        );
        assert_eq!(
            "classifier:runs/c".parse::<FeatureSpec>().unwrap(),
            FeatureSpec::Classifier("runs/c".into())
        );
        for bad in ["", "inception", "inception:", "clip:x", "raw:1"] {
            assert!(bad.parse::<FeatureSpec>().is_err(), "{bad}");
        }
    }
}
