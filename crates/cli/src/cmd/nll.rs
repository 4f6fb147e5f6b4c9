//! `rediffuse eval --metric nll | nll-ode`: likelihoods of a model.
//!
//! * `nll`: the variational bound of a discrete-time run (DDPM Eq. 5; seed 004 §6.2, §10.4) in
//!   bits/dim over the test split of `--data` — prior L_T, every KL term L_{t−1} and the
//!   discretized decoder L₀ (Eq. 13) — via `rediffuse_train::iddpm::nll_bits_per_dim`; iDDPM runs
//!   use their learned Σ_θ, DDPM runs σ_t² = β_t or β̃_t (`--variance`).
//! * `nll-ode`: the probability-flow ODE likelihood (Song et al. 2021b, §4.3) of the points in
//!   `--samples` under a run or an analytic model evaluated in a score SDE
//!   (`rediffuse_sample::dispatch::nll_ode`), in nats, plus bits/dim for 8-bit images.

use crate::args::{DivergenceKind, EvalArgs, MetricKind, SdeKind, VarianceKind};
use crate::cmd::data::{load_split, parse, Data};
use crate::progress;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use rediffuse_core::analytic::AnalyticDenoiser;
use rediffuse_core::noise::batches;
use rediffuse_core::sde::Sde;
use rediffuse_core::vlb::{VarianceMode, EIGHT_BIT_LEVELS};
use rediffuse_core::NoiseSource;
use rediffuse_data::images::{ImageSpec, Split};
use rediffuse_data::npy::{read_npy_tensor, write_bytes_atomic};
use rediffuse_sample::continuous::AnalyticSigma;
use rediffuse_sample::continuous::{Divergence, Probe};
use rediffuse_sample::dispatch::{nll_ode, Frame, NllOptions as OdeOptions, SampleModel};
use rediffuse_train::iddpm::{nll_bits_per_dim, BoundTimesteps, NllOptions, NllResult};
use rediffuse_train::{load_run, Method};
use serde_json::json;
use std::path::Path;

/// Lower end ε of the probability-flow ODE for analytic models (Song et al. 2021's likelihood
/// evaluation uses 1e-5, below the sampling ε = 1e-3: p_ε is then within ~σ(ε)²/λ_min of p_0).
const ANALYTIC_NLL_EPS: f64 = 1e-5;

/// Exact divergence up to this many dimensions by default, Hutchinson above.
const EXACT_DIVERGENCE_MAX_DIM: usize = 64;

