//! Linear algebra behind FID: symmetric eigenvalues, pivoted Cholesky and Tr((Σ1Σ2)^{1/2}).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rediffuse_eval::features::linalg::{
    pivoted_cholesky, symmetric_eigenvalues, trace_sqrt_product, tridiagonal_eigenvalues,
};

fn randn(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample::<f64, _>(StandardNormal)).collect()
}

/// `C = A B` (naive, row-major), independent of the library's gemm path.
fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * m];
    for i in 0..n {
        for l in 0..k {
            let x = a[i * k + l];
            for j in 0..m {
                c[i * m + j] += x * b[l * m + j];
            }
        }
    }
    c
}

fn transpose(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            t[j * n + i] = a[i * m + j];
        }
    }
    t
}

/// A random orthogonal matrix as a product of `n` Householder reflections.
fn random_orthogonal(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    let mut q: Vec<f64> = (0..n * n).map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 }).collect();
    for _ in 0..n.min(8) {
        let v = randn(rng, n);
        let vv: f64 = v.iter().map(|x| x * x).sum();
        // Q <- Q (I - 2 v vᵀ / vᵀv)
        for i in 0..n {
            let dot: f64 = (0..n).map(|j| q[i * n + j] * v[j]).sum();
            for j in 0..n {
                q[i * n + j] -= 2.0 * dot * v[j] / vv;
            }
        }
    }
    q
}

/// `Q diag(lambda) Qᵀ`.
fn from_spectrum(q: &[f64], lambda: &[f64]) -> Vec<f64> {
    let n = lambda.len();
    let mut ql = q.to_vec();
    for i in 0..n {
        for j in 0..n {
            ql[i * n + j] *= lambda[j];
        }
    }
    matmul(&ql, &transpose(q, n, n), n, n, n)
}

/// Reference eigenvalues by the cyclic Jacobi method (Golub & Van Loan Alg. 8.5.3), sorted.
fn jacobi_eigenvalues(a: &[f64], n: usize) -> Vec<f64> {
    let mut a = a.to_vec();
    let frob: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..30 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * frob {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let tau = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                // A <- Jᵀ A J on rows/columns p, q.
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut eig: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    eig.sort_by(|x, y| x.partial_cmp(y).unwrap());
    eig
}

#[test]
fn tridiagonal_toeplitz_spectrum() {
    // T = tridiag(-1, 2, -1): lambda_k = 2 - 2 cos(k pi / (n + 1)).
    let n = 60;
    let eig = tridiagonal_eigenvalues(&vec![2.0; n], &vec![-1.0; n - 1]).unwrap();
    for (k, &l) in eig.iter().enumerate() {
        let exact = 2.0 - 2.0 * ((k + 1) as f64 * std::f64::consts::PI / (n + 1) as f64).cos();
        assert!((l - exact).abs() < 1e-13, "k={k}: {l} vs {exact}");
    }
}

#[test]
fn symmetric_eigenvalues_recover_planted_spectrum() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 120;
    let q = random_orthogonal(&mut rng, n);
    // Spread over 8 decades, with a repeated eigenvalue and a negative one.
    let mut lambda: Vec<f64> = (0..n).map(|i| 10f64.powf(-4.0 + 8.0 * i as f64 / n as f64)).collect();
    lambda[5] = lambda[6];
    lambda[0] = -3.0;
    let a = from_spectrum(&q, &lambda);
    let eig = symmetric_eigenvalues(&a, n).unwrap();
    lambda.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let scale = lambda.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (e, l) in eig.iter().zip(&lambda) {
        assert!((e - l).abs() < 1e-11 * scale, "{e} vs {l}");
    }
}

#[test]
fn pivoted_cholesky_reconstructs_singular_matrix() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (n, r) = (40, 13);
    let b = randn(&mut rng, n * r);
    let a = matmul(&b, &transpose(&b, n, r), n, r, n); // rank 13
    let (l, rank) = pivoted_cholesky(&a, n).unwrap();
    assert_eq!(rank, r);
    let llt = matmul(&l, &transpose(&l, n, rank), n, rank, n);
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (x, y) in llt.iter().zip(&a) {
        assert!((x - y).abs() < 1e-12 * scale);
    }
}

