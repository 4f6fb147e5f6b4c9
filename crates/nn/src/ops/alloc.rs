//! Allocator tuning for tensor-sized buffers.
//!
//! Every op returns a freshly allocated output of up to tens of megabytes. glibc serves
//! such sizes with `mmap` and gives them back with `munmap` (or trims the heap top), so
//! every training step pays page faults and page zeroing for all activations again
//! (measured ≈ 15–20 % of a U-Net forward pass). Raising the mmap and trim thresholds
//! makes freed buffers reusable from the heap. Applied once, on the first fast-kernel
//! call; a no-op on other platforms.

use std::sync::Once;

static TUNE: Once = Once::new();

/// Bytes below which allocations come from the heap instead of `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 512 << 20;

/// Applies the tuning (idempotent).
pub(crate) fn tune() {
    TUNE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; valid option constants.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
        }
    });
}
