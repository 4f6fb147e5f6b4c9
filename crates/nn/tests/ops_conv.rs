//! The fast conv2d kernel against candle's stock convolution: forward and all gradients.

mod ops_util;

use candle_core::Tensor;
use ops_util::{assert_close, probe_loss, rand, rand_strided, var};
use rediffuse_nn::ops::{self, reference};

const TOL: f32 = 1e-4;

/// (B, Cin, H, W, Cout, k, stride, padding, bias)
type Case = (usize, usize, usize, usize, usize, usize, usize, usize, bool);

/// Direct f64 loops: returns (y, dx, dw, db) for upstream gradient `r` of `y`.
fn naive(case: Case, x: &[f32], w: &[f32], bias: &[f32], r: &[f32]) -> [Vec<f64>; 4] {
    let (b, cin, h, wd, cout, k, s, p, with_bias) = case;
    let ho = (h + 2 * p - k) / s + 1;
    let wo = (wd + 2 * p - k) / s + 1;
    let mut y = vec![0f64; b * cout * ho * wo];
    let (mut dx, mut dw, mut db) = (vec![0f64; x.len()], vec![0f64; w.len()], vec![0f64; cout]);
    for bi in 0..b {
        for co in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let yi = ((bi * cout + co) * ho + oy) * wo + ox;
                    let g = r[yi] as f64;
                    let mut acc = if with_bias { bias[co] as f64 } else { 0.0 };
                    db[co] += g;
                    for ci in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - p as isize;
                                let ix = (ox * s + kx) as isize - p as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((bi * cin + ci) * h + iy as usize) * wd + ix as usize;
                                let wi = ((co * cin + ci) * k + ky) * k + kx;
                                acc += x[xi] as f64 * w[wi] as f64;
                                dx[xi] += g * w[wi] as f64;
                                dw[wi] += g * x[xi] as f64;
                            }
                        }
                    }
                    y[yi] = acc;
                }
            }
        }
    }
    [y, dx, dw, db]
}

fn to_tensor(v: &[f64], dims: &[usize]) -> Tensor {
    Tensor::from_vec(v.iter().map(|&a| a as f32).collect::<Vec<_>>(), dims, &candle_core::Device::Cpu)
        .unwrap()
}

fn check(case: Case, seed: u64) {
    let (b, cin, h, w, cout, k, s, p, with_bias) = case;
    let x = var(&[b, cin, h, w], seed);
    let wt = var(&[cout, cin, k, k], seed + 1);
    let bias = var(&[cout], seed + 2);
    let bias_ref = with_bias.then_some(bias.as_tensor());
    let fast = ops::conv2d(&x, &wt, bias_ref, s, p).unwrap();
    // Forward against candle's stock convolution.
    let slow = reference::conv2d(&x, &wt, bias_ref, s, p).unwrap();
    assert_close(&fast, &slow, TOL, &format!("{case:?} forward"));
    // Gradients against direct f64 loops.
    let r = rand(fast.dims(), seed + 3);
    let g = probe_loss(&fast, seed + 3).backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let [y, dx, dw, db] = naive(case, &flat(&x), &flat(&wt), &flat(&bias), &flat(&r));
    assert_close(&fast, &to_tensor(&y, fast.dims()), TOL, &format!("{case:?} forward (loops)"));
    assert_close(g.get(&x).unwrap(), &to_tensor(&dx, x.dims()), TOL, &format!("{case:?} dx"));
    assert_close(g.get(&wt).unwrap(), &to_tensor(&dw, wt.dims()), TOL, &format!("{case:?} dw"));
    if with_bias {
        assert_close(g.get(&bias).unwrap(), &to_tensor(&db, &[cout]), TOL, &format!("{case:?} db"));
    }
    // And against the reference op's autograd.
    {
        let gs = probe_loss(&slow, seed + 3).backward().unwrap();
        assert_close(g.get(&x).unwrap(), gs.get(&x).unwrap(), TOL, &format!("{case:?} dx vs candle"));
        assert_close(g.get(&wt).unwrap(), gs.get(&wt).unwrap(), TOL, &format!("{case:?} dw vs candle"));
    }
}

