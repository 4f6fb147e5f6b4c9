//! SiLU, softmax, nearest ×2 upsampling, linear and the per-channel bias add against
//! stock-candle references (and, for softmax, finite differences).

mod ops_util;

use candle_core::{Tensor, Var};
use ops_util::{assert_close, probe_loss, rand, rand_strided, var};
use rediffuse_nn::ops::{self, reference};

const TOL: f32 = 1e-4;

/// Compares `fast(x)` and `slow(x)` and their input gradients.
fn check_unary(
    dims: &[usize],
    seed: u64,
    fast: impl Fn(&Tensor) -> Tensor,
    slow: impl Fn(&Tensor) -> Tensor,
    what: &str,
) {
    let x = var(dims, seed);
    let (yf, ys) = (fast(&x), slow(&x));
    assert_close(&yf, &ys, TOL, &format!("{what} {dims:?} forward"));
    let gf = probe_loss(&yf, seed + 1).backward().unwrap();
    let gs = probe_loss(&ys, seed + 1).backward().unwrap();
    assert_close(gf.get(&x).unwrap(), gs.get(&x).unwrap(), TOL, &format!("{what} {dims:?} grad"));
}

#[test]
fn silu_matches_reference() {
    for (i, dims) in [&[3, 5, 7][..], &[1, 1], &[70001]].iter().enumerate() {
        check_unary(dims, i as u64, |x| ops::silu(x).unwrap(), |x| reference::silu(x).unwrap(), "silu");
    }
    // Large magnitudes: saturation must not produce NaN.
    let x = (rand(&[1000], 9) * 200.0).unwrap();
    assert_close(&ops::silu(&x).unwrap(), &reference::silu(&x).unwrap(), TOL, "silu large");
}

#[test]
fn softmax_matches_reference() {
    for (i, dims) in [&[4, 49, 49][..], &[3, 1], &[2, 3, 17]].iter().enumerate() {
        let f = |x: &Tensor| ops::softmax_last_dim(&(x * 5.0).unwrap()).unwrap();
        let s = |x: &Tensor| reference::softmax_last_dim(&(x * 5.0).unwrap()).unwrap();
        check_unary(dims, 10 + i as u64, f, s, "softmax");
    }
}

#[test]
fn softmax_gradient_matches_finite_differences() {
    let x0 = rand(&[2, 5], 20).to_dtype(candle_core::DType::F64).unwrap();
    let r = rand(&[2, 5], 21).to_dtype(candle_core::DType::F64).unwrap();
    let f = |x: &Tensor| (candle_nn::ops::softmax_last_dim(x).unwrap() * &r).unwrap().sum_all().unwrap();
    let x = Var::from_tensor(&x0.to_dtype(candle_core::DType::F32).unwrap()).unwrap();
    let y = ops::softmax_last_dim(&x).unwrap();
    let g =
        (y * r.to_dtype(candle_core::DType::F32).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
    let g = g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let base = x0.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-6;
    for i in 0..base.len() {
        let mut plus = base.clone();
        plus[i] += h;
        let mut minus = base.clone();
        minus[i] -= h;
        let fp = f(&Tensor::from_vec(plus, (2, 5), x0.device()).unwrap()).to_scalar::<f64>().unwrap();
        let fm = f(&Tensor::from_vec(minus, (2, 5), x0.device()).unwrap()).to_scalar::<f64>().unwrap();
        let fd = (fp - fm) / (2.0 * h);
        assert!((g[i] as f64 - fd).abs() < 1e-5, "element {i}: {} vs {fd}", g[i]);
    }
}

#[test]
fn upsample_matches_reference() {
    for (i, dims) in [&[2, 3, 5, 7][..], &[1, 1, 1, 1], &[3, 4, 7, 7]].iter().enumerate() {
        check_unary(
            dims,
            30 + i as u64,
            |x| ops::upsample_nearest2x(x).unwrap(),
            |x| reference::upsample_nearest2x(x).unwrap(),
            "upsample",
        );
    }
}

#[test]
fn linear_matches_reference() {
    for (i, &(lead, fin, fout, with_bias)) in [
        (&[5][..], 7, 3, true),
        (&[1][..], 32, 128, true),
        (&[2, 9][..], 16, 5, false),
        (&[3, 4][..], 6, 6, true),
    ]
    .iter()
    .enumerate()
    {
        let seed = 40 + 10 * i as u64;
        let mut xd = lead.to_vec();
        xd.push(fin);
        let x = var(&xd, seed);
        let w = var(&[fout, fin], seed + 1);
        let b = var(&[fout], seed + 2);
        let bias = with_bias.then_some(b.as_tensor());
        let yf = ops::linear(&x, &w, bias).unwrap();
        let ys = reference::linear(&x.flatten_to(lead.len() - 1).unwrap(), &w, bias).unwrap();
        let ys = ys.reshape(yf.dims()).unwrap();
        assert_close(&yf, &ys, TOL, "linear forward");
        let gf = probe_loss(&yf, seed + 3).backward().unwrap();
        let gs = probe_loss(&ys, seed + 3).backward().unwrap();
        assert_close(gf.get(&x).unwrap(), gs.get(&x).unwrap(), TOL, "linear dx");
        assert_close(gf.get(&w).unwrap(), gs.get(&w).unwrap(), TOL, "linear dw");
        if with_bias {
            assert_close(gf.get(&b).unwrap(), gs.get(&b).unwrap(), TOL, "linear db");
        }
    }
}

#[test]
fn linear_non_contiguous_weight() {
    // A transposed view as the weight (the layout `x · Wᵀ` callers often produce).
    let x = rand(&[4, 6], 90);
    let w = rand_strided(&[5, 6], 91);
    let yf = ops::linear(&x, &w, None).unwrap();
    let ys = reference::linear(&x, &w.contiguous().unwrap(), None).unwrap();
    assert_close(&yf, &ys, TOL, "linear strided");
    assert!(ops::linear(&x, &rand(&[5, 4], 92), None).is_err());
}

#[test]
fn add_channel_bias_matches_reference() {
    let x = var(&[3, 5, 4, 7], 100);
    let t = var(&[3, 5], 101);
    let yf = ops::add_channel_bias(&x, &t).unwrap();
    let ys = reference::add_channel_bias(&x, &t).unwrap();
    assert_close(&yf, &ys, TOL, "add_channel_bias forward");
    let gf = probe_loss(&yf, 102).backward().unwrap();
    let gs = probe_loss(&ys, 102).backward().unwrap();
    assert_close(gf.get(&x).unwrap(), gs.get(&x).unwrap(), TOL, "add_channel_bias dx");
    assert_close(gf.get(&t).unwrap(), gs.get(&t).unwrap(), TOL, "add_channel_bias dt");
    assert!(ops::add_channel_bias(&x, &rand(&[3, 4], 103)).is_err());
}
