//! Bilinear resampling of single-channel f32 planes.

/// Resize an `h × w` row-major plane to `oh × ow` by bilinear interpolation with
/// half-pixel centres (source coordinate `(o + ½)·h/oh − ½`, clamped to the border),
/// i.e. PyTorch's `interpolate(mode="bilinear", align_corners=False)`.
/// A constant plane stays constant and values stay within the input's range.
pub fn bilinear_resize(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let coords = |o: usize, n_in: usize, n_out: usize| -> (usize, usize, f32) {
        let x = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
        let i0 = (x.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, (x - i0 as f64).clamp(0.0, 1.0) as f32)
    };
    let cols: Vec<_> = (0..ow).map(|o| coords(o, w, ow)).collect();
    let mut out = Vec::with_capacity(oh * ow);
    for oy in 0..oh {
        let (y0, y1, fy) = coords(oy, h, oh);
        for &(x0, x1, fx) in &cols {
            let top = src[y0 * w + x0] * (1.0 - fx) + src[y0 * w + x1] * fx;
            let bottom = src[y1 * w + x0] * (1.0 - fx) + src[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// Keys' cubic convolution kernel with a = −0.75 (PyTorch's and OpenCV's bicubic).
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Resize an `h × w` row-major plane to `oh × ow` by bicubic interpolation (Keys, a = −0.75) with
/// half-pixel centres and border-replicated taps, i.e. PyTorch's
/// `interpolate(mode="bicubic", align_corners=False)` without antialiasing. Values may overshoot
/// the input's range (clamp afterwards if needed).
pub fn bicubic_resize(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let taps = |o: usize, n_in: usize, n_out: usize| -> ([usize; 4], [f64; 4]) {
        let x = (o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5;
        let x0 = x.floor();
        let idx = |k: i64| (x0 as i64 + k).clamp(0, n_in as i64 - 1) as usize;
        ([idx(-1), idx(0), idx(1), idx(2)], cubic_weights(x - x0))
    };
    let cols: Vec<_> = (0..ow).map(|o| taps(o, w, ow)).collect();
    let mut out = Vec::with_capacity(oh * ow);
    for oy in 0..oh {
        let (ys, wy) = taps(oy, h, oh);
        for (xs, wx) in &cols {
            let mut acc = 0.0f64;
            for (y, fy) in ys.iter().zip(wy) {
                let row = &src[y * w..(y + 1) * w];
                let r: f64 = xs.iter().zip(wx).map(|(&x, fx)| row[x] as f64 * fx).sum();
                acc += r * fy;
            }
            out.push(acc as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_matches_pytorch() {
        // torch.nn.functional.interpolate(x, size=…, mode="bicubic", align_corners=False), torch 2.15
        let x = [0.0f32, 1.0, 4.0, 2.0, -1.0, 3.0];
        let up = bicubic_resize(&x, 2, 3, 4, 5);
        let want = [
            -0.347_437_47,
            0.132_344_74,
            1.210_937_5,
            3.084_765_7,
            4.383_344,
            0.444_125_03,
            0.257_188_17,
            0.546_875,
            2.528_281_7,
            4.083_187_6,
            1.747_875_1,
            0.462_812_7,
            -0.546_875,
            1.611_719_5,
            3.588_813,
            2.539_437_8,
            0.587_656_1,
            -1.210_937_5,
            1.055_235_4,
            3.288_656_7,
        ];
        let down = bicubic_resize(&x, 2, 3, 3, 2);
        let want_down = [0.029_201_927, 3.474_149, 0.650_390_6, 2.671_875, 1.271_579_1, 1.869_602_3];
        for (got, want) in [(up, &want[..]), (down, &want_down[..])] {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 2e-6, "{g} vs {w}");
            }
        }
        // weights sum to one: constants are kept
        assert!(bicubic_resize(&[0.3; 4], 2, 2, 5, 3).iter().all(|&v| (v - 0.3).abs() < 1e-6));
    }

    #[test]
    fn doubling_matches_hand_values() {
        // 1-D row [0, 1] doubled: centres at -0.25, 0.25, 0.75, 1.25 -> clamp -> 0, .25, .75, 1
        let out = bilinear_resize(&[0.0, 1.0], 1, 2, 1, 4);
        assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
        let same = bilinear_resize(&[1.0, 2.0, 3.0, 4.0], 2, 2, 2, 2);
        assert_eq!(same, vec![1.0, 2.0, 3.0, 4.0]);
        let c = bilinear_resize(&[0.5; 9], 3, 3, 7, 5);
        assert!(c.iter().all(|&v| (v - 0.5).abs() < 1e-7) && c.len() == 35);
    }
}
