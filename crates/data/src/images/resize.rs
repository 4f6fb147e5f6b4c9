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

#[cfg(test)]
mod tests {
    use super::*;

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
