//! Streamed softmax-weighted mean Σ_j softmax_j(l)·v_j over chunks of keys (an online
//! log-sum-exp, in f64), the inner loop of the ELS machine: for each block of query rows, the
//! logits of one chunk of keys come from one GEMM into a reused buffer and are folded into the
//! running (max, normaliser, weighted sum) of each row. Blocks run in parallel (rayon); each row
//! is folded by one thread in key order, so results do not depend on the thread count.

use rayon::prelude::*;

/// Terms with l_j < max − CUTOFF are skipped: e^−40 ≈ 4·10⁻¹⁸ of the largest term, below f64
/// resolution of the normaliser (which is ≥ 1), so the result is unchanged to rounding.
const CUTOFF: f64 = 40.0;

/// A chunk of `m` keys of length `k` with their values.
#[derive(Debug)]
pub(super) struct KeyChunk {
    /// `[m, k]` row-major.
    pub keys: Vec<f64>,
    /// ‖k_j‖²/2.
    pub half_sq: Vec<f64>,
    /// `[channels, m]` values (channel-major, so each channel is one dot product).
    pub values: Vec<f64>,
}

impl KeyChunk {
    fn len(&self) -> usize {
        self.half_sq.len()
    }
}

/// For each query row q of `queries` (`[rows, k]`), Σ_j softmax_j(c1·q·k_j − c2·‖k_j‖²/2)·v_j over
/// the keys of all `chunks`: `[rows, channels]`. Rows are processed `block` at a time.
pub(super) fn softmax_mean(
    queries: &[f64],
    k: usize,
    chunks: &[KeyChunk],
    (c1, c2): (f64, f64),
    channels: usize,
    block: usize,
) -> Vec<f64> {
    debug_assert!(k > 0 && queries.len() % k == 0);
    let max_m = chunks.iter().map(KeyChunk::len).max().unwrap_or(0);
    let parts: Vec<Vec<f64>> = queries
        .par_chunks(block * k)
        .map(|q| {
            let rows = q.len() / k;
            let mut state = Fold::new(rows, channels);
            let mut logits = vec![0.0; rows * max_m];
            for chunk in chunks {
                let m = chunk.len();
                dot_products(q, rows, k, &chunk.keys, m, &mut logits[..rows * m]);
                state.update(&mut logits[..rows * m], m, chunk, (c1, c2));
            }
            state.finish()
        })
        .collect();
    parts.concat()
}

