//! What samplers report back, and the optional per-step callback.

use candle_core::Tensor;

/// Cost and progress of one sampling (or likelihood) run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleStats {
    /// Number of function (model) evaluations, each on the whole batch.
    pub nfe: usize,
    /// Number of accepted integration / annealing steps.
    pub steps: usize,
    /// Steps rejected by an adaptive solver (0 for fixed-step samplers).
    pub rejected_steps: usize,
}

/// State passed to a callback after each step. `level` is σ for σ-space samplers and t for SDE-time samplers.
pub struct StepInfo<'a> {
    pub step: usize,
    pub level: f64,
    pub x: &'a Tensor,
    pub denoised: Option<&'a Tensor>,
}

/// Optional observer of the trajectory.
pub type Callback<'a> = Option<&'a mut dyn FnMut(&StepInfo<'_>)>;

pub(crate) fn notify(cb: &mut Callback<'_>, step: usize, level: f64, x: &Tensor, denoised: Option<&Tensor>) {
    if let Some(f) = cb.as_mut() {
        f(&StepInfo { step, level, x, denoised });
    }
}
