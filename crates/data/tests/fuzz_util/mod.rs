//! Shared machinery of the reader fuzz tests (`crates/data/tests/fuzz_readers.rs` and
//! `crates/train/tests/fuzz_readers.rs`, which includes this file by `#[path]`).
//!
//! * [`Mutation`] / [`mutations`]: proptest strategies of byte-level mutations (bit flips,
//!   interesting bytes, interesting 16/32/64-bit integers in either byte order, truncation,
//!   insertion and deletion of byte runs, duplication) and of text-level mutations of decimal
//!   numbers (replaced by huge, negative, zero or non-numeric tokens), applied to a valid seed.
//! * [`fuzz`]: runs a fixed number of proptest cases, counts the executions (shrinking included)
//!   and prints `fuzz <name>: <n> executions in <t> s`.
//! * A global allocator that aborts the test process on any single allocation above
//!   [`ALLOC_LIMIT`] bytes, so a reader that trusts a size claimed by a header is caught even
//!   where the operating system would lazily grant the memory.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Largest single allocation a reader may make while fuzzed (1 GiB). The inputs are a few KiB,
/// so anything near this comes from a size read out of the file and trusted.
pub const ALLOC_LIMIT: usize = 1 << 30;

thread_local! {
    /// Cases of the running fuzz test (on this thread) whose input the reader accepted.
    static ACCEPTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Count a case whose input the reader accepted (`Ok`), for the report of [`fuzz`].
pub fn accepted() {
    ACCEPTED.with(|c| c.set(c.get() + 1));
}

/// Largest allocation seen so far (for the report).
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct CappedAlloc;

fn check_size(size: usize) {
    if size > ALLOC_LIMIT {
        // No unwinding out of an allocator: say what happened and abort.
        let msg = b"fuzz_util: allocation above ALLOC_LIMIT (a reader trusted a claimed size): ";
        write_stderr(msg);
        // the size in decimal, without allocating
        let mut buf = [0u8; 24];
        let mut i = buf.len() - 1;
        buf[i] = b'\n';
        let mut v = size;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        write_stderr(&buf[i..]);
        std::process::abort();
    }
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

fn write_stderr(msg: &[u8]) {
    use std::io::Write;
    // `eprint!` may allocate; an unbuffered write of a static message does not.
    let _ = std::io::stderr().write_all(msg);
}

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check_size(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check_size(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check_size(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CappedAlloc = CappedAlloc;

/// Largest single allocation made so far by this test process.
pub fn largest_allocation() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// Cases of an `#[ignore]`d long run: `REDIFFUSE_FUZZ_CASES` (default 100 000).
pub fn long_cases() -> u32 {
    std::env::var("REDIFFUSE_FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(100_000)
}

/// Interesting byte values.
pub const BYTES: [u8; 10] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, b'9', b'(', b'[', b'"'];

/// Interesting integers, written over the data as 1/2/4/8 bytes in either byte order.
pub const INTS: [u64; 14] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
    1 << 40,
    100_000_000,
];

/// Replacement tokens for a decimal number in a text format.
pub const NUMBER_TOKENS: [&str; 20] = [
    "0",
    "1",
    "-1",
    "2",
    "65535",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "1000000000000",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "0.5",
    "1.7976931348623157e309",
    "\"x\"",
    "[]",
];

/// One edit of a byte buffer. Positions are taken modulo the buffer length at application.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        pos: usize,
        bit: u8,
    },
    SetByte {
        pos: usize,
        value: u8,
    },
    RandomByte {
        pos: usize,
        value: u8,
    },
    /// Write `INTS[which]` as `width` bytes (1, 2, 4 or 8), big-endian if `be`.
    SetInt {
        pos: usize,
        which: usize,
        width: u8,
        be: bool,
    },
    Truncate {
        pos: usize,
    },
    Delete {
        pos: usize,
        len: usize,
    },
    Insert {
        pos: usize,
        bytes: Vec<u8>,
    },
    /// Insert `len` copies of `BYTES[which]` (long runs: deep nesting, huge numbers).
    InsertRun {
        pos: usize,
        which: usize,
        len: usize,
    },
    /// Copy `len` bytes from `from` to `pos` (inserted).
    Duplicate {
        from: usize,
        pos: usize,
        len: usize,
    },
    /// Replace the `index`-th decimal number of the text by `NUMBER_TOKENS[which]`.
    Number {
        index: usize,
        which: usize,
    },
    /// Multiply the `index`-th decimal number by 2^shift (wrapping digits, so "huge" stays textual).
    ScaleNumber {
        index: usize,
        shift: u8,
    },
}

/// A strategy for one [`Mutation`].
pub fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<usize>();
    prop_oneof![
        3 => (pos, 0u8..8).prop_map(|(pos, bit)| Mutation::FlipBit { pos, bit }),
        2 => (pos, 0..BYTES.len()).prop_map(|(pos, w)| Mutation::SetByte { pos, value: BYTES[w] }),
        2 => (pos, any::<u8>()).prop_map(|(pos, value)| Mutation::RandomByte { pos, value }),
        3 => (pos, 0..INTS.len(), prop::sample::select(vec![1u8, 2, 4, 8]), any::<bool>())
            .prop_map(|(pos, which, width, be)| Mutation::SetInt { pos, which, width, be }),
        1 => pos.prop_map(|pos| Mutation::Truncate { pos }),
        2 => (pos, 1usize..64).prop_map(|(pos, len)| Mutation::Delete { pos, len }),
        2 => (pos, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(pos, bytes)| Mutation::Insert { pos, bytes }),
        1 => (pos, 0..BYTES.len(), prop_oneof![1usize..64, 1usize..20_000])
            .prop_map(|(pos, which, len)| Mutation::InsertRun { pos, which, len }),
        1 => (pos, pos, 1usize..256)
            .prop_map(|(from, pos, len)| Mutation::Duplicate { from, pos, len }),
        3 => (any::<usize>(), 0..NUMBER_TOKENS.len()).prop_map(|(index, which)| Mutation::Number { index, which }),
        2 => (any::<usize>(), 1u8..64).prop_map(|(index, shift)| Mutation::ScaleNumber { index, shift }),
    ]
}

/// One to `max` mutations.
pub fn mutations(max: usize) -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..=max)
}

