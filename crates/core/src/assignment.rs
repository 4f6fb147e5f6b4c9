//! Exact minimum-cost assignment (the Hungarian method with potentials, O(n³)), used for the
//! minibatch optimal-transport coupling of flow matching (Tong et al. 2023; Pooladian et al. 2023).

use crate::error::{CoreError, Result};

/// The permutation `p` minimising Σᵢ cost[i·n + p[i]] over an `n × n` row-major cost matrix
/// (row i is assigned column p[i]). Costs must be finite.
pub fn min_cost_assignment(cost: &[f64], n: usize) -> Result<Vec<usize>> {
    if cost.len() != n * n {
        return Err(CoreError::Shape(format!("cost matrix of {} entries is not {n}×{n}", cost.len())));
    }
    if cost.iter().any(|c| !c.is_finite()) {
        return Err(CoreError::invalid("cost", "assignment costs must be finite"));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    // 1-based potentials u (rows), v (columns); way[j] = previous column on the augmenting path;
    // matched[j] = row matched to column j (0 = free).
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; n + 1]);
    let (mut matched, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        matched[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = matched[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0usize);
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[matched[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if matched[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            matched[j0] = matched[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut p = vec![0usize; n];
    for j in 1..=n {
        p[matched[j] - 1] = j - 1;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(cost: &[f64], n: usize, p: &[usize]) -> f64 {
        (0..n).map(|i| cost[i * n + p[i]]).sum()
    }

    /// Every permutation of 0..n (Heap's algorithm).
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        let mut a: Vec<usize> = (0..n).collect();
        let mut out = vec![a.clone()];
        let mut c = vec![0; n];
        let mut i = 0;
        while i < n {
            if c[i] < i {
                if i % 2 == 0 {
                    a.swap(0, i);
                } else {
                    a.swap(c[i], i);
                }
                out.push(a.clone());
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        out
    }

    #[test]
    fn matches_brute_force() {
        let mut state = 12345u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f64) / (1u64 << 31) as f64
        };
        for n in 1..=7 {
            for _ in 0..5 {
                let cost: Vec<f64> = (0..n * n).map(|_| rnd() * 10.0 - 3.0).collect();
                let p = min_cost_assignment(&cost, n).unwrap();
                let mut sorted = p.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>());
                let best = permutations(n).iter().map(|q| total(&cost, n, q)).fold(f64::INFINITY, f64::min);
                assert!((total(&cost, n, &p) - best).abs() < 1e-9, "n = {n}");
            }
        }
        assert!(min_cost_assignment(&[1.0, 2.0], 2).is_err());
        assert!(min_cost_assignment(&[f64::NAN], 1).is_err());
        assert_eq!(min_cost_assignment(&[], 0).unwrap(), Vec::<usize>::new());
    }
}
