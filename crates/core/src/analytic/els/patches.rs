//! Patches of the ELS machine: which pixels share a candidate set (the padding pattern a CNN's
//! zero padding lets it see, seed 002 "Detail 2") and zero-padded patch extraction.

/// Class of every coordinate of an axis of length `len` for windows of radius `r`: coordinates
/// whose window lies inside the axis (r ≤ i ≤ len − 1 − r) share one "interior" class, every
/// other coordinate (its window crosses the border by a distance only it has) is its own class.
/// Returns the class per coordinate and the number of classes.
fn axis_classes(len: usize, r: usize) -> (Vec<usize>, usize) {
    let interior = |i: usize| i >= r && i + r < len;
    let has_interior = (0..len).any(interior);
    let mut next = usize::from(has_interior);
    let mut class = Vec::with_capacity(len);
    for i in 0..len {
        if interior(i) {
            class.push(0);
        } else {
            class.push(next);
            next += 1;
        }
    }
    (class, next)
}

/// Pixels (`y·W + x`) grouped by padding pattern for windows of radius `r` on an `h × w` grid:
/// two pixels are in one group exactly when their windows cross the borders identically, so a
/// pixel's candidates are the patches at the pixels of its own group (every interior pixel for an
/// interior one, the same column for one by a left/right edge, the same pixel for a corner).
pub(super) fn position_classes(h: usize, w: usize, r: usize) -> Vec<Vec<usize>> {
    let (cy, ny) = axis_classes(h, r);
    let (cx, nx) = axis_classes(w, r);
    let mut classes = vec![Vec::new(); ny * nx];
    for y in 0..h {
        for x in 0..w {
            classes[cy[y] * nx + cx[x]].push(y * w + x);
        }
    }
    classes.retain(|c| !c.is_empty());
    classes
}

/// The `c·P·P` values (channel, dy, dx order) of the window of radius `r` centred on pixel `pos`
/// of the image `img` (`[C, H, W]` row-major), zero outside the image, written to `out`.
pub(super) fn extract_patch(
    img: &[f64],
    (c, h, w): (usize, usize, usize),
    pos: usize,
    r: usize,
    out: &mut [f64],
) {
    let p = 2 * r + 1;
    debug_assert_eq!(out.len(), c * p * p);
    let (y0, x0) = ((pos / w) as isize - r as isize, (pos % w) as isize - r as isize);
    let mut k = 0;
    for ch in 0..c {
        let plane = &img[ch * h * w..(ch + 1) * h * w];
        for dy in 0..p as isize {
            let y = y0 + dy;
            for dx in 0..p as isize {
                let x = x0 + dx;
                out[k] = if y >= 0 && (y as usize) < h && x >= 0 && (x as usize) < w {
                    plane[y as usize * w + x as usize]
                } else {
                    0.0
                };
                k += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_padding_pattern() {
        // 5×4 grid, radius 1: rows 1..=3 and columns 1..=2 are interior.
        let classes = position_classes(5, 4, 1);
        // 3 row classes (top, interior, bottom) × 3 column classes (left, interior, right).
        assert_eq!(classes.len(), 9);
        let interior = classes.iter().find(|c| c.contains(&(4 + 1))).unwrap();
        assert_eq!(interior, &vec![5, 6, 9, 10, 13, 14]);
        let corner = classes.iter().find(|c| c.contains(&0)).unwrap();
        assert_eq!(corner, &vec![0]);
        let left_edge = classes.iter().find(|c| c.contains(&4)).unwrap();
        assert_eq!(left_edge, &vec![4, 8, 12]);
        // Every pixel is in exactly one class.
        let mut all: Vec<usize> = classes.concat();
        all.sort_unstable();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        // Radius 0: one class. A window wider than the grid: every pixel alone.
        assert_eq!(position_classes(3, 3, 0).len(), 1);
        assert_eq!(position_classes(3, 3, 3).len(), 9);
    }

    #[test]
    fn patches_are_zero_padded() {
        // 2 channels, 2×3 image.
        let img: Vec<f64> = (1..=12).map(f64::from).collect();
        let mut out = vec![f64::NAN; 18];
        extract_patch(&img, (2, 2, 3), 0, 1, &mut out);
        assert_eq!(&out[..9], &[0., 0., 0., 0., 1., 2., 0., 4., 5.]);
        assert_eq!(&out[9..], &[0., 0., 0., 0., 7., 8., 0., 10., 11.]);
    }
}
