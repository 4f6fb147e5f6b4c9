//! Small-sample FID / KID of the EMA model during `rediffuse train` (`--eval-every N`): the
//! [`PeriodicEval`] the trainer calls, and the plots of the logged values.

use crate::args::TrainArgs;
use crate::cmd::features::{as_images, FeatureSpec};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rediffuse_core::noise::batches;
use rediffuse_core::NoiseSource;
use rediffuse_data::images::Split;
use rediffuse_eval::features::{
    extract_features, fid, kid, FeatureExtractor, FeatureMatrix, FeatureStats, KidConfig,
};
use rediffuse_sample::dispatch::{sample, SamplerSpec};
use rediffuse_sample::{DdimOptions, TimestepSpacing};
use rediffuse_train::{EvalFeatures, LoadedRun, Method, PeriodicEval, PeriodicEvalConfig, TrainConfig};
use std::collections::BTreeMap;
use std::path::Path;

/// Samples per evaluation when `--eval-n` is not given.
pub const DEFAULT_EVAL_N: usize = 500;
/// Model batch size of the evaluation sampler.
const SAMPLE_BATCH: usize = 250;

/// Merge the `--eval-*` flags into `current` (the config file's or a resumed run's settings).
pub fn configure(a: &TrainArgs, current: Option<PeriodicEvalConfig>) -> Result<Option<PeriodicEvalConfig>> {
    let any_flag =
        a.eval_every.is_some() || a.eval_n.is_some() || a.eval_features.is_some() || a.eval_steps.is_some();
    let mut cfg = match (current, a.eval_every) {
        (Some(c), _) => c,
        (None, Some(every)) => {
            PeriodicEvalConfig { every, n: DEFAULT_EVAL_N, features: EvalFeatures::Raw, sampler_steps: None }
        }
        (None, None) if any_flag => bail!("--eval-n, --eval-features and --eval-steps need --eval-every N"),
        (None, None) => return Ok(None),
    };
    if let Some(v) = a.eval_every {
        cfg.every = v;
    }
    if let Some(v) = a.eval_n {
        cfg.n = v;
    }
    if let Some(s) = &a.eval_features {
        cfg.features = match s.parse::<FeatureSpec>()? {
            FeatureSpec::Raw => EvalFeatures::Raw,
            FeatureSpec::Classifier(dir) => EvalFeatures::Classifier { dir },
            FeatureSpec::Inception(weights) => EvalFeatures::Inception { weights },
        };
    }
    if let Some(v) = a.eval_steps {
        cfg.sampler_steps = Some(v);
    }
    cfg.validate()?;
    Ok(Some(cfg))
}

/// The sampler of the evaluations: DDIM (η = 0) for discrete-time runs, EDM's Heun sampler in
/// σ-space for the continuous ones; x₀ (D) is clipped to [−1, 1] for images.
pub fn eval_sampler(method: &Method, steps: Option<usize>, image: bool) -> SamplerSpec {
    match method {
        Method::Ddpm { .. } | Method::Iddpm { .. } => SamplerSpec::Ddim(DdimOptions {
            steps: steps.unwrap_or(50),
            eta: 0.0,
            spacing: TimestepSpacing::Leading,
            clip_x0: image.then_some(1.0),
            clipped_model_output: true,
            stride_prev: false,
        }),
        _ => SamplerSpec::EdmHeun { steps: steps.unwrap_or(18), rho: 7.0 },
    }
}

/// FID and KID of `n` EMA samples against `n` training examples, in a fixed feature space.
/// The samples use noise seed = the run's seed at every evaluation (the same x_T each time, so
/// the curve shows the model's change rather than sampling noise): `rediffuse sample --run RUN
/// --seed SEED --n N` with the sampler of [`eval_sampler`] draws the same samples.
pub struct FidKidEval {
    extractor: Box<dyn FeatureExtractor>,
    reference: FeatureMatrix,
    reference_stats: FeatureStats,
    spec: SamplerSpec,
    n: usize,
    seed: u64,
    sample_shape: Vec<usize>,
    device: Device,
    /// A latent run's autoencoder: samples are decoded before their features are taken.
    decoder: Option<rediffuse_train::latent::LatentCodec>,
}