#[test]
fn conv3x3_stride1_pad1_matches_reference() {
    check((2, 3, 7, 9, 5, 3, 1, 1, true), 10);
    check((3, 4, 8, 8, 6, 3, 1, 1, false), 20);
}

#[test]
fn conv3x3_stride2_matches_reference() {
    check((2, 3, 7, 9, 5, 3, 2, 1, true), 30);
    check((1, 4, 8, 8, 4, 3, 2, 1, true), 40);
    check((3, 2, 9, 6, 3, 3, 2, 0, true), 50);
}

#[test]
fn conv_padding0_and_batch1_match_reference() {
    check((1, 2, 5, 6, 3, 3, 1, 0, true), 60);
    check((1, 5, 11, 13, 7, 3, 1, 1, true), 70);
}

#[test]
fn conv1x1_matches_reference() {
    check((2, 6, 5, 7, 4, 1, 1, 0, true), 80);
    check((3, 3, 6, 6, 2, 1, 2, 0, false), 90);
    check((1, 3, 4, 5, 2, 1, 1, 1, true), 100);
}

#[test]
fn conv_large_image_spans_many_tiles() {
    // 28×28 with 3 tiles of output rows per image, more images than threads.
    check((5, 8, 28, 28, 8, 3, 1, 1, true), 110);
    check((3, 8, 28, 28, 8, 3, 2, 1, true), 120);
}

#[test]
fn conv_non_contiguous_input() {
    let x = rand_strided(&[2, 3, 6, 7], 200);
    let wt = rand_strided(&[4, 3, 3, 3], 201);
    let fast = ops::conv2d(&x, &wt, None, 1, 1).unwrap();
    let slow = reference::conv2d(&x.contiguous().unwrap(), &wt.contiguous().unwrap(), None, 1, 1).unwrap();
    assert_close(&fast, &slow, TOL, "non-contiguous forward");
    // Gradients through a transposed view of a variable.
    let v = var(&[2, 3, 7, 6], 202);
    let wv = var(&[4, 3, 3, 3], 203);
    let xt = v.transpose(2, 3).unwrap();
    let gf = probe_loss(&ops::conv2d(&xt, &wv, None, 1, 1).unwrap(), 204).backward().unwrap();
    let gs = probe_loss(&reference::conv2d(&xt, &wv, None, 1, 1).unwrap(), 204).backward().unwrap();
    assert_close(gf.get(&v).unwrap(), gs.get(&v).unwrap(), TOL, "non-contiguous dx");
    assert_close(gf.get(&wv).unwrap(), gs.get(&wv).unwrap(), TOL, "non-contiguous dw");
}

#[test]
fn conv_gradients_flow_only_to_tracked_inputs() {
    let x = rand(&[2, 3, 5, 5], 300);
    let wt = var(&[4, 3, 3, 3], 301);
    let y = ops::conv2d(&x, &wt, None, 1, 1).unwrap();
    let g = probe_loss(&y, 302).backward().unwrap();
    assert!(g.get(&x).is_none());
    assert!(g.get(&wt).is_some());
}

#[test]
fn conv_single_thread_equals_multi_thread() {
    let x = rand(&[4, 3, 9, 9], 400);
    let wt = rand(&[5, 3, 3, 3], 401);
    ops::set_num_threads(1);
    let one = ops::conv2d(&x, &wt, None, 1, 1).unwrap();
    ops::set_num_threads(0);
    let many = ops::conv2d(&x, &wt, None, 1, 1).unwrap();
    assert_close(&one, &many, 1e-6, "thread count");
}

#[test]
fn conv_rejects_bad_shapes() {
    let x = rand(&[1, 3, 5, 5], 500);
    assert!(ops::conv2d(&x, &rand(&[4, 2, 3, 3], 501), None, 1, 1).is_err());
    assert!(ops::conv2d(&x, &rand(&[4, 3, 3, 3], 502), Some(&rand(&[3], 503)), 1, 1).is_err());
    assert!(ops::conv2d(&x, &rand(&[4, 3, 3, 3], 504), None, 0, 1).is_err());
    assert!(ops::conv2d(&x, &rand(&[4, 3, 9, 9], 505), None, 1, 1).is_err());
}
