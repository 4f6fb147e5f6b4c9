//! A folder of PNG/JPEG images of any sizes, decoded lazily: each image is
//! resized (shorter side → `size`, Triangle/bilinear filter) and centre-cropped to
//! `size × size`, as RGB (3 channels) or grey (1 channel), then scaled to [−1, 1].

use super::error::{ImageError, Result};
use super::set::ImageDataset;
use image::imageops::FilterType;
use image::DynamicImage;
use std::path::{Path, PathBuf};

/// Lazily decoded image folder (files found recursively, sorted by path).
#[derive(Debug, Clone)]
pub struct ImageFolder {
    files: Vec<PathBuf>,
    size: usize,
    channels: usize,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| ImageError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| ImageError::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// List the `.png`/`.jpg`/`.jpeg` files under `dir` (recursively).
    /// `channels` is 1 (grey) or 3 (RGB); `size` > 0.
    pub fn open(dir: &Path, size: usize, channels: usize) -> Result<Self> {
        if size == 0 {
            return Err(ImageError::invalid("size", "must be > 0"));
        }
        if channels != 1 && channels != 3 {
            return Err(ImageError::invalid("channels", format!("must be 1 or 3, got {channels}")));
        }
        if !dir.is_dir() {
            return Err(ImageError::Missing(format!("image folder {}", dir.display())));
        }
        let mut files = Vec::new();
        walk(dir, &mut files)?;
        if files.is_empty() {
            return Err(ImageError::Missing(format!("no .png/.jpg/.jpeg files in {}", dir.display())));
        }
        files.sort();
        Ok(Self { files, size, channels })
    }

    /// The image files, in dataset order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// Images whose resized (uncropped) version would exceed this many times `size²` pixels, that is
/// aspect ratios beyond 16:1, are cropped to their centred square before resizing: resizing a
/// 1×60 000 image (a PNG of a few hundred bytes) to a shorter side of 256 first would build a
/// 256×15 360 000 intermediate image.
const MAX_RESIZE_AREA_FACTOR: f64 = 16.0;

/// Resize so the shorter side is `size` (aspect preserved), then crop the centre `size × size`.
/// Extreme aspect ratios (beyond 16:1) crop the centred square of the source first, then resize.
pub fn resize_center_crop(img: &DynamicImage, size: usize) -> DynamicImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let short = w.min(h).max(1);
    let scaled = |side: usize| (side as f64 * size as f64 / short as f64).round().max(size as f64);
    let (fw, fh) = (scaled(w), scaled(h));
    if fw * fh > MAX_RESIZE_AREA_FACTOR * (size as f64) * (size as f64) {
        let side = w.min(h) as u32;
        let square =
            img.crop_imm(((w - side as usize) / 2) as u32, ((h - side as usize) / 2) as u32, side, side);
        return if side as usize == size {
            square
        } else {
            square.resize_exact(size as u32, size as u32, FilterType::Triangle)
        };
    }
    let (nw, nh) = (fw as u32, fh as u32);
    let resized = if (nw, nh) == (w as u32, h as u32) {
        img.clone()
    } else {
        img.resize_exact(nw, nh, FilterType::Triangle)
    };
    let x = (nw - size as u32) / 2;
    let y = (nh - size as u32) / 2;
    resized.crop_imm(x, y, size as u32, size as u32)
}

impl ImageDataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn image_shape(&self) -> [usize; 3] {
        [self.channels, self.size, self.size]
    }

    fn get(&self, index: usize) -> Result<Vec<f32>> {
        let path = self.files.get(index).ok_or(ImageError::OutOfRange { index, len: self.files.len() })?;
        let img = image::open(path).map_err(|e| ImageError::Decode { path: path.clone(), source: e })?;
        if img.width() == 0 || img.height() == 0 {
            return Err(ImageError::malformed(
                path,
                format!("image of {}×{} pixels has no pixels", img.width(), img.height()),
            ));
        }
        let img = resize_center_crop(&img, self.size);
        let plane = self.size * self.size;
        let mut out = vec![0f32; self.channels * plane];
        if self.channels == 1 {
            for (i, p) in img.to_luma8().pixels().enumerate() {
                out[i] = p.0[0] as f32 / 127.5 - 1.0;
            }
        } else {
            for (i, p) in img.to_rgb8().pixels().enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = p.0[c] as f32 / 127.5 - 1.0;
                }
            }
        }
        Ok(out)
    }

    fn label(&self, _index: usize) -> Option<u32> {
        None
    }

    fn num_classes(&self) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzzing): a valid 1×60 000 PNG loaded at size 256 was first resized to
    /// 256×15 360 000 (a 3.9 GB intermediate) before the centre crop.
    #[test]
    fn extreme_aspect_ratio_crops_before_resizing() {
        for (w, h) in [(1u32, 60_000u32), (60_000, 2), (3, 3_000)] {
            let img = DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([(x + y) as u8])
            }));
            let out = resize_center_crop(&img, 256);
            assert_eq!((out.width(), out.height()), (256, 256));
        }
        // ordinary aspect ratios keep resize-then-crop: a 2:1 image becomes 32×16, cropped
        let img = DynamicImage::ImageLuma8(image::GrayImage::from_fn(64, 32, |x, _| image::Luma([x as u8])));
        let out = resize_center_crop(&img, 16).to_luma8();
        let reference = img.resize_exact(32, 16, FilterType::Triangle).crop_imm(8, 0, 16, 16).to_luma8();
        assert_eq!(out, reference);
    }
}