impl FidKidEval {
    /// Load the reference data (`n` examples of the run's training set) and the feature network,
    /// and compute the reference features once.
    /// `decoder`: a latent run's autoencoder (samples are latents, decoded before their features).
    pub fn new(
        config: &TrainConfig,
        decoder: Option<rediffuse_train::latent::LatentCodec>,
        device: &Device,
    ) -> Result<Option<Self>> {
        let Some(ec) = &config.eval else { return Ok(None) };
        let reference =
            crate::cmd::data::load_split(&config.data, Some(ec.n), config.seed, Split::Train, device)
                .with_context(|| format!("loading {} reference examples of `{}`", ec.n, config.data))?;
        if reference.dim(0)? < ec.n {
            bail!("--eval-n {} exceeds the {} examples of `{}`", ec.n, reference.dim(0)?, config.data);
        }
        let sample_shape = config.model.sample_shape();
        let reference = as_images(reference, "the reference data")?;
        let d = reference.dims();
        let spec = match &ec.features {
            EvalFeatures::Raw => FeatureSpec::Raw,
            EvalFeatures::Classifier { dir } => FeatureSpec::Classifier(dir.clone()),
            EvalFeatures::Inception { weights } => FeatureSpec::Inception(weights.clone()),
        };
        let extractor = spec.build([d[1], d[2], d[3]], device)?;
        let features = extract_features(extractor.as_ref(), &reference, SAMPLE_BATCH)
            .context("features of the reference data")?;
        let reference_stats = FeatureStats::from_features(&features, extractor.id())?;
        Ok(Some(Self {
            extractor,
            reference: features,
            reference_stats,
            // latents are not clipped like images
            spec: eval_sampler(
                &config.method,
                ec.sampler_steps,
                sample_shape.len() == 3 && decoder.is_none(),
            ),
            n: ec.n,
            seed: config.seed,
            sample_shape,
            device: device.clone(),
            decoder,
        }))
    }

    fn metrics(&mut self, run: &LoadedRun) -> Result<BTreeMap<String, f64>> {
        // images: denoised estimates clipped to [−1, 1], as `rediffuse sample` does
        let image = self.sample_shape.len() == 3 && self.decoder.is_none();
        let model = run.sample_model()?.with_clip_denoised(image.then_some(1.0))?;
        let mut parts = Vec::new();
        for (start, count) in batches(self.n, SAMPLE_BATCH) {
            let mut noise = NoiseSource::new(self.seed, start as u64, count);
            let (x, _) =
                sample(&self.spec, &model, None, &self.sample_shape, &self.device, &mut noise, None)?;
            parts.push(x);
        }
        let mut x = Tensor::cat(&parts, 0)?;
        if let Some(codec) = &self.decoder {
            x = codec.decode(&x).context("decoding the latent samples")?;
        }
        let x = as_images(x, "the samples")?;
        let features = extract_features(self.extractor.as_ref(), &x, SAMPLE_BATCH)?;
        let stats = FeatureStats::from_features(&features, self.extractor.id())?;
        // subsets of half the samples, so that the 100 subset estimates differ and their spread
        // says how noisy the estimate is
        let kid_cfg = KidConfig { subset_size: (self.n / 2).clamp(2, 1000), ..KidConfig::default() };
        let k = kid(&self.reference, &features, &kid_cfg)?;
        Ok(BTreeMap::from([
            ("fid".to_string(), fid(&self.reference_stats, &stats)?),
            ("kid".to_string(), k.mean),
            ("kid_std".to_string(), k.std),
        ]))
    }
}

impl PeriodicEval for FidKidEval {
    fn evaluate(&mut self, run: &LoadedRun) -> std::result::Result<BTreeMap<String, f64>, String> {
        self.metrics(run).map_err(|e| format!("{e:#}"))
    }
}

/// Draw `fid.png` and `kid.png` in the run folder from the evaluation records of
/// `metrics.jsonl`; returns the files written (none when the run logged no evaluation).
pub fn eval_plots(run: &Path) -> Result<Vec<std::path::PathBuf>> {
    let records = rediffuse_train::read_metrics(&run.join("metrics.jsonl"))?;
    let config = TrainConfig::load(&run.join("config.toml"))?;
    let about = match &config.eval {
        Some(e) => {
            let features = match &e.features {
                EvalFeatures::Raw => "raw features".to_string(),
                EvalFeatures::Classifier { .. } => "classifier features".to_string(),
                EvalFeatures::Inception { .. } => "Inception features".to_string(),
            };
            format!(" ({features}, n = {})", e.n)
        }
        None => String::new(),
    };
    let series = |key: &str| -> Vec<(f64, f64)> {
        records.iter().filter_map(|r| r.eval.get(key).map(|v| (r.step as f64, *v))).collect()
    };
    let mut written = Vec::new();
    for (key, what) in [("fid", "FID"), ("kid", "KID")] {
        let title = format!("{what} of EMA samples{about}");
        let pts = series(key);
        if pts.is_empty() {
            continue;
        }
        let png = run.join(format!("{key}.png"));
        rediffuse_eval::plot::line_plot_png(&png, &[(key.to_string(), pts)], &title, "step", what, false)?;
        written.push(png);
    }
    Ok(written)
}
