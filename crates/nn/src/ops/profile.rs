//! Opt-in timing of the fast kernels (for benchmark breakdowns): when enabled, every
//! custom-op CPU call adds its wall time to a per-op total.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<&'static str, (f64, usize)>> = Mutex::new(BTreeMap::new());

/// Turns kernel timing on or off.
pub fn set_profiling(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Returns and clears the accumulated `(op name, total milliseconds, calls)`.
pub fn take_profile() -> Vec<(&'static str, f64, usize)> {
    let mut t = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let out = t.iter().map(|(k, &(ms, n))| (*k, ms, n)).collect();
    t.clear();
    out
}

/// Times `f` under `name` when profiling is on.
pub(crate) fn timed<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let r = f();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let mut t = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let e = t.entry(name).or_insert((0.0, 0));
    e.0 += ms;
    e.1 += 1;
    r
}
