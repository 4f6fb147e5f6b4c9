//! Thread-count configuration shared by every fast kernel and by the GEMM calls.
//!
//! The kernels split their work into at most [`num_threads`] tasks that run on rayon's
//! global pool; GEMM calls get `gemm::Parallelism::Rayon(num_threads())`. With one
//! thread everything runs inline on the calling thread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 means "not set": use every core rayon's global pool has.
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads the fast kernels use (`0` restores the default: all cores).
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n, Ordering::Relaxed);
}

/// Number of threads the fast kernels use (default: rayon's global pool size, i.e. all cores).
pub fn num_threads() -> usize {
    match NUM_THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads().max(1),
        n => n,
    }
}

/// The GEMM parallelism matching [`num_threads`].
pub(crate) fn gemm_parallelism() -> gemm::Parallelism {
    match num_threads() {
        1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// A raw pointer that may be shared between the tasks of one parallel loop.
/// Every user guarantees that the tasks write disjoint ranges.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr(pub *mut f32);
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// # Safety
    /// `start..start + len` must be in bounds and written by no other task.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

/// Splits `0..n` into at most `num_threads()` contiguous ranges and runs `f(task, range)`
/// on each in parallel (inline when one task suffices).
pub(crate) fn par_ranges<F>(n: usize, f: F)
where
    F: Fn(usize, std::ops::Range<usize>) + Sync,
{
    let tasks = num_threads().min(n).max(1);
    if tasks == 1 {
        f(0, 0..n);
        return;
    }
    let bounds = |t: usize| (t * n / tasks)..((t + 1) * n / tasks);
    rayon::scope(|s| {
        let f = &f;
        for t in 1..tasks {
            s.spawn(move |_| f(t, bounds(t)));
        }
        f(0, bounds(0));
    });
}

/// Number of tasks [`par_ranges`] will use for `n` items.
pub(crate) fn num_tasks(n: usize) -> usize {
    num_threads().min(n).max(1)
}

/// Runs `f(i)` for every `i` in `0..n`, the indices split in contiguous ranges over threads.
pub(crate) fn par_for<F>(n: usize, f: F)
where
    F: Fn(usize) + Sync,
{
    par_ranges(n, |_, r| r.for_each(&f));
}
