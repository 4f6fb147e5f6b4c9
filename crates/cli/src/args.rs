//! Command-line definitions (clap derive). Only the CLI does console UX.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "rediffuse", version, about = "Train, sample and evaluate diffusion models")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model and write a run folder (config, checkpoint, metrics, plots).
    Train(TrainArgs),
    /// Generate samples from a trained run or an analytic denoiser.
    Sample(SampleArgs),
    /// Evaluate samples against data.
    Eval(EvalArgs),
    /// Train the small CNN classifier used as feature network for FID/KID/IS on grey images.
    TrainClassifier(TrainClassifierArgs),
    /// Train latent diffusion's KL autoencoder; writes a diffusers AutoencoderKL folder.
    TrainAutoencoder(TrainAutoencoderArgs),
    /// Data sets: export to .npy, fetch standard sets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Train on the embedded digits and sample a grid (the main job).
    Demo(DemoArgs),
    /// Inpaint images with RePaint (resampling jumps) using any trained run.
    Inpaint(InpaintArgs),
    /// Decode a spherical interpolation between two latents x_T with a deterministic sampler
    /// (DDIM §5.3) into a strip of frames.
    Interpolate(InterpolateArgs),
    /// Rectified-flow reflow (Liu et al. 2023): couple noise with a flow run's own samples by its
    /// ODE and train the next flow on those fixed pairs (k-RF → (k+1)-RF) into a new run folder.
    Reflow(ReflowArgs),
    /// Progressive distillation (Salimans & Ho 2022): train students that take half the teacher's
    /// DDIM steps, round after round (N, N/2, …), each round a run folder OUT/steps-N.
    Distill(DistillArgs),
    /// Follow a trained run's DDIM trajectories and measure how well the ELS machine (patch
    /// mosaics of the training data) predicts its x̂₀ per noise level and patch side (r²); write
    /// the best patch side per level as a schedule for `sample --analytic els:DATA --patch FILE`.
    ElsCalibrate(ElsCalibrateArgs),
}

#[derive(Debug, Args)]
pub struct ElsCalibrateArgs {
    /// The trained image run (its EMA weights unless --no-ema).
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long)]
    pub no_ema: bool,
    /// Training data of the ELS machine and the empirical denoiser (default: the run's).
    #[arg(long)]
    pub data: Option<String>,
    /// Use a seeded subset of N images of the data.
    #[arg(long, allow_negative_numbers = true)]
    pub analytic_n: Option<i64>,
    /// Patch sides to compare (odd).
    #[arg(long, value_delimiter = ',', default_value = "1,3,5,7,9,11", allow_negative_numbers = true)]
    pub patches: Vec<i64>,
    /// Trajectories followed (r² is the median over them).
    #[arg(long, default_value_t = 32, allow_negative_numbers = true)]
    pub samples: i64,
    /// DDIM steps per trajectory (each step is one calibration point).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    pub steps: i64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The report and calibrated schedule (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DistillArgs {
    /// The teacher run (any unconditional method).
    #[arg(long)]
    pub run: PathBuf,
    /// Folder of the rounds (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Steps of the first student (the teacher samples with twice as many).
    #[arg(long, allow_negative_numbers = true)]
    pub student_steps: i64,
    /// Number of rounds (each halves the steps; stops at 1 step).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// ρ of the nested Karras grid the rounds share.
    #[arg(long, default_value_t = 7.0, allow_negative_numbers = true)]
    pub rho: f64,
    /// Training steps per round etc. (default: the teacher's settings).
    #[command(flatten)]
    pub optim: OptimArgs,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DegradationKind {
    /// Gaussian blur growing to --blur-size pixels.
    Blur,
    /// Pixels removed in a seeded order.
    Mask,
    /// Down/up-sampling to ever coarser grids.
    Pixelate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PairSamplerKind {
    /// Euler uniform in flow time (--pair-steps, default 100).
    Euler,
    /// Heun on the same grid (--pair-steps, default 50: 99 evaluations).
    Heun,
    /// Adaptive RK45 (rtol = atol = 1e-5), as Liu et al. generate their pairs.
    Rk45,
}

#[derive(Debug, Args)]
pub struct ReflowArgs {
    /// The flow run (`train --method flow` or an earlier reflow) whose ODE couples the pairs.
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long)]
    pub no_ema: bool,
    /// Number of (noise, sample) pairs to generate; they are stored in OUT/pairs/.
    #[arg(long, allow_negative_numbers = true)]
    pub pairs: i64,
    /// The new run folder (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "euler")]
    pub pair_sampler: PairSamplerKind,
    #[arg(long, allow_negative_numbers = true)]
    pub pair_steps: Option<i64>,
    /// Seed of the pairs' noise and of the new run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pairs generated at once (does not change them).
    #[arg(long, default_value_t = 256)]
    pub sample_batch_size: usize,
    /// Start the new flow from a fresh initialisation instead of the run's weights.
    #[arg(long)]
    pub fresh_init: bool,
    #[command(flatten)]
    pub optim: OptimArgs,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    Mlp,
    Unet,
    /// Diffusion Transformer (adaLN-Zero) on image patches.
    Dit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodKind {
    /// Discrete DDPM with L_simple.
    Ddpm,
    /// Improved DDPM: learned variances, hybrid loss, cosine schedule (sets learn_sigma).
    Iddpm,
    /// Noise-conditional score network (multi-σ denoising score matching).
    Ncsn,
    /// Score SDE, variance preserving.
    VpSde,
    /// Score SDE, variance exploding.
    VeSde,
    /// Score SDE, sub-variance preserving.
    SubvpSde,
    /// EDM preconditioning and log-normal σ training.
    Edm,
    /// Flow matching / rectified flow: linear interpolant, velocity regression (--flow-sigma-min,
    /// --ot-coupling).
    Flow,
    /// Consistency models: consistency training, or distillation with --teacher RUN.
    Consistency,
    /// Cold diffusion: restore a deterministic degradation (--degradation, --cold-levels).
    Cold,
}