/// Byte ranges of the decimal numbers (digit runs) in `data`.
fn number_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if data[i].is_ascii_digit() {
            let s = i;
            while i < data.len() && data[i].is_ascii_digit() {
                i += 1;
            }
            spans.push((s, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// Decimal digits of `digits` · 2^shift (schoolbook, so any length works).
fn scale_decimal(digits: &[u8], shift: u8) -> Vec<u8> {
    let mut v: Vec<u32> = digits.iter().rev().map(|d| (d - b'0') as u32).collect();
    for _ in 0..shift {
        let mut carry = 0;
        for d in v.iter_mut() {
            let x = *d * 2 + carry;
            *d = x % 10;
            carry = x / 10;
        }
        if carry > 0 {
            v.push(carry);
        }
    }
    v.iter().rev().map(|d| b'0' + *d as u8).collect()
}

/// Apply one mutation in place.
pub fn apply_one(data: &mut Vec<u8>, m: &Mutation) {
    let n = data.len();
    let at = |pos: usize| if n == 0 { 0 } else { pos % n };
    match m {
        Mutation::FlipBit { pos, bit } if n > 0 => data[at(*pos)] ^= 1 << bit,
        Mutation::SetByte { pos, value } | Mutation::RandomByte { pos, value } if n > 0 => {
            data[at(*pos)] = *value
        }
        Mutation::SetInt { pos, which, width, be } if n > 0 => {
            let v = INTS[*which];
            let w = *width as usize;
            let bytes = if *be { v.to_be_bytes()[8 - w..].to_vec() } else { v.to_le_bytes()[..w].to_vec() };
            let p = at(*pos);
            for (k, b) in bytes.into_iter().enumerate() {
                if p + k < n {
                    data[p + k] = b;
                }
            }
        }
        Mutation::Truncate { pos } => data.truncate(if n == 0 { 0 } else { pos % (n + 1) }),
        Mutation::Delete { pos, len } if n > 0 => {
            let p = at(*pos);
            let e = (p + len).min(n);
            data.drain(p..e);
        }
        Mutation::Insert { pos, bytes } => {
            let p = if n == 0 { 0 } else { pos % (n + 1) };
            data.splice(p..p, bytes.iter().copied());
        }
        Mutation::InsertRun { pos, which, len } => {
            let p = if n == 0 { 0 } else { pos % (n + 1) };
            data.splice(p..p, std::iter::repeat_n(BYTES[*which], *len));
        }
        Mutation::Duplicate { from, pos, len } if n > 0 => {
            let f = at(*from);
            let e = (f + len).min(n);
            let chunk = data[f..e].to_vec();
            let p = pos % (n + 1);
            data.splice(p..p, chunk);
        }
        Mutation::Number { index, which } => {
            let spans = number_spans(data);
            if !spans.is_empty() {
                let (s, e) = spans[index % spans.len()];
                data.splice(s..e, NUMBER_TOKENS[*which].bytes());
            }
        }
        Mutation::ScaleNumber { index, shift } => {
            let spans = number_spans(data);
            if !spans.is_empty() {
                let (s, e) = spans[index % spans.len()];
                let scaled = scale_decimal(&data[s..e], *shift);
                data.splice(s..e, scaled);
            }
        }
        _ => {}
    }
}

/// `seed` with `muts` applied in order.
pub fn apply(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for m in muts {
        apply_one(&mut d, m);
    }
    d
}

/// A fresh scratch directory for one fuzz test.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rediffuse-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Write `bytes` to `path` (plain, not atomic: the file is the reader's input). The old file is
/// unlinked first: truncating a file in place makes ext4 flush it on close (`auto_da_alloc`),
/// which costs milliseconds per case.
pub fn put(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap();
}

/// Run `cases` proptest cases of `body` over `strategy`, printing the number of executions.
/// Panics (test failure) with proptest's minimal failing input if `body` panics or fails.
/// The RNG is seeded (`REDIFFUSE_FUZZ_SEED`, default 0), so a run is reproducible.
pub fn fuzz<S, F>(name: &str, cases: u32, strategy: S, body: F) -> u64
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Result<(), TestCaseError>,
{
    let seed: u64 =
        std::env::var("REDIFFUSE_FUZZ_SEED").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..8 + name.len().min(24)].copy_from_slice(&name.as_bytes()[..name.len().min(24)]);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        max_global_rejects: cases.saturating_mul(4),
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let count = AtomicU64::new(0);
    ACCEPTED.with(|c| c.set(0));
    let start = Instant::now();
    let result = runner.run(&strategy, |v| {
        count.fetch_add(1, Ordering::Relaxed);
        body(v)
    });
    let n = count.load(Ordering::Relaxed);
    println!(
        "fuzz {name}: {n} executions ({cases} cases, {} accepted by the reader) in {:.2} s, \
         largest allocation so far {} bytes",
        ACCEPTED.with(|c| c.get()),
        start.elapsed().as_secs_f64(),
        largest_allocation()
    );
    if let Err(e) = result {
        panic!("fuzz {name} failed after {n} executions: {e}");
    }
    n
}