/// `Tr((Σ1Σ2)^{1/2})` vs. a reference built from an eigen-decomposition:
/// `Σ1 = Q Λ Qᵀ` gives `Σ1^{1/2} = Q Λ^{1/2} Qᵀ`, and the Jacobi eigenvalues `μ_i` of
/// `Σ1^{1/2} Σ2 Σ1^{1/2}` give `Σ sqrt(μ_i)`.
fn check_trace_sqrt(n: usize, rank1: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let q = random_orthogonal(&mut rng, n);
    let lambda: Vec<f64> =
        (0..n).map(|i| if i < rank1 { 0.05 + rng.random::<f64>() * 3.0 } else { 0.0 }).collect();
    let sigma1 = from_spectrum(&q, &lambda);
    let sqrt1 = from_spectrum(&q, &lambda.iter().map(|l| l.sqrt()).collect::<Vec<_>>());
    let b = randn(&mut rng, n * n);
    let mut sigma2 = matmul(&b, &transpose(&b, n, n), n, n, n);
    sigma2.iter_mut().for_each(|x| *x /= n as f64);
    for i in 0..n {
        sigma2[i * n + i] += 0.01;
    }
    let m = matmul(&matmul(&sqrt1, &sigma2, n, n, n), &sqrt1, n, n, n);
    // Eigenvalues that are zero in exact arithmetic come out as ±O(eps·‖M‖); their square
    // roots (O(sqrt(eps))) would swamp the comparison, so the reference drops them.
    let mu = jacobi_eigenvalues(&m, n);
    let top = mu[n - 1];
    let reference: f64 = mu.iter().filter(|&&x| x > 1e-12 * top).map(|&x| x.sqrt()).sum();
    let t = std::time::Instant::now();
    let got = trace_sqrt_product(&sigma1, &sigma2, n).unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!("n={n} rank={rank1}: trace sqrt {got} vs reference {reference} ({secs:.3}s)");
    assert!((got - reference).abs() < 1e-9 * reference, "{got} vs {reference}");
}

#[test]
fn trace_sqrt_matches_eigendecomposition_reference_512() {
    check_trace_sqrt(512, 512, 3);
}

#[test]
fn trace_sqrt_handles_singular_sigma1() {
    check_trace_sqrt(64, 20, 4);
}

#[test]
fn trace_sqrt_rejects_bad_input() {
    let nan = vec![f64::NAN, 0.0, 0.0, 1.0];
    let id = vec![1.0, 0.0, 0.0, 1.0];
    assert!(trace_sqrt_product(&nan, &id, 2).is_err());
    assert!(trace_sqrt_product(&[1.0, 2.0, 0.0, 1.0], &id, 2).is_err()); // not symmetric
    assert!(trace_sqrt_product(&id, &id, 3).is_err()); // wrong size
}

/// CPU seconds used by this process so far (Linux `/proc/self/stat`, 100 Hz ticks); the
/// machine running the tests is shared, so wall-clock time would mostly measure the load.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Timing at the Inception feature dimension (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn trace_sqrt_2048_timing() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 2048;
    let make = |rng: &mut ChaCha8Rng| {
        // Wishart-like SPD matrix XᵀX/k, k = 3000 (computed by the library's covariance).
        let k = 3000;
        let x = rediffuse_eval::features::FeatureMatrix::new(k, n, randn(rng, k * n)).unwrap();
        x.covariance().unwrap()
    };
    let (a, b) = (make(&mut rng), make(&mut rng));
    let phase = |label: &str, f: &mut dyn FnMut()| {
        let (c, t) = (cpu_seconds(), std::time::Instant::now());
        f();
        println!("{label}: {:.2}s CPU, {:.2}s wall", cpu_seconds() - c, t.elapsed().as_secs_f64());
    };
    phase("pivoted Cholesky", &mut || {
        pivoted_cholesky(&a, n).unwrap();
    });
    let mut de = (Vec::new(), Vec::new());
    phase("tridiagonalisation", &mut || {
        let mut work = b.clone();
        de = rediffuse_eval::features::linalg::tridiagonalize(&mut work, n);
    });
    phase("tridiagonal QR", &mut || {
        tridiagonal_eigenvalues(&de.0, &de.1).unwrap();
    });
    let mut v = 0.0;
    phase("trace_sqrt_product (total)", &mut || {
        v = trace_sqrt_product(&a, &b, n).unwrap();
    });
    println!("n=2048: Tr sqrt = {v:.6}");
    assert!(v.is_finite() && v > 0.0);
}
