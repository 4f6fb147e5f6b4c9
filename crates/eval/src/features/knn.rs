//! Blocked Euclidean distances between feature sets (via `gemm`) and k-nearest neighbours.

use super::error::{FeatureError, Result};
use super::linalg::matmul_strided;
use super::matrix::FeatureMatrix;

/// Number of f64 entries of one block of the distance matrix (32 MiB).
const BLOCK_ENTRIES: usize = 1 << 22;

fn sq_norms(x: &FeatureMatrix) -> Vec<f64> {
    (0..x.rows()).map(|i| x.row(i).iter().map(|v| v * v).sum()).collect()
}

/// Calls `f(first_query, block)` for consecutive blocks of query rows, where `block` is the
/// row-major `rows × refs.rows()` matrix of squared distances `‖q_i − r_j‖²`
/// (computed as `‖q‖² + ‖r‖² − 2 qᵀr`, clamped at 0).
pub(crate) fn for_each_sq_distance_block(
    queries: &FeatureMatrix,
    refs: &FeatureMatrix,
    mut f: impl FnMut(usize, &[f64]) -> Result<()>,
) -> Result<()> {
    let d = queries.cols();
    if refs.cols() != d {
        return Err(FeatureError::Shape(format!("feature dimensions {d} and {} differ", refs.cols())));
    }
    let nr = refs.rows();
    if nr == 0 {
        return Ok(());
    }
    let qn = sq_norms(queries);
    let rn = sq_norms(refs);
    let rows_per_block = (BLOCK_ENTRIES / nr).max(1);
    for start in (0..queries.rows()).step_by(rows_per_block) {
        let rows = rows_per_block.min(queries.rows() - start);
        let q = &queries.data()[start * d..(start + rows) * d];
        let mut g = matmul_strided(rows, nr, d, q, d, 1, refs.data(), 1, d);
        for i in 0..rows {
            for (j, v) in g[i * nr..(i + 1) * nr].iter_mut().enumerate() {
                *v = (qn[start + i] + rn[j] - 2.0 * *v).max(0.0);
            }
        }
        f(start, &g)?;
    }
    Ok(())
}

/// For every query row, its `k` nearest reference rows as `(distance, index)` pairs in
/// ascending distance (Euclidean, not squared). With `exclude_same_index` the reference with
/// the query's own index is skipped (queries and refs are then the same set).
pub fn k_nearest(
    queries: &FeatureMatrix,
    refs: &FeatureMatrix,
    k: usize,
    exclude_same_index: bool,
) -> Result<Vec<Vec<(f64, usize)>>> {
    let available = refs.rows() - usize::from(exclude_same_index && refs.rows() > 0);
    if k == 0 || k > available {
        return Err(FeatureError::invalid(
            "k",
            format!("need 1 <= k <= {available} (reference rows available), got {k}"),
        ));
    }
    let nr = refs.rows();
    let mut out: Vec<Vec<(f64, usize)>> = vec![Vec::with_capacity(k + 1); queries.rows()];
    for_each_sq_distance_block(queries, refs, |start, block| {
        for (i, row) in block.chunks_exact(nr).enumerate() {
            let qi = start + i;
            let best = &mut out[qi];
            for (j, &d2) in row.iter().enumerate() {
                if exclude_same_index && j == qi {
                    continue;
                }
                if best.len() < k || d2 < best[best.len() - 1].0 {
                    let pos = best.partition_point(|&(v, _)| v <= d2);
                    best.insert(pos, (d2, j));
                    best.truncate(k);
                }
            }
        }
        Ok(())
    })?;
    // The expansion ‖q‖² + ‖r‖² − 2qᵀr loses precision for near-identical vectors
    // (an exact copy would come out at ~sqrt(eps)·‖q‖); recompute the selected distances
    // directly.
    for (qi, best) in out.iter_mut().enumerate() {
        let q = queries.row(qi);
        for p in best.iter_mut() {
            p.0 = q.iter().zip(refs.row(p.1)).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
        }
        best.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    }
    Ok(out)
}
