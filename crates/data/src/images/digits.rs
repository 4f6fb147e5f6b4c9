//! The 8×8 UCI handwritten digits (1,797 images, labels 0–9), embedded in the binary.
//! Source and CC BY 4.0 license: `crates/data/assets/NOTICE`.

use super::error::{ImageError, Result};
use super::resize::bilinear_resize;
use super::set::ImageSet;
use flate2::read::GzDecoder;
use std::io::Read;

/// The gzip-compressed CSV shipped with scikit-learn (64 pixels in 0..16, then the label).
pub const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../assets/digits.csv.gz");

/// Number of images in the set.
pub const DIGITS_COUNT: usize = 1797;

/// Load the digits, 1×`size`×`size` in [−1, 1] (`v/16·2 − 1`), with labels (10 classes).
/// `size = 8` is the native resolution; larger sizes are bilinearly upsampled
/// (half-pixel centres, see [`bilinear_resize`]).
pub fn load_digits(size: usize) -> Result<ImageSet> {
    if size < 8 {
        return Err(ImageError::invalid("size", format!("digits are 8×8; size must be >= 8, got {size}")));
    }
    let src = "embedded digits.csv.gz";
    let mut text = String::new();
    GzDecoder::new(DIGITS_CSV_GZ).read_to_string(&mut text).map_err(|e| ImageError::io(src, e))?;
    let mut pixels = Vec::with_capacity(DIGITS_COUNT * 64);
    let mut labels = Vec::with_capacity(DIGITS_COUNT);
    for (line_no, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let vals: Vec<u8> = line
            .split(',')
            .map(|v| v.trim().parse::<u8>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| ImageError::malformed(src, format!("line {}: {e}", line_no + 1)))?;
        if vals.len() != 65 || vals[..64].iter().any(|&v| v > 16) || vals[64] > 9 {
            return Err(ImageError::malformed(src, format!("line {}: bad record", line_no + 1)));
        }
        pixels.extend_from_slice(&vals[..64]);
        labels.push(vals[64] as u32);
    }
    if size == 8 {
        return ImageSet::from_u8([1, 8, 8], pixels, 16, Some(labels), Some(10));
    }
    let mut out = Vec::with_capacity(labels.len() * size * size);
    for img in pixels.chunks(64) {
        let plane: Vec<f32> = img.iter().map(|&v| v as f32 / 8.0 - 1.0).collect();
        out.extend(bilinear_resize(&plane, 8, 8, size, size).into_iter().map(|v| v.clamp(-1.0, 1.0)));
    }
    ImageSet::from_f32([1, size, size], out, Some(labels), Some(10))
}