/// `out[r, j] = q[r, :]·keys[j, :]` (`q` `[rows, k]`, `keys` `[m, k]`, `out` `[rows, m]`).
fn dot_products(q: &[f64], rows: usize, k: usize, keys: &[f64], m: usize, out: &mut [f64]) {
    assert!(q.len() >= rows * k && keys.len() >= m * k && out.len() >= rows * m);
    if rows == 0 || m == 0 {
        return;
    }
    // SAFETY: the three operands' extents were checked above; `out` is exclusively borrowed.
    // lhs is q (row stride k), rhs is keysᵀ (element (i, j) at keys[j·k + i]), dst row stride m.
    unsafe {
        gemm::gemm(
            rows,
            m,
            k,
            out.as_mut_ptr(),
            1,
            m as isize,
            false,
            q.as_ptr(),
            1,
            k as isize,
            keys.as_ptr(),
            k as isize,
            1,
            0.0f64,
            1.0f64,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Running (max, Σ e^{l−max}, Σ e^{l−max}·v) per query row.
struct Fold {
    max: Vec<f64>,
    total: Vec<f64>,
    acc: Vec<f64>,
    channels: usize,
}

impl Fold {
    fn new(rows: usize, channels: usize) -> Self {
        Self {
            max: vec![f64::NEG_INFINITY; rows],
            total: vec![0.0; rows],
            acc: vec![0.0; rows * channels],
            channels,
        }
    }

    /// Fold one chunk: `dot` is `[rows, m]` (q·k, overwritten).
    fn update(&mut self, dot: &mut [f64], m: usize, chunk: &KeyChunk, coef: (f64, f64)) {
        let c = self.channels;
        let rows = dot.chunks_mut(m).zip(&mut self.max).zip(&mut self.total).zip(self.acc.chunks_mut(c));
        for (((row, mx), tot), acc) in rows {
            fold_row(row, &chunk.half_sq, &chunk.values, coef, mx, tot, acc);
        }
    }

    /// The means `[rows, channels]`.
    fn finish(self) -> Vec<f64> {
        let c = self.channels;
        let mut out = self.acc;
        for (row, tot) in out.chunks_mut(c).zip(&self.total) {
            row.iter_mut().for_each(|a| *a /= tot);
        }
        out
    }
}

/// One row of [`Fold::update`], compiled for AVX-512 or AVX2+FMA where the CPU has them (checked at run time)
/// and for the baseline target otherwise; the loops are branch-free so they vectorise.
fn fold_row(
    row: &mut [f64],
    half_sq: &[f64],
    values: &[f64],
    coef: (f64, f64),
    mx: &mut f64,
    tot: &mut f64,
    acc: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        /// `fold_row_body` compiled with the given target features.
        macro_rules! compiled_for {
            ($name:ident, $features:literal) => {
                #[target_feature(enable = $features)]
                unsafe fn $name(
                    row: &mut [f64],
                    hs: &[f64],
                    v: &[f64],
                    coef: (f64, f64),
                    mx: &mut f64,
                    tot: &mut f64,
                    acc: &mut [f64],
                ) {
                    fold_row_body(row, hs, v, coef, mx, tot, acc)
                }
            };
        }
        compiled_for!(avx512, "avx512f,avx512dq,avx512vl,avx2,fma");
        compiled_for!(avx2, "avx2,fma");
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU supports the enabled features (checked here).
            return unsafe { avx512(row, half_sq, values, coef, mx, tot, acc) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { avx2(row, half_sq, values, coef, mx, tot, acc) };
        }
    }
    fold_row_body(row, half_sq, values, coef, mx, tot, acc)
}

const LANES: usize = 8;

#[inline(always)]
fn fold_row_body(
    row: &mut [f64],
    half_sq: &[f64],
    values: &[f64],
    (c1, c2): (f64, f64),
    mx: &mut f64,
    tot: &mut f64,
    acc: &mut [f64],
) {
    let m = row.len();
    // logits and their maximum (8 independent lanes, so the reduction vectorises)
    let mut lane_max = [f64::NEG_INFINITY; LANES];
    for (l, hs) in row.chunks_exact_mut(LANES).zip(half_sq.chunks_exact(LANES)) {
        for i in 0..LANES {
            l[i] = c1 * l[i] - c2 * hs[i];
            lane_max[i] = if l[i] > lane_max[i] { l[i] } else { lane_max[i] };
        }
    }
    let tail = m - m % LANES;
    let mut chunk_max = lane_max.iter().fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for j in tail..m {
        row[j] = c1 * row[j] - c2 * half_sq[j];
        chunk_max = if row[j] > chunk_max { row[j] } else { chunk_max };
    }
    if chunk_max > *mx {
        let scale = if mx.is_finite() { (*mx - chunk_max).exp() } else { 0.0 };
        *tot *= scale;
        acc.iter_mut().for_each(|a| *a *= scale);
        *mx = chunk_max;
    }
    let top = *mx;
    if !top.is_finite() {
        return; // NaN input: the result is NaN through `tot`
    }
    // weights e^{l − max} (0 below the cut-off) and their sum
    let mut lane_sum = [0.0f64; LANES];
    for l in row.chunks_exact_mut(LANES) {
        for i in 0..LANES {
            l[i] = exp_neg(l[i] - top);
            lane_sum[i] += l[i];
        }
    }
    let mut sum: f64 = lane_sum.iter().sum();
    for l in &mut row[tail..] {
        *l = exp_neg(*l - top);
        sum += *l;
    }
    *tot += sum;
    // Σ_j e_j·v_j per channel
    for (a, v) in acc.iter_mut().zip(values.chunks_exact(m)) {
        let mut lanes = [0.0f64; LANES];
        for (e, vv) in row.chunks_exact(LANES).zip(v.chunks_exact(LANES)) {
            for i in 0..LANES {
                lanes[i] += e[i] * vv[i];
            }
        }
        let mut s: f64 = lanes.iter().sum();
        for j in tail..m {
            s += row[j] * v[j];
        }
        *a += s;
    }
}

/// e^d for d ≤ 0, 0 below −CUTOFF; branch-free so loops calling it vectorise. d = n·ln2 + r with
/// n = round(d·log₂e) (by adding 1.5·2⁵², whose low mantissa bits then hold n), e^r by its
/// degree-13 Taylor polynomial on |r| ≤ ln2/2 (relative error < 2·10⁻¹⁶), 2ⁿ from exponent bits.
#[inline(always)]
fn exp_neg(d: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238_2e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const SHIFTER: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52
    let x = if d < -CUTOFF { -CUTOFF } else { d };
    let t = x * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 6_227_020_800.0; // 1/13!
    for k in (1..13).rev() {
        p = p * r + INV_FACT[k];
    }
    p = p * r + 1.0;
    let bits = ((t.to_bits() as i64 - SHIFTER.to_bits() as i64 + 1023) as u64) << 52;
    let e = p * f64::from_bits(bits);
    if d < -CUTOFF {
        0.0
    } else {
        e
    }
}

/// 1/k! for k = 0..13.
const INV_FACT: [f64; 13] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
];

#[cfg(test)]
mod tests {
    #[test]
    fn exp_neg_is_accurate() {
        let mut worst = 0.0f64;
        for i in 0..=400_000 {
            let d = -40.0 * i as f64 / 400_000.0;
            let (got, want) = (super::exp_neg(d), d.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 1e-15, "worst relative error {worst}");
        assert_eq!(super::exp_neg(-40.5), 0.0);
        assert_eq!(super::exp_neg(f64::NEG_INFINITY), 0.0);
        assert_eq!(super::exp_neg(0.0), 1.0);
    }

    use super::*;

    #[test]
    fn chunked_blocked_fold_equals_direct_softmax() {
        // 3 queries of length 2, 5 keys, 2 channels.
        let q: [f64; 6] = [0.3, -1.0, 2.0, 5.0, 0.1, 1.0];
        let keys: [f64; 10] = [1.0, 0.5, -2.0, 1.0, 0.0, 3.0, 4.0, 4.0, -1.0, -1.0];
        let vals: Vec<f64> = (0..10).map(f64::from).collect();
        let (c1, c2) = (1.5, 0.7);
        let direct = |r: usize| -> Vec<f64> {
            let l: Vec<f64> = (0..5)
                .map(|j| {
                    let d = q[r * 2] * keys[j * 2] + q[r * 2 + 1] * keys[j * 2 + 1];
                    let h = 0.5 * (keys[j * 2].powi(2) + keys[j * 2 + 1].powi(2));
                    c1 * d - c2 * h
                })
                .collect();
            let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = w.iter().sum();
            (0..2).map(|ch| (0..5).map(|j| w[j] * vals[ch * 5 + j]).sum::<f64>() / z).collect()
        };
        let chunk = |lo: usize, hi: usize| KeyChunk {
            keys: keys[lo * 2..hi * 2].to_vec(),
            half_sq: (lo..hi).map(|j| 0.5 * (keys[j * 2].powi(2) + keys[j * 2 + 1].powi(2))).collect(),
            values: (0..2).flat_map(|ch| vals[ch * 5 + lo..ch * 5 + hi].to_vec()).collect(),
        };
        for split in 1..5 {
            for block in 1..4 {
                let got = softmax_mean(&q, 2, &[chunk(0, split), chunk(split, 5)], (c1, c2), 2, block);
                for r in 0..3 {
                    let want = direct(r);
                    for ch in 0..2 {
                        assert!(
                            (got[r * 2 + ch] - want[ch]).abs() < 1e-12,
                            "split {split} block {block} row {r}"
                        );
                    }
                }
            }
        }
    }
}
