//! Fused GroupNorm(+SiLU) against the stock-candle composition: forward and gradients.

mod ops_util;

use ops_util::{assert_close, probe_loss, rand, rand_strided, var};
use rediffuse_nn::ops::{self, reference};

const TOL: f32 = 1e-4;

fn check(dims: &[usize], groups: usize, silu: bool, seed: u64) {
    let c = dims[1];
    let x = var(dims, seed);
    // γ around 1, β around 0, as in a trained network, but not exactly.
    let gamma = candle_core::Var::from_tensor(&rand(&[c], seed + 1).affine(0.5, 1.0).unwrap()).unwrap();
    let beta = var(&[c], seed + 2);
    let fast = ops::group_norm(&x, &gamma, &beta, groups, 1e-5, silu).unwrap();
    let slow = reference::group_norm(&x, &gamma, &beta, groups, 1e-5, silu).unwrap();
    let what = format!("{dims:?} g{groups} silu={silu}");
    assert_close(&fast, &slow, TOL, &format!("{what} forward"));
    let gf = probe_loss(&fast, seed + 3).backward().unwrap();
    let gs = probe_loss(&slow, seed + 3).backward().unwrap();
    assert_close(gf.get(&x).unwrap(), gs.get(&x).unwrap(), TOL, &format!("{what} dx"));
    assert_close(gf.get(&gamma).unwrap(), gs.get(&gamma).unwrap(), TOL, &format!("{what} dgamma"));
    assert_close(gf.get(&beta).unwrap(), gs.get(&beta).unwrap(), TOL, &format!("{what} dbeta"));
}

#[test]
fn group_norm_matches_reference() {
    check(&[2, 8, 5, 7], 4, false, 1);
    check(&[1, 6, 3, 3], 3, false, 2);
    check(&[3, 16, 28, 28], 8, false, 3);
}

#[test]
fn group_norm_silu_matches_reference() {
    check(&[2, 8, 5, 7], 4, true, 11);
    check(&[1, 4, 9, 11], 2, true, 12);
    check(&[3, 16, 14, 14], 8, true, 13);
}

#[test]
fn group_norm_other_ranks() {
    check(&[3, 6, 17], 3, true, 21);
    check(&[2, 6], 2, false, 22);
}

#[test]
fn group_norm_non_contiguous_input() {
    let x = rand_strided(&[2, 8, 5, 6], 31);
    let gamma = rand(&[8], 32);
    let beta = rand(&[8], 33);
    let fast = ops::group_norm(&x, &gamma, &beta, 4, 1e-5, true).unwrap();
    let slow = reference::group_norm(&x.contiguous().unwrap(), &gamma, &beta, 4, 1e-5, true).unwrap();
    assert_close(&fast, &slow, TOL, "non-contiguous");
}

#[test]
fn group_norm_rejects_bad_arguments() {
    let x = rand(&[2, 6, 4, 4], 41);
    let p = rand(&[6], 42);
    assert!(ops::group_norm(&x, &p, &p, 4, 1e-5, false).is_err());
    assert!(ops::group_norm(&x, &rand(&[5], 43), &p, 3, 1e-5, false).is_err());
    assert!(ops::group_norm(&x, &p, &p, 3, -1.0, false).is_err());
    assert!(ops::group_norm(&x, &p, &p, 3, f64::NAN, false).is_err());
}
