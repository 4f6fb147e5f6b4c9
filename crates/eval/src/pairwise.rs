//! Sums of a function of squared pairwise distances, O(n·m), split over threads.
//!
//! Rows are processed in fixed chunks whose partial sums are added in chunk
//! order, so results do not depend on the number of threads.

const CHUNK_ROWS: usize = 64;

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// Run `chunk_sum(c)` for chunks `0..n_chunks` on all available cores; sum in chunk order.
fn parallel_chunks<F: Fn(usize) -> f64 + Sync>(n_chunks: usize, chunk_sum: F) -> f64 {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n_chunks).max(1);
    let mut partial = vec![0.0; n_chunks];
    if threads == 1 {
        partial.iter_mut().enumerate().for_each(|(c, p)| *p = chunk_sum(c));
    } else {
        let results: Vec<Vec<(usize, f64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let f = &chunk_sum;
                    s.spawn(move || (t..n_chunks).step_by(threads).map(|c| (c, f(c))).collect::<Vec<_>>())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        for (c, v) in results.into_iter().flatten() {
            partial[c] = v;
        }
    }
    partial.iter().sum()
}

/// `Σ_i Σ_j f(|x_i − y_j|²)` over all rows of `x` (n×d) and `y` (m×d).
pub(crate) fn cross_sum<F: Fn(f64) -> f64 + Sync>(x: &[f64], y: &[f64], d: usize, f: F) -> f64 {
    let n = x.len() / d;
    parallel_chunks(n.div_ceil(CHUNK_ROWS), |c| {
        let mut s = 0.0;
        for i in c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(n) {
            let xi = &x[i * d..(i + 1) * d];
            s += y.chunks_exact(d).map(|yj| f(sq_dist(xi, yj))).sum::<f64>();
        }
        s
    })
}

/// `Σ_{i<j} f(|x_i − x_j|²)` over the rows of `x` (n×d).
pub(crate) fn half_self_sum<F: Fn(f64) -> f64 + Sync>(x: &[f64], d: usize, f: F) -> f64 {
    let n = x.len() / d;
    parallel_chunks(n.div_ceil(CHUNK_ROWS), |c| {
        let mut s = 0.0;
        for i in c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(n) {
            let xi = &x[i * d..(i + 1) * d];
            s += x[(i + 1) * d..].chunks_exact(d).map(|xj| f(sq_dist(xi, xj))).sum::<f64>();
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_double_loop() {
        let x: Vec<f64> = (0..300).map(|i| ((i * 37) % 101) as f64 * 0.1).collect(); // 150 rows, d=2
        let y: Vec<f64> = (0..90).map(|i| ((i * 13) % 29) as f64 * 0.2).collect(); // 30 rows, d=3
        let y2: Vec<f64> = y.iter().take(60).copied().collect(); // 30 rows, d=2
        let f = |r2: f64| (-r2).exp() + r2.sqrt();
        let mut naive_cross = 0.0;
        for a in x.chunks(2) {
            for b in y2.chunks(2) {
                naive_cross += f(sq_dist(a, b));
            }
        }
        let mut naive_self = 0.0;
        let rows: Vec<&[f64]> = x.chunks(2).collect();
        for i in 0..rows.len() {
            for j in i + 1..rows.len() {
                naive_self += f(sq_dist(rows[i], rows[j]));
            }
        }
        assert!((cross_sum(&x, &y2, 2, f) - naive_cross).abs() < 1e-9 * naive_cross.abs());
        assert!((half_self_sum(&x, 2, f) - naive_self).abs() < 1e-9 * naive_self.abs());
        // Σ_{i<j} |y_i − y_j|² = m Σ|y_i|² − |Σ y_i|² (closed form), d = 3.
        let m = (y.len() / 3) as f64;
        let sum_sq: f64 = y.iter().map(|v| v * v).sum();
        let col: Vec<f64> = (0..3).map(|k| y.iter().skip(k).step_by(3).sum::<f64>()).collect();
        let closed = m * sum_sq - col.iter().map(|c| c * c).sum::<f64>();
        assert!((half_self_sum(&y, 3, |r2| r2) - closed).abs() < 1e-9 * closed);
    }
}
