//! Thread-count configuration shared by every fast kernel and by the GEMM calls.
//!
//! The kernels and their GEMMs run on rayon's global pool (size: `RAYON_NUM_THREADS`,
//! default all cores): work is split into chunks taken from a shared cursor by jobs that
//! rayon's work stealing runs, so a thread the OS deschedules never stalls the others and
//! waiting threads sleep instead of spinning. [`set_num_threads`] lowers the count the
//! kernels use. candle's own element-wise ops use a separate spin-waiting pool sized by
//! `CANDLE_NUM_THREADS`; on machines with few cores, `CANDLE_NUM_THREADS=1` keeps it from
//! competing with the kernels (see [`init_threads`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 means "not set": use every thread of candle's pool.
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set while this thread runs a task of [`par_ranges`] (nested calls run inline).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Threads of rayon's global pool.
fn pool_threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Process start-up configuration for CPU training/sampling: the kernels use `threads`
/// threads (`None`: all cores) and candle's spin-waiting element-wise pool is reduced to
/// the calling thread (`CANDLE_NUM_THREADS=1`) unless the user set it. Call it first
/// thing in `main`, before any tensor op and before other threads exist (it sets an
/// environment variable).
pub fn init_threads(threads: Option<usize>) {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if let Some(n) = threads {
        // An already-initialised global pool keeps its size; set_num_threads caps use.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global();
        set_num_threads(n);
    }
}

/// Sets the number of threads the fast kernels use (`0` restores the default: every
/// thread of rayon's global pool). Values above the pool size are capped to it.
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n, Ordering::Relaxed);
}

/// Number of threads the fast kernels use.
pub fn num_threads() -> usize {
    let pool = pool_threads();
    match NUM_THREADS.load(Ordering::Relaxed) {
        0 => pool,
        n => n.min(pool),
    }
}

/// The GEMM parallelism matching [`num_threads`] (use with [`run_gemm`]).
pub(crate) fn gemm_parallelism() -> gemm::Parallelism {
    match num_threads() {
        1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// Runs `f` (a GEMM call; multi-threaded GEMMs use rayon's global pool).
pub(crate) fn run_gemm<R: Send>(_par: gemm::Parallelism, f: impl FnOnce() -> R + Send) -> R {
    f()
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

/// Chunks per thread in [`par_ranges`].
const CHUNKS_PER_THREAD: usize = 4;

/// Runs `f(thread, range)` over contiguous ranges covering `0..n` exactly once, on up to
/// `num_threads()` threads (inline when one suffices). A thread may receive several
/// ranges; `thread < num_tasks(n)` identifies it (for per-thread scratch and partial sums).
///
/// The assignment of ranges to threads is static (chunk `c` goes to thread `c % tasks`, in
/// ascending order), so per-thread partial sums — and therefore every result — are the
/// same from run to run for a given thread count, whatever the OS scheduling.
pub(crate) fn par_ranges<F>(n: usize, f: F)
where
    F: Fn(usize, std::ops::Range<usize>) + Sync,
{
    let tasks = num_tasks(n);
    if tasks == 1 {
        f(0, 0..n);
        return;
    }
    let chunks = (tasks * CHUNKS_PER_THREAD).min(n);
    let bounds = |c: usize| (c * n / chunks)..((c + 1) * n / chunks);
    let job = |tid: usize| {
        let was = IN_TASK.with(|c| c.replace(true));
        for c in (tid..chunks).step_by(tasks) {
            f(tid, bounds(c));
        }
        IN_TASK.with(|c| c.set(was));
    };
    rayon::scope(|s| {
        let job = &job;
        for tid in 0..tasks {
            s.spawn(move |_| job(tid));
        }
    });
}

/// Number of tasks [`par_ranges`] will use for `n` items.
pub(crate) fn num_tasks(n: usize) -> usize {
    if IN_TASK.with(|c| c.get()) {
        return 1;
    }
    num_threads().min(n).max(1)
}

/// Runs `f(i)` for every `i` in `0..n`, the indices split in contiguous ranges over threads.
pub(crate) fn par_for<F>(n: usize, f: F)
where
    F: Fn(usize) + Sync,
{
    par_ranges(n, |_, r| r.for_each(&f));
}

/// Zeroed per-thread scratch space for one parallel call: the slot of thread `tid` is
/// allocated on its first use and reused by that thread's later ranges.
pub(crate) struct Scratch {
    slots: Vec<std::sync::Mutex<Vec<f32>>>,
    len: usize,
}

impl Scratch {
    pub fn new(threads: usize, len: usize) -> Self {
        Scratch { slots: (0..threads.max(1)).map(|_| std::sync::Mutex::new(Vec::new())).collect(), len }
    }

    /// Runs `f` on thread `tid`'s buffer of `len` floats (zero on first use; afterwards
    /// holding whatever the thread's previous range left).
    pub fn with<R>(&self, tid: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        let mut slot = self.slots[tid].lock().unwrap_or_else(|e| e.into_inner());
        if slot.len() != self.len {
            *slot = vec![0f32; self.len];
        }
        f(&mut slot)
    }
}
