//! `rediffuse distill`: progressive distillation rounds (`rediffuse_train::distill`), each round a
//! run folder `OUT/steps-N` whose student starts from its teacher's weights.

use crate::args::DistillArgs;
use crate::io::positive;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use rediffuse_train::checkpoint::{find_checkpoint, read_tensors, EMA_FILE};
use rediffuse_train::distill::DistillConfig;
use rediffuse_train::{TrainConfig, Trainer};
use std::path::PathBuf;

pub fn run(a: DistillArgs) -> Result<()> {
    let first = positive("student-steps", a.student_steps)?;
    if a.rounds == 0 {
        bail!("--rounds must be >= 1");
    }
    if a.rounds > 1 && first >> (a.rounds - 1) == 0 {
        bail!("{} rounds from {first} steps would go below one step", a.rounds);
    }
    if a.out.exists() && std::fs::read_dir(&a.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty (choose a new folder)", a.out.display());
    }
    let device = Device::Cpu;
    let mut teacher: PathBuf = a.run.clone();
    let teacher_cfg = TrainConfig::load(&teacher.join("config.toml"))
        .with_context(|| format!("{} is not a run folder", teacher.display()))?;
    if teacher_cfg.latent.is_some() {
        bail!("progressive distillation of latent-diffusion runs is not supported");
    }
    let (data, labels) = crate::cmd::train::load_training_set(&teacher_cfg, &device)?;
    if labels.is_some() {
        bail!("progressive distillation supports unconditional runs only");
    }
    for round in 0..a.rounds {
        let steps = first >> round;
        let out = a.out.join(format!("steps-{steps}"));
        let mut cfg = TrainConfig::load(&teacher.join("config.toml"))?;
        cfg.distill =
            Some(DistillConfig { teacher: teacher.display().to_string(), student_steps: steps, rho: a.rho });
        cfg.eval = None;
        cfg.warmup_steps = 0;
        a.optim.apply_to_run(&mut cfg)?;
        cfg.validate()?;
        let mut trainer = Trainer::create(&out, cfg, data.clone())?;
        let file = find_checkpoint(&teacher)?.join(EMA_FILE);
        trainer.init_from(read_tensors(&file, &device)?, &file)?;
        if !a.quiet {
            eprintln!("round {}: {} → {steps} steps into {}", round + 1, 2 * steps, out.display());
        }
        crate::cmd::train::drive(&out, trainer, None, a.quiet)?;
        teacher = out;
    }
    Ok(())
}
