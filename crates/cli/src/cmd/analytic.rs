//! `--analytic KIND:ARG`: the closed-form denoisers shared by `sample` and `eval --metric
//! nll-ode`: gaussian:data.npy, gmm:spec.json, empirical:<data> and els:<data> (the equivariant
//! local score machine, with `--patch P|SCHEDULE.json`).

use anyhow::{bail, Context, Result};
use candle_core::Device;
use rediffuse_core::analytic::{
    AnalyticDenoiser, ElsDenoiser, EmpiricalDenoiser, GaussianDenoiser, GmmDenoiser, GmmSpec, PatchSchedule,
};
use rediffuse_core::{Denoiser, DiffusionSchedule};

pub const SPEC_HELP: &str =
    "--analytic takes gaussian:data.npy, gmm:spec.json, empirical:<data> or els:<data> (with --patch)";

/// Options of the data-based analytic denoisers.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyticOptions<'a> {
    /// `--patch`: an odd patch side or a patch schedule JSON (`rediffuse els-calibrate --out`).
    pub patch: Option<&'a str>,
    /// `--analytic-n`: use a seeded subset of this many examples of the data.
    pub n: Option<usize>,
}

/// One analytic denoiser, by kind.
pub enum Analytic {
    Gaussian(GaussianDenoiser),
    Gmm(GmmDenoiser),
    Empirical(EmpiricalDenoiser),
    Els(ElsDenoiser),
}

impl Analytic {
    pub fn into_denoiser(self) -> Box<dyn Denoiser> {
        match self {
            Analytic::Gaussian(d) => Box::new(d),
            Analytic::Gmm(d) => Box::new(d),
            Analytic::Empirical(d) => Box::new(d),
            Analytic::Els(d) => Box::new(d),
        }
    }

    pub fn into_analytic(self) -> Box<dyn AnalyticDenoiser> {
        match self {
            Analytic::Gaussian(d) => Box::new(d),
            Analytic::Gmm(d) => Box::new(d),
            Analytic::Empirical(d) => Box::new(d),
            Analytic::Els(d) => Box::new(d),
        }
    }
}

/// `--patch`: an odd integer, or a JSON file with `{"knots": [{"sigma", "patch"}, …]}`.
pub fn patch_schedule(arg: &str) -> Result<PatchSchedule> {
    if let Ok(p) = arg.trim().parse::<i64>() {
        if p < 1 {
            bail!("--patch must be an odd patch side >= 1, got {p}");
        }
        return Ok(PatchSchedule::constant(p as usize)?);
    }
    PatchSchedule::from_path(arg).with_context(|| format!("reading the patch schedule {arg}"))
}

/// Build the denoiser of `spec` over `schedule`, with the shape of one sample.
pub fn build(
    spec: &str,
    schedule: &DiffusionSchedule,
    opts: AnalyticOptions,
) -> Result<(Analytic, Vec<usize>)> {
    let (kind, arg) = spec.split_once(':').context(SPEC_HELP)?;
    if opts.patch.is_some() && kind != "els" {
        bail!("--patch applies to --analytic els:<data>");
    }
    if opts.n.is_some() && kind == "gmm" {
        bail!("--analytic-n applies to the data-based denoisers (gaussian, empirical, els)");
    }
    let device = Device::Cpu;
    let load = || -> Result<candle_core::Tensor> {
        crate::cmd::data::load(arg, opts.n, 0, &device).with_context(|| format!("loading the data `{arg}`"))
    };
    Ok(match kind {
        "gaussian" => {
            let data = load()?;
            (Analytic::Gaussian(GaussianDenoiser::from_data(&data, schedule)?), data.dims()[1..].to_vec())
        }
        "gmm" => {
            let spec = GmmSpec::from_path(arg).with_context(|| format!("reading GMM spec {arg}"))?;
            let shape = vec![spec.dim()];
            (Analytic::Gmm(GmmDenoiser::new(&spec, schedule)?), shape)
        }
        "empirical" => {
            let data = load()?;
            (Analytic::Empirical(EmpiricalDenoiser::new(&data, schedule)?), data.dims()[1..].to_vec())
        }
        "els" => {
            let patches = patch_schedule(
                opts.patch.context("--analytic els:<data> needs --patch P (odd) or SCHEDULE.json")?,
            )?;
            let data = load()?;
            if data.rank() != 4 {
                bail!(
                    "--analytic els needs an image set, `{arg}` has examples of shape {:?}",
                    &data.dims()[1..]
                );
            }
            (Analytic::Els(ElsDenoiser::new(&data, schedule, patches)?), data.dims()[1..].to_vec())
        }
        other => bail!("unknown analytic denoiser `{other}` (expected gaussian, gmm, empirical or els)"),
    })
}