impl MethodKind {
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Ddpm => "ddpm",
            MethodKind::Iddpm => "iddpm",
            MethodKind::Ncsn => "ncsn",
            MethodKind::VpSde => "vp-sde",
            MethodKind::VeSde => "ve-sde",
            MethodKind::SubvpSde => "subvp-sde",
            MethodKind::Edm => "edm",
            MethodKind::Flow => "flow",
            MethodKind::Consistency => "consistency",
            MethodKind::Cold => "cold",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    Linear,
    Cosine,
    Quadratic,
    Sigmoid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PredictionKind {
    Epsilon,
    Sample,
    V,
}

/// Optimiser flags shared by `train` and `train-classifier` (validated by `io::OptimArgs::apply`).
#[derive(Debug, Args)]
pub struct OptimArgs {
    /// Number of optimisation steps (in total, also when resuming).
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<i64>,
    #[arg(long, allow_negative_numbers = true)]
    pub batch_size: Option<i64>,
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub warmup_steps: Option<i64>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A TOML or JSON run configuration; flags given on the command line override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data: a toy set (moons, swiss-roll, 8gaussians, checkerboard, circles), an image set
    /// (digits, mnist, fashion-mnist, cifar10, a folder) or a .npy file.
    #[arg(long)]
    pub data: Option<String>,
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,
    #[arg(long, value_enum)]
    pub method: Option<MethodKind>,
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// Zero-terminal-SNR rescaling of the schedule.
    #[arg(long)]
    pub zero_terminal_snr: bool,
    #[arg(long)]
    pub timesteps: Option<usize>,
    #[arg(long, value_enum)]
    pub prediction: Option<PredictionKind>,
    /// iDDPM: sample timesteps by importance, p_t ∝ √E[L_t²] (iDDPM §3.3).
    #[arg(long)]
    pub importance_sampling: bool,
    #[command(flatten)]
    pub optim: OptimArgs,
    /// Global-norm gradient clipping threshold (0 disables).
    #[arg(long, allow_negative_numbers = true)]
    pub grad_clip: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub ema_decay: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Preset sizes for image sets (digits, mnist, fashion-mnist, cifar10; with --model mlp: digits).
    #[arg(long)]
    pub preset: Option<String>,
    /// MLP: width of the hidden layers (default 128; 512 with --preset digits).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// MLP: number of residual blocks (default 3).
    #[arg(long)]
    pub layers: Option<usize>,
    /// DiT: token width (divisible by --heads and by 4; digits preset 96, mnist 128).
    #[arg(long)]
    pub width: Option<usize>,
    /// DiT: number of transformer blocks (digits preset 4, mnist 3).
    #[arg(long)]
    pub depth: Option<usize>,
    /// DiT: attention heads (default 4).
    #[arg(long)]
    pub heads: Option<usize>,
    /// DiT: side of the square patches, dividing the image size (digits preset 2, mnist 4).
    #[arg(long)]
    pub patch_size: Option<usize>,
    /// Class-conditional model on the data set's labels (digits, MNIST, Fashion-MNIST, CIFAR-10,
    /// labelled folders), for classifier-free guidance at sampling (`sample --class --guidance-scale`).
    #[arg(long)]
    pub class_cond: bool,
    /// Label dropout of class-conditional training: probability of the null label (default 0.1).
    #[arg(long, allow_negative_numbers = true)]
    pub p_uncond: Option<f64>,
    /// Flow matching: noise left at t = 1 (σ_min of Lipman et al.; default 0, rectified flow).
    #[arg(long, allow_negative_numbers = true)]
    pub flow_sigma_min: Option<f64>,
    /// Flow matching: pair each batch's noise with its examples by exact minibatch optimal transport.
    #[arg(long)]
    pub ot_coupling: bool,
    /// Consistency distillation: the teacher run (any method) whose Heun ODE steps the student
    /// matches (default: consistency training without a teacher).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Consistency models: N of the discretisation (distillation; default 18).
    #[arg(long)]
    pub cm_steps: Option<usize>,
    /// Consistency models: the improved-CT pseudo-Huber distance instead of L2.
    #[arg(long)]
    pub pseudo_huber: bool,
    /// Consistency models: draw the discretisation index log-normally (P_mean −1.1, P_std 2; improved CT).
    #[arg(long)]
    pub lognormal_index: bool,
    /// Cold diffusion: the degradation.
    #[arg(long, value_enum)]
    pub degradation: Option<DegradationKind>,
    /// Cold diffusion: blur standard deviation in pixels at the last level (default 2).
    #[arg(long, allow_negative_numbers = true)]
    pub blur_size: Option<f64>,
    /// Cold diffusion: number of degradation levels T (default 50).
    #[arg(long, allow_negative_numbers = true)]
    pub cold_levels: Option<i64>,
    /// Cold diffusion: standard deviation of noise added to the degraded images in training.
    #[arg(long, allow_negative_numbers = true)]
    pub cold_noise: Option<f64>,
    /// Super-resolution model (cascaded diffusion): condition a U-Net on each image's
    /// FACTOR×-downsampled version, upsampled back and given as extra input channels.
    #[arg(long)]
    pub super_res: Option<usize>,
    /// Latent diffusion: train in the latent space of this autoencoder (a folder written by
    /// `rediffuse train-autoencoder`, or any diffusers AutoencoderKL folder); the run keeps a
    /// copy in RUN/vae and `sample` decodes its samples to images.
    #[arg(long, value_name = "AE_DIR")]
    pub latent: Option<std::path::PathBuf>,
    /// Super-resolution: training augments the low-res conditioning with Gaussian noise of level
    /// s ~ U[0, AUG_MAX] (√(1 − s²)·x + s·ε; default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    pub aug_max: Option<f64>,
    /// Points generated for toy sets.
    #[arg(long)]
    pub n_train: Option<usize>,
    #[arg(long)]
    pub log_every: Option<usize>,
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Every N steps (and at the end) sample the EMA model and log a small-sample FID and KID
    /// against the training data to metrics.jsonl (drawn in fid.png / kid.png).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Samples per evaluation (and reference examples); default 500.
    #[arg(long, value_name = "N")]
    pub eval_n: Option<usize>,
    /// Feature network of the evaluations: raw (default), classifier:DIR or
    /// inception:WEIGHTS.safetensors.
    #[arg(long, value_name = "SPEC")]
    pub eval_features: Option<String>,
    /// Sampler steps of the evaluations (DDIM for ddpm/iddpm, default 50; EDM Heun otherwise,
    /// default 18).
    #[arg(long, value_name = "N")]
    pub eval_steps: Option<usize>,
    /// Run folder to create (must not exist or be empty, unless --resume).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerKind {
    /// DDPM ancestral sampling (all T steps).
    Ddpm,
    /// DDIM on a timestep subsequence (η, spacing).
    Ddim,
    /// DDPM ancestral sampling with iDDPM's learned variances (iddpm runs); --steps K respaces.
    DdpmLearned,
    /// Annealed Langevin dynamics (NCSN).
    Langevin,
    /// Reverse-SDE Euler–Maruyama.
    EulerMaruyama,
    /// Predictor–corrector (reverse diffusion + Langevin corrector).
    Pc,
    /// Probability-flow ODE, Euler.
    OdeEuler,
    /// Probability-flow ODE, Heun.
    OdeHeun,
    /// Probability-flow ODE, adaptive Dormand–Prince RK45.
    OdeRk45,
    /// DPM-Solver, single-step (order 1–3; diffusers' DPMSolverSinglestepScheduler, "dpmsolver").
    DpmSolver,
    /// DPM-Solver++ multistep 2M.
    #[value(name = "dpmpp-2m")]
    DpmPp2m,
    /// DPM-Solver++ multistep 3M.
    #[value(name = "dpmpp-3m")]
    DpmPp3m,
    /// UniPC multistep predictor–corrector (--order, --unipc-variant, --no-corrector).
    Unipc,
    /// Euler on the probability-flow ODE in σ (diffusers' EulerDiscreteScheduler).
    Euler,
    /// Heun on the probability-flow ODE in σ (diffusers' HeunDiscreteScheduler).
    Heun,
    /// EDM deterministic Heun (Algorithm 1).
    EdmHeun,
    /// EDM stochastic sampler (Algorithm 2).
    EdmStochastic,
    /// Multistep consistency sampling (Song et al. 2023) on consistency runs (--steps, default 1).
    Consistency,
    /// Cold diffusion runs: the improved sampler x_{t−1} = x_t − D(x̂₀, t) + D(x̂₀, t − 1).
    Cold,
    /// Cold diffusion runs: the naive sampler x_{t−1} = D(x̂₀, t − 1).
    ColdNaive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UniPcVariantKind {
    Bh1,
    Bh2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpacingKind {
    Leading,
    Trailing,
    Linspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DpmAlgorithmKind {
    /// Noise prediction (DPM-Solver).
    Dpmsolver,
    /// Data prediction (DPM-Solver++).
    #[value(name = "dpmsolver++")]
    DpmsolverPp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FinalSigmaKind {
    Zero,
    SigmaMin,
}

/// σ grid of dpm-solver, dpmpp-2m/3m, unipc, euler and heun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigmasKind {
    /// Training timesteps picked as diffusers does (--timestep-spacing; discrete-time models' default).
    Timesteps,
    /// Uniform in log σ (DPM-Solver's logSNR steps; continuous-time models' default for DPM/UniPC).
    Logsnr,
    /// Karras et al.'s ρ-schedule (--rho; continuous-time models' default for euler/heun).
    Karras,
    /// Uniform in flow time t (flow-matching runs' default: Euler is rectified flow's Euler).
    FlowTime,
    /// Karras' grid without its σ_min end (--rho), nested under halving: progressively distilled
    /// runs' default; a teacher sampled with twice the steps walks the grid its student learned.
    NestedKarras,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VarianceKind {
    /// σ_t² = β_t
    Beta,
    /// σ_t² = β̃_t
    BetaTilde,
}

#[derive(Debug, Args)]
pub struct SamplerArgs {
    #[arg(long, value_enum, default_value = "ddim")]
    pub sampler: SamplerKind,
    /// Sampling steps (DDIM, ddpm-learned respacing, SDE/ODE/DPM/EDM samplers); DDPM always uses
    /// all T steps, ddpm-learned too unless given.
    #[arg(long, allow_negative_numbers = true)]
    pub steps: Option<i64>,
    /// DDIM η (0 = deterministic, 1 = DDPM-like).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub eta: f64,
    /// Timestep spacing (as diffusers' timestep_spacing): DDIM's default is leading (DDIMScheduler),
    /// the σ-space samplers' linspace (their diffusers schedulers).
    #[arg(long, value_enum)]
    pub timestep_spacing: Option<SpacingKind>,
    /// σ grid of dpm-solver, dpmpp-2m/3m, unipc, euler and heun (default: timesteps for
    /// discrete-time models, as diffusers; logsnr / karras for continuous-time ones).
    #[arg(long, value_enum)]
    pub sigmas: Option<SigmasKind>,
    /// --sigmas timesteps: leave out the timesteps with λ = −ln σ below this (diffusers'
    /// lambda_min_clipped; -inf keeps all, as diffusers' default). The default −5.1 changes
    /// nothing on the linear and scaled-linear schedules and tames the cosine one.
    #[arg(long, allow_negative_numbers = true)]
    pub lambda_min_clipped: Option<f64>,
    /// DDPM reverse variance.
    #[arg(long, value_enum, default_value = "beta")]
    pub variance: VarianceKind,
    /// Clip predicted x₀ (DDPM, DDIM) and every other sampler's denoised estimate D(x; σ) to
    /// [-c, c] (images default to 1).
    #[arg(long)]
    pub clip: Option<f32>,
    /// Do not clip (images included).
    #[arg(long, conflicts_with = "clip")]
    pub no_clip: bool,
    /// DDIM with clipping: keep the model's ε̂ (diffusers' default use_clipped_model_output =
    /// False) instead of re-deriving it from the clipped x̂₀ as the σ-space samplers do.
    #[arg(long)]
    pub keep_model_eps: bool,
    /// DDIM: step to τ − T/K rather than to the next timestep, as diffusers' DDIMScheduler does
    /// (identical for leading/trailing spacing; reproduces diffusers' linspace DDIM).
    #[arg(long)]
    pub ddim_stride_prev: bool,
    /// Order of DPM-Solver and of UniPC's predictor (1–3).
    #[arg(long, default_value_t = 2)]
    pub order: usize,
    /// dpm-solver's form: noise (DPM-Solver, diffusers' algorithm_type "dpmsolver") or data
    /// prediction (single-step DPM-Solver++, diffusers' default "dpmsolver++").
    #[arg(long, value_enum, default_value = "dpmsolver")]
    pub algorithm: DpmAlgorithmKind,
    /// Last level of the σ grid: 0 (a final denoising step) or the schedule's smallest σ
    /// (diffusers' final_sigmas_type; sigma-min needs --sigmas timesteps).
    #[arg(long, value_enum, default_value = "zero")]
    pub final_sigma: FinalSigmaKind,
    /// UniPC's B(h): bh1 (= h) or bh2 (= e^h − 1, diffusers' default).
    #[arg(long, value_enum, default_value = "bh2")]
    pub unipc_variant: UniPcVariantKind,
    /// UniPC without its corrector (UniP only).
    #[arg(long)]
    pub no_corrector: bool,
    /// Langevin corrector signal-to-noise ratio r (pc).
    #[arg(long, default_value_t = 0.16, allow_negative_numbers = true)]
    pub snr: f64,
    /// Corrector steps per predictor step (pc).
    #[arg(long, default_value_t = 1)]
    pub corrector_steps: usize,
    /// Relative / absolute tolerance of ode-rk45.
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    pub rtol: f64,
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    pub atol: f64,
    /// Karras schedule ρ (edm-*, --sigmas karras).
    #[arg(long, default_value_t = 7.0, allow_negative_numbers = true)]
    pub rho: f64,
    /// EDM stochastic sampler: S_churn, S_tmin, S_tmax, S_noise.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub s_churn: f64,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub s_tmin: f64,
    #[arg(long, default_value_t = f64::INFINITY, allow_negative_numbers = true)]
    pub s_tmax: f64,
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub s_noise: f64,
    /// Langevin: steps per noise level, step size ε at the last level, number of levels.
    #[arg(long, default_value_t = 4)]
    pub steps_per_level: usize,
    #[arg(long, default_value_t = 2e-5, allow_negative_numbers = true)]
    pub step_eps: f64,
    #[arg(long)]
    pub levels: Option<usize>,
    /// Skip the final denoising step of SDE/ODE/Langevin samplers.
    #[arg(long)]
    pub no_denoise: bool,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Run folder written by `rediffuse train`.
    #[arg(long, conflicts_with = "analytic")]
    pub run: Option<PathBuf>,
    /// Analytic denoiser: gaussian:data.npy | gmm:spec.json | empirical:<data> | els:<data>
    /// (the equivariant local score machine of the data's patches; needs --patch).
    #[arg(long)]
    pub analytic: Option<String>,
    /// ELS machine: odd patch side P, or a patch-per-noise-level JSON (`els-calibrate --out`).
    #[arg(long, requires = "analytic")]
    pub patch: Option<String>,
    /// Data-based analytic denoisers: use a seeded subset of N examples of the data.
    #[arg(long, allow_negative_numbers = true, requires = "analytic")]
    pub analytic_n: Option<i64>,
    /// Schedule for analytic denoisers.
    #[arg(long, value_enum, default_value = "linear")]
    pub schedule: ScheduleKind,
    /// Timesteps for analytic denoisers.
    #[arg(long, default_value_t = 1000)]
    pub timesteps: usize,
    /// Use the raw weights instead of their EMA.
    #[arg(long)]
    pub no_ema: bool,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Number of samples.
    #[arg(long, allow_negative_numbers = true)]
    pub n: i64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples computed at once (does not change the samples).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Class-conditional runs: the class of every sample (`all`: sample k of class k mod K).
    #[arg(long)]
    pub class: Option<String>,
    /// Classifier-free guidance scale w (ε_uncond + w(ε_cond − ε_uncond)); 0 = unconditional,
    /// 1 = conditional (default), > 1 guided.
    #[arg(long, allow_negative_numbers = true)]
    pub guidance_scale: Option<f64>,
    /// Write the class labels of the samples (`[N]`, f32) to this .npy file.
    #[arg(long)]
    pub labels_out: Option<PathBuf>,
    /// Latent-diffusion runs: also write the undecoded latents (`[N, C_z, h, w]`) to this .npy
    /// (diffusers' `output_type="latent"`); `--out` holds the decoded images.
    #[arg(long)]
    pub latents_out: Option<PathBuf>,
    /// Classifier guidance (Dhariwal & Nichol): a noise-conditioned classifier folder
    /// (`train-classifier --noisy RUN`) and its scale γ (D + γσ²∇log p(y | x, σ); default 1).
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    #[arg(long, allow_negative_numbers = true, requires = "classifier")]
    pub classifier_scale: Option<f64>,
    /// Start from this x_T (.npy, N×…) instead of fresh noise.
    #[arg(long)]
    pub init_noise: Option<PathBuf>,
    /// Super-resolution run: the low-resolution images to upsample (.npy `[N, C, h, w]` in
    /// [−1, 1]; the first --n rows are used).
    #[arg(long, conflicts_with = "cascade")]
    pub lowres: Option<PathBuf>,
    /// Cascade: BASE_RUN,SR_RUN[,SR_RUN…]: sample the base run, then feed its samples through each
    /// super-resolution run in turn (all stages use the sampler flags).
    #[arg(long, conflicts_with_all = ["run", "analytic"])]
    pub cascade: Option<String>,
    /// Cold diffusion: standard deviation of the noise added to the fully degraded training image
    /// each sample starts from (default 0.05).
    #[arg(long, allow_negative_numbers = true)]
    pub start_noise: Option<f64>,
    /// Cold diffusion: the level of the --init-noise images (restore from level t; default T).
    #[arg(long)]
    pub cold_from: Option<usize>,
    /// Super-resolution: augmentation level s₀ of the low-res conditioning at sampling (default 0.1).
    #[arg(long, allow_negative_numbers = true)]
    pub aug_level: Option<f64>,
    /// Cascade: also write the base stage's samples to this .npy file.
    #[arg(long, requires = "cascade")]
    pub lowres_out: Option<PathBuf>,
    /// Output .npy (N×D or N×C×H×W).
    #[arg(long)]
    pub out: PathBuf,
    /// Write a picture: a scatter plot for 2-D samples, a grid for images.
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Write f64 instead of f32.
    #[arg(long)]
    pub f64: bool,
    /// Replace existing output files.
    #[arg(long)]
    pub force: bool,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricKind {
    /// Sliced Wasserstein-2 distance.
    Swd,
    /// Maximum mean discrepancy (RBF kernel, unbiased MMD²).
    Mmd,
    /// Energy distance.
    Energy,
    /// Fréchet distance of feature moments (needs --features; --data or --stats).
    Fid,
    /// Kernel Inception Distance, unbiased, mean ± std over subsets (needs --features, --data).
    Kid,
    /// Inception Score of the samples alone (needs --features with class logits).
    Is,
    /// Fraction of samples the feature network classifies as their --labels (class-conditional
    /// samples; needs --features with class logits), overall and per class.
    Accuracy,
    /// Improved precision and recall with k-NN manifolds (needs --features, --data).
    Prd,
    /// Fraction of samples much closer to one training image than to any other (--data = training set).
    Memorization,
    /// Negative log-likelihood bound in bits/dim of a ddpm/iddpm --run (full ELBO over the test split
    /// of --data; --n examples of a --seed permutation, --seed also seeds the noise).
    Nll,
    /// Probability-flow ODE negative log-likelihood of the first --n rows of --samples under --run or
    /// --analytic (nats; bits/dim for images).
    NllOde,
    /// Straightness of a flow --run's paths (Liu et al.): ∫ E‖(Z₁ − Z₀) − v(Z_t, t)‖² dt per
    /// dimension over --n paths from seeded noise, by --steps Euler steps (default 100).
    Straightness,
    /// Peak signal-to-noise ratio of --samples against the row-aligned ground truth --data (a .npy
    /// of the same shape, values in [−1, 1], so the peak-to-peak range is 2): mean over rows of
    /// 10·log10(4 / MSE_row), and the PSNR of the pooled MSE.
    Psnr,
}

/// The SDE an analytic model is evaluated in (`--metric nll-ode --analytic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SdeKind {
    #[value(name = "vp-sde")]
    Vp,
    #[value(name = "ve-sde")]
    Ve,
    #[value(name = "subvp-sde")]
    SubVp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DivergenceKind {
    /// Exact trace of the Jacobian (one backward pass per dimension; low dimension).
    Exact,
    /// Hutchinson's estimator with Rademacher probes.
    Hutchinson,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Samples to evaluate (.npy, N×D or N×C×H×W in [-1, 1]); for nll-ode the points whose
    /// likelihood is computed.
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Reference data (name or .npy); for memorization the training set.
    #[arg(long)]
    pub data: Option<String>,
    /// Reference feature statistics saved with --save-stats (FID only), instead of --data.
    #[arg(long, conflicts_with = "data")]
    pub stats: Option<PathBuf>,
    /// Save the reference feature statistics computed from --data to this file (FID).
    #[arg(long, requires = "data")]
    pub save_stats: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub metric: MetricKind,
    /// Feature network: inception:WEIGHTS.safetensors | classifier:DIR | raw
    /// (memorization defaults to raw).
    #[arg(long)]
    pub features: Option<String>,
    /// Reference points drawn from the data (default: as many as samples; all training images
    /// for memorization). For feature metrics also the number of samples used (the first N).
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed of the reference draw for generated sets (held-out by default), of KID subsets
    /// and of the Inception Score's shuffle.
    #[arg(long, default_value_t = 1_000_003)]
    pub seed: u64,
    /// Random projections for SWD.
    #[arg(long, default_value_t = 256)]
    pub projections: usize,
    /// KID: number of random subsets.
    #[arg(long, default_value_t = 100)]
    pub kid_subsets: usize,
    /// KID: subset size (capped at the sample counts).
    #[arg(long, default_value_t = 1000)]
    pub kid_subset_size: usize,
    /// Inception Score: number of splits.
    #[arg(long, default_value_t = 10)]
    pub splits: usize,
    /// Precision/recall: k of the k-NN manifolds.
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// Memorization: near-copy threshold on d(NN1)/d(NN2).
    #[arg(long, default_value_t = 1.0 / 3.0)]
    pub threshold: f64,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replace an existing --json file.
    #[arg(long)]
    pub force: bool,
    /// nll, nll-ode: the run folder of the model.
    #[arg(long, conflicts_with = "analytic")]
    pub run: Option<PathBuf>,
    /// nll, nll-ode: use the raw weights instead of their EMA.
    #[arg(long)]
    pub no_ema: bool,
    /// nll-ode: an analytic model (gaussian:data.npy | gmm:spec.json | empirical:<data>) instead of --run.
    #[arg(long)]
    pub analytic: Option<String>,
    /// nll-ode with --analytic: the SDE the analytic model is evaluated in.
    #[arg(long, value_enum)]
    pub method: Option<SdeKind>,
    /// nll-ode: divergence of the probability-flow drift (default exact up to 64 dimensions).
    #[arg(long, value_enum)]
    pub divergence: Option<DivergenceKind>,
    /// nll-ode: relative / absolute tolerance of the RK45 solver (default 1e-5 each).
    #[arg(long, allow_negative_numbers = true)]
    pub rtol: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub atol: Option<f64>,
    /// nll-ode: lower end ε of the ODE (p_ε is what is evaluated); default 1e-5 with --analytic
    /// (Song et al.'s likelihood setting), a run's own ε otherwise.
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// --metric accuracy: the intended class of every sample (.npy `[N]`, e.g. `sample --labels-out`).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Examples per batch: images per feature-network batch; nll: does not change the values; nll-ode: the
    /// adaptive ODE steps are shared by a batch, values change within the solver tolerance).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// nll: evaluate only every K-th term past the first K (stratified; an estimate, not a bound).
    #[arg(long)]
    pub every: Option<usize>,
    /// nll of a ddpm run: the fixed reverse variance (default beta); iddpm runs use their learned one.
    #[arg(long, value_enum)]
    pub variance: Option<VarianceKind>,
    /// nll: number of data values in [-1, 1] (default 17 for digits, else the run's iddpm
    /// data_levels, else 256).
    #[arg(long)]
    pub levels: Option<u32>,
    /// nll: write the per-timestep terms (mean and std, bits/dim) to this CSV.
    #[arg(long)]
    pub terms: Option<PathBuf>,
    /// straightness: Euler steps along each path (default 100).
    #[arg(long)]
    pub steps: Option<usize>,
}

#[derive(Debug, Args)]
pub struct TrainAutoencoderArgs {
    /// Image set: digits (8×8; digits:16), mnist[:DIR], fashion-mnist[:DIR], folder:DIR.
    #[arg(long)]
    pub data: String,
    /// Output folder (diffusers layout: config.json + diffusion_pytorch_model.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Weight of KL(q(z|x) ‖ N(0, I)) per latent value against the per-pixel squared error.
    #[arg(long, default_value_t = 1e-3)]
    pub kl_weight: f64,
    /// Channels per level (comma-separated); the latent side is the image side / 2^(levels−1).
    #[arg(long, value_delimiter = ',', default_value = "16,32")]
    pub channels: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub layers_per_block: usize,
    #[arg(long, default_value_t = 2)]
    pub latent_channels: usize,
    /// GroupNorm groups (must divide every level's channels).
    #[arg(long, default_value_t = 8)]
    pub groups: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct TrainClassifierArgs {
    /// Labelled image set: digits (8×8; digits:16), mnist[:DIR], fashion-mnist[:DIR].
    #[arg(long)]
    pub data: String,
    /// Output folder (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub optim: OptimArgs,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train a noise-conditioned classifier p(y | x_σ, σ) for classifier guidance of RUN, on
    /// noise levels log-uniform over RUN's σ range.
    #[arg(long, value_name = "RUN")]
    pub noisy: Option<PathBuf>,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write a data set to .npy (N×D for toy sets, N×C×H×W in [-1, 1] for images).
    Export(ExportArgs),
    /// Degrade a .npy of images with a cold-diffusion run's degradation at a level (its input for
    /// restoration with `sample --run RUN --init-noise OUT --cold-from LEVEL`).
    Degrade(DegradeArgs),
    /// Resize a .npy of images (N×C×H×W) to another size: area (integer downsampling by block
    /// means, as super-resolution runs make their low-res input), bilinear or bicubic.
    Resize(ResizeArgs),
    /// Download MNIST, Fashion-MNIST or CIFAR-10 (SHA-256 checked) into the cache.
    Fetch(FetchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RemoteKind {
    Mnist,
    FashionMnist,
    Cifar10,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[arg(value_enum)]
    pub name: RemoteKind,
    /// Cache folder (default: $REDIFFUSE_DATA or ~/.cache/rediffuse).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Import already downloaded files from this file or folder instead of downloading.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Download from this base URL instead of the data set's standard location.
    #[arg(long)]
    pub base_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub name: String,
    #[arg(long, allow_negative_numbers = true)]
    pub n: Option<i64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub png: Option<PathBuf>,
    /// Also write the class labels of a labelled image set (`[N]`, f32 .npy).
    #[arg(long)]
    pub labels_out: Option<PathBuf>,
    /// Which split of an image set (MNIST, Fashion-MNIST and CIFAR-10 have a held-out test split).
    #[arg(long, value_enum, default_value = "train")]
    pub split: SplitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitKind {
    Train,
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResizeFilter {
    /// Mean of each FACTOR×FACTOR block (the size must divide the input's).
    Area,
    /// Bilinear, half-pixel centres (PyTorch align_corners=False).
    Bilinear,
    /// Bicubic, Keys a = −0.75, half-pixel centres (PyTorch align_corners=False), clamped to [−1, 1].
    Bicubic,
}

#[derive(Debug, Args)]
pub struct DegradeArgs {
    /// Input .npy, N×C×H×W.
    pub input: PathBuf,
    /// The cold-diffusion run whose degradation is applied.
    #[arg(long)]
    pub run: PathBuf,
    /// Level t in 0..=T.
    #[arg(long)]
    pub level: usize,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// Input .npy, N×C×H×W.
    pub input: PathBuf,
    /// Output side length (square images).
    #[arg(long)]
    pub size: usize,
    #[arg(long, value_enum)]
    pub filter: ResizeFilter,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InpaintArgs {
    /// Run folder written by `rediffuse train` (any method: RePaint runs on its discrete view).
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long)]
    pub no_ema: bool,
    /// The images to complete: .npy `[N, C, H, W]` (or one `[C, H, W]`) in [−1, 1], or a PNG/JPEG.
    #[arg(long)]
    pub image: PathBuf,
    /// What is known: half (top half known, bottom filled), left (left half known), box:X0,Y0,X1,Y1
    /// (that pixel box, end exclusive, is filled), random:SEED (each pixel known with probability
    /// ½), or a mask image (white = known).
    #[arg(long)]
    pub mask: String,
    /// Inference steps (divides T), jump length j and resamplings r (RePaint's 250, 10, 10).
    #[arg(long, default_value_t = 250)]
    pub steps: usize,
    #[arg(long, default_value_t = 10)]
    pub jump_length: usize,
    #[arg(long, default_value_t = 10)]
    pub resample: usize,
    /// η of the reverse step (1: DDPM, 0: DDIM).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub eta: f64,
    /// Completions per image.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples computed at once (does not change the samples).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Clip x̂₀ to [−c, c] (images default to 1); --no-clip turns it off.
    #[arg(long)]
    pub clip: Option<f32>,
    #[arg(long, conflicts_with = "clip")]
    pub no_clip: bool,
    #[arg(long)]
    pub out: PathBuf,
    /// A grid: every image with its mask applied (grey = unknown), then its completions.
    #[arg(long)]
    pub png: Option<PathBuf>,
    #[arg(long)]
    pub force: bool,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InterpolateArgs {
    /// Run folder written by `rediffuse train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Use the raw weights instead of their EMA.
    #[arg(long)]
    pub no_ema: bool,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// The two ends: the x_T of sample 0 of `rediffuse sample --seed A` and of `--seed B`.
    #[arg(long, default_value_t = 0)]
    pub seed_a: u64,
    #[arg(long, default_value_t = 1)]
    pub seed_b: u64,
    /// Frames from one end to the other (both included).
    #[arg(long, default_value_t = 8)]
    pub frames: usize,
    /// Class-conditional runs: the class of every frame (required for them) and the guidance scale.
    #[arg(long)]
    pub class: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub guidance_scale: Option<f64>,
    /// The strip (PNG: one row of images, or a scatter of 2-D points).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the frames as .npy `[frames, …]`.
    #[arg(long)]
    pub npy: Option<PathBuf>,
    #[arg(long)]
    pub force: bool,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Network: the residual MLP on the 64 pixels (about a minute on 2 cores), the U-Net
    /// (about 10 minutes) or the DiT.
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: ModelKind,
    /// Override the number of training steps.
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, short)]
    pub quiet: bool,
}