pub fn run(a: &EvalArgs) -> Result<()> {
    match a.metric {
        MetricKind::Nll => nll(a),
        MetricKind::NllOde => ode(a),
        other => bail!("{other:?} is not a likelihood metric"),
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    write_bytes_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The evaluation set of `--metric nll`: the test split of an image set, or the training data of
/// sets without one (digits, folders; says so), or a toy set / `.npy` file as `data::load` reads it.
fn evaluation_data(
    spec: &str,
    n: Option<usize>,
    seed: u64,
    device: &Device,
) -> Result<(Tensor, &'static str)> {
    Ok(match parse(spec)? {
        Data::Images(ImageSpec::Digits { .. } | ImageSpec::Folder { .. }) => {
            eprintln!("note: {spec} has no test split; evaluating its training images");
            (load_split(spec, n, seed, Split::Train, device)?, "train")
        }
        Data::Images(_) => (load_split(spec, n, seed, Split::Test, device)?, "test"),
        Data::Plain(_) => (crate::cmd::data::load(spec, n, seed, device)?, "all"),
    })
}

/// `--metric nll`: the full variational bound in bits/dim (see the module docs).
fn nll(a: &EvalArgs) -> Result<()> {
    let run_dir = a.run.as_ref().context("--metric nll needs --run RUN (the model to evaluate)")?;
    let data = a.data.as_deref().context("--metric nll needs --data (its test split is evaluated)")?;
    if a.samples.is_some() {
        bail!("--metric nll evaluates --data under the model of --run; --samples is not used");
    }
    if a.analytic.is_some() || a.method.is_some() || a.divergence.is_some() {
        bail!("--analytic, --method and --divergence apply to --metric nll-ode");
    }
    let device = Device::Cpu;
    let run = load_run(run_dir, !a.no_ema, &device)
        .with_context(|| format!("loading run {}", run_dir.display()))?;
    refuse_latent(&run.config)?;
    let variance = match (&run.config.method, a.variance) {
        (Method::Iddpm { .. }, None) => VarianceMode::LearnedRange,
        (Method::Iddpm { .. }, Some(_)) => {
            bail!("an iddpm run uses its learned variance; --variance applies to ddpm runs")
        }
        (Method::Ddpm { .. }, v) => match v.unwrap_or(VarianceKind::Beta) {
            VarianceKind::Beta => VarianceMode::Beta,
            VarianceKind::BetaTilde => VarianceMode::BetaTilde,
        },
        (m, _) => bail!(
            "--metric nll is the variational bound of discrete-time runs (ddpm, iddpm); \
             for a {} run use --metric nll-ode",
            m.name()
        ),
    };
    let (x, split) = evaluation_data(data, a.n, a.seed, &device)?;
    let shape = run.config.model.sample_shape();
    if x.dims()[1..] != shape[..] {
        bail!("{data} has samples of shape {:?}, the run's model takes {shape:?}", &x.dims()[1..]);
    }
    let run_levels = match &run.config.method {
        Method::Iddpm { iddpm, .. } => Some(iddpm.data_levels),
        _ => None,
    };
    let levels =
        a.levels.or_else(|| crate::cmd::iddpm::known_levels(data)).or(run_levels).unwrap_or(EIGHT_BIT_LEVELS);
    let timesteps = match a.every {
        None | Some(1) => BoundTimesteps::All,
        Some(0) => bail!("--every must be >= 1"),
        Some(every) => BoundTimesteps::Stratified { every, seed: a.seed },
    };
    let opts = NllOptions { timesteps, clip_x0: Some(1.0), levels };
    let n = x.dim(0)?;
    let bar = progress::bar(n as u64, false, "nll");
    let mut total: Option<NllResult> = None;
    for (start, count) in batches(n, a.batch_size) {
        let mut noise = NoiseSource::new(a.seed, start as u64, count);
        let xb = x.narrow(0, start, count)?;
        let r = nll_bits_per_dim(&run.denoiser, variance, &run.schedule, &xb, &mut noise, &opts)?;
        match total.as_mut() {
            Some(t) => t.merge(r)?,
            None => total = Some(r),
        }
        bar.inc(count as u64);
    }
    bar.finish_and_clear();
    let result = total.context("no data to evaluate")?;
    let s = result.summary();
    let kind =
        if s.exact { "exact bound".to_string() } else { format!("stratified estimate, every {:?}", a.every) };
    println!(
        "nll: {:.6} ± {:.6} bits/dim (n = {}, {} split of {data}, T = {}, {kind}; prior {:.3e}, decoder L0 {:.4})",
        s.bits_per_dim,
        s.standard_error,
        s.n,
        split,
        s.num_timesteps,
        s.prior_bits_per_dim,
        s.decoder_bits_per_dim
    );
    if let Some(path) = &a.terms {
        result.write_terms_csv(path).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.json {
        let obj = json!({
            "metric": "nll",
            "value": s.bits_per_dim,
            "unit": "bits/dim",
            "std_err": s.standard_error,
            "n": s.n,
            "exact": s.exact,
            "num_timesteps": s.num_timesteps,
            "evaluated_terms": result.terms.len(),
            "prior_bits_per_dim": s.prior_bits_per_dim,
            "decoder_bits_per_dim": s.decoder_bits_per_dim,
            "levels": levels,
            "variance": variance,
            "data": data,
            "split": split,
            "run": run_dir,
            "ema": run.ema,
            "step": run.step,
        });
        write_json(path, &obj)?;
    }
    Ok(())
}

/// The SDE of `--method` for an analytic model.
fn sde_of(kind: SdeKind) -> Sde {
    match kind {
        SdeKind::Vp => Sde::vp(),
        SdeKind::Ve => Sde::ve(),
        SdeKind::SubVp => Sde::sub_vp(),
    }
}

/// An analytic denoiser (`gaussian:data.npy`, `gmm:spec.json`, `empirical:<data>`) evaluated at
/// exactly the σ the ODE solver asks for ([`AnalyticSigma`]: no timestep rounding).
fn analytic_denoiser(spec: &str) -> Result<AnalyticSigma<dyn AnalyticDenoiser>> {
    // the closed forms take any ᾱ; the schedule only serves index-based use, which nll-ode avoids
    let schedule = rediffuse_core::DiffusionSchedule::new(rediffuse_core::BetaSchedule::linear(), 1000)?;
    if spec.starts_with("els:") {
        bail!("the ELS machine is not differentiable: nll-ode takes gaussian, gmm or empirical");
    }
    let (model, _) = crate::cmd::analytic::build(spec, &schedule, Default::default())?;
    Ok(AnalyticSigma { model: model.into_analytic() })
}

/// Population mean and standard error of a list of values.
fn mean_and_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// `--metric nll-ode`: probability-flow likelihood of `--samples` (see the module docs).
fn ode(a: &EvalArgs) -> Result<()> {
    let path =
        a.samples.as_ref().context("--metric nll-ode needs --samples x.npy (the points to evaluate)")?;
    if a.data.is_some() {
        bail!("--metric nll-ode evaluates --samples; --data is not used (an analytic model names its data)");
    }
    if a.every.is_some() || a.variance.is_some() || a.levels.is_some() || a.terms.is_some() {
        bail!("--every, --variance, --levels and --terms apply to --metric nll");
    }
    let device = Device::Cpu;
    let mut x = read_npy_tensor(path, &device).with_context(|| format!("reading {}", path.display()))?;
    if x.rank() < 2 || x.dim(0)? == 0 {
        bail!("{} must hold a non-empty [N, …] array, got shape {:?}", path.display(), x.dims());
    }
    if let Some(n) = a.n {
        if n == 0 || n > x.dim(0)? {
            bail!("--n must lie in 1..={}, got {n}", x.dim(0)?);
        }
        x = x.narrow(0, 0, n)?;
    }
    let run;
    let analytic;
    let (model, source, sde) = match (&a.run, &a.analytic) {
        (Some(dir), None) => {
            if a.method.is_some() {
                bail!("--method applies to --analytic; a run is evaluated in its own frame");
            }
            run = load_run(dir, !a.no_ema, &device)
                .with_context(|| format!("loading run {}", dir.display()))?;
            refuse_latent(&run.config)?;
            let shape = run.config.model.sample_shape();
            if x.dims()[1..] != shape[..] {
                bail!("--samples rows have shape {:?}, the run's model takes {shape:?}", &x.dims()[1..]);
            }
            let m = run.sample_model()?;
            let sde = m.frame().sde;
            (m, dir.display().to_string(), sde)
        }
        (None, Some(spec)) => {
            let kind =
                a.method.context("--analytic needs --method vp-sde|ve-sde|subvp-sde (the SDE to use)")?;
            let sde = sde_of(kind);
            let frame = Frame::for_sde(sde, a.eps.unwrap_or(ANALYTIC_NLL_EPS))?;
            analytic = analytic_denoiser(spec)?;
            if x.dims()[1..].iter().product::<usize>() != analytic.model.dim() {
                bail!(
                    "--samples rows have shape {:?}, the analytic model has dimension {}",
                    &x.dims()[1..],
                    analytic.model.dim()
                );
            }
            let m = SampleModel::from_sigma(&analytic, frame, 1000)?.with_dtype(DType::F64);
            (m, spec.clone(), sde)
        }
        _ => bail!("give exactly one of --run RUN or --analytic KIND:ARG"),
    };
    let dim: usize = x.dims()[1..].iter().product();
    let divergence = match a.divergence {
        Some(DivergenceKind::Exact) => Divergence::Exact,
        Some(DivergenceKind::Hutchinson) => Divergence::Hutchinson { probe: Probe::Rademacher },
        None if dim <= EXACT_DIVERGENCE_MAX_DIM => Divergence::Exact,
        None => Divergence::Hutchinson { probe: Probe::Rademacher },
    };
    let images = x.rank() == 4;
    let mut opts = OdeOptions { images, ..OdeOptions::new(divergence) };
    if let Some(r) = a.rtol {
        opts.rk45.rtol = crate::io::finite("rtol", r, true)?;
    }
    if let Some(t) = a.atol {
        opts.rk45.atol = crate::io::finite("atol", t, true)?;
    }
    if let (Some(e), Some(_)) = (a.eps, &a.run) {
        opts.eps = Some(crate::io::finite("eps", e, true)?);
    }
    let eps = opts.eps.unwrap_or(model.frame().eps);
    let n = x.dim(0)?;
    let bar = progress::bar(n as u64, false, "nll-ode");
    let (mut nats, mut bpd, mut nfe) = (Vec::with_capacity(n), Vec::new(), 0);
    for (start, count) in batches(n, a.batch_size) {
        let mut noise = NoiseSource::new(a.seed, start as u64, count);
        let rep = nll_ode(&model, &x.narrow(0, start, count)?, &opts, &mut noise)?;
        nats.extend(rep.nll_nats_per_sample);
        if let Some(b) = rep.bits_per_dim_per_sample {
            bpd.extend(b);
        }
        nfe += rep.nfe;
        bar.inc(count as u64);
    }
    bar.finish_and_clear();
    let (nll_nats, nats_se) = mean_and_se(&nats);
    let div_name = match divergence {
        Divergence::Exact => "exact",
        Divergence::Hutchinson { .. } => "hutchinson",
    };
    let mut obj = json!({
        "metric": "nll-ode",
        "value": nll_nats,
        "unit": "nats",
        "nll_nats": nll_nats,
        "std_err": nats_se,
        "n": n,
        "exact": matches!(divergence, Divergence::Exact),
        "divergence": div_name,
        "sde": sde.name(),
        "eps": eps,
        "rtol": opts.rk45.rtol,
        "atol": opts.rk45.atol,
        "model": source,
        "nfe": nfe,
    });
    if images {
        let (b, b_se) = mean_and_se(&bpd);
        println!("nll-ode: {b:.6} ± {b_se:.6} bits/dim, {nll_nats:.6} nats (n = {n}, {div_name} divergence)");
        if let Some(o) = obj.as_object_mut() {
            o.insert("value".into(), json!(b));
            o.insert("unit".into(), json!("bits/dim"));
            o.insert("bits_per_dim".into(), json!(b));
            o.insert("bits_per_dim_std_err".into(), json!(b_se));
        }
    } else {
        println!(
            "nll-ode: {nll_nats:.6} ± {nats_se:.6} nats (n = {n}, {div_name} divergence, {} SDE, −log p_ε at ε = {eps:e}, RK45 rtol {:e})",
            sde.name(),
            opts.rk45.rtol
        );
    }
    if let Some(p) = &a.json {
        write_json(p, &obj)?;
    }
    Ok(())
}

/// Likelihoods are of the data: a latent run's model gives the likelihood of its latents only.
fn refuse_latent(config: &rediffuse_train::TrainConfig) -> Result<()> {
    if config.latent.is_some() {
        bail!("likelihoods of latent-diffusion runs are not supported (the model's would be of the latents, not the images)");
    }
    Ok(())
}
