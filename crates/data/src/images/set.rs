//! In-memory image sets and the `ImageDataset` access trait.

use super::error::{ImageError, Result};

/// Random access to a data set of equally sized images, each returned as
/// `C·H·W` f32 values in [−1, 1] (CHW order).
pub trait ImageDataset: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[C, H, W]` of every image.
    fn image_shape(&self) -> [usize; 3];
    /// Image `index`, CHW, scaled to [−1, 1]. May read or decode a file.
    fn get(&self, index: usize) -> Result<Vec<f32>>;
    /// Class label of image `index`, if the set is labelled.
    fn label(&self, index: usize) -> Option<u32>;
    /// Number of classes, if labelled.
    fn num_classes(&self) -> Option<usize>;
}

#[derive(Debug, Clone)]
enum Pixels {
    /// Integer intensities `0..=max`, mapped to `2v/max − 1`.
    U8 { data: Vec<u8>, max: f32 },
    /// Values already in [−1, 1].
    F32(Vec<f32>),
}

/// A fully loaded image set (IDX, CIFAR-10, digits), `N × C × H × W`.
#[derive(Debug, Clone)]
pub struct ImageSet {
    shape: [usize; 3],
    pixels: Pixels,
    labels: Option<Vec<u32>>,
    num_classes: Option<usize>,
}

impl ImageSet {
    /// From integer intensities in `0..=max` (255 for 8-bit images, 16 for UCI digits).
    pub fn from_u8(
        shape: [usize; 3],
        data: Vec<u8>,
        max: u8,
        labels: Option<Vec<u32>>,
        num_classes: Option<usize>,
    ) -> Result<Self> {
        if max == 0 {
            return Err(ImageError::invalid("max", "must be > 0"));
        }
        Self::check(shape, data.len(), labels.as_deref(), num_classes)?;
        Ok(Self { shape, pixels: Pixels::U8 { data, max: max as f32 }, labels, num_classes })
    }

    /// From f32 values that must already lie in [−1, 1].
    pub fn from_f32(
        shape: [usize; 3],
        data: Vec<f32>,
        labels: Option<Vec<u32>>,
        num_classes: Option<usize>,
    ) -> Result<Self> {
        Self::check(shape, data.len(), labels.as_deref(), num_classes)?;
        if let Some(v) = data.iter().find(|v| !(-1.0..=1.0).contains(*v)) {
            return Err(ImageError::invalid("data", format!("value {v} outside [-1, 1]")));
        }
        Ok(Self { shape, pixels: Pixels::F32(data), labels, num_classes })
    }

    fn check(
        shape: [usize; 3],
        len: usize,
        labels: Option<&[u32]>,
        num_classes: Option<usize>,
    ) -> Result<()> {
        let per: usize = shape.iter().product();
        if per == 0 {
            return Err(ImageError::invalid("shape", format!("{shape:?} has a zero dimension")));
        }
        if !len.is_multiple_of(per) {
            return Err(ImageError::invalid("data", format!("{len} values is not a multiple of {per}")));
        }
        if let Some(l) = labels {
            if l.len() != len / per {
                return Err(ImageError::invalid(
                    "labels",
                    format!("{} labels for {} images", l.len(), len / per),
                ));
            }
            if let Some(k) = num_classes {
                if let Some(bad) = l.iter().find(|&&y| y as usize >= k) {
                    return Err(ImageError::invalid("labels", format!("label {bad} >= {k} classes")));
                }
            }
        }
        Ok(())
    }

    /// Keep only the images at `indices` (in that order).
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let per = self.per_image();
        let n = self.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(ImageError::OutOfRange { index: bad, len: n });
        }
        let pixels = match &self.pixels {
            Pixels::U8 { data, max } => Pixels::U8 {
                data: indices.iter().flat_map(|&i| data[i * per..(i + 1) * per].iter().copied()).collect(),
                max: *max,
            },
            Pixels::F32(data) => Pixels::F32(
                indices.iter().flat_map(|&i| data[i * per..(i + 1) * per].iter().copied()).collect(),
            ),
        };
        let labels = self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect());
        Ok(Self { shape: self.shape, pixels, labels, num_classes: self.num_classes })
    }

    fn per_image(&self) -> usize {
        self.shape.iter().product()
    }

    /// All labels, if labelled.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }
}

impl ImageDataset for ImageSet {
    fn len(&self) -> usize {
        let total = match &self.pixels {
            Pixels::U8 { data, .. } => data.len(),
            Pixels::F32(d) => d.len(),
        };
        total / self.per_image()
    }

    fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    fn get(&self, index: usize) -> Result<Vec<f32>> {
        let n = self.len();
        if index >= n {
            return Err(ImageError::OutOfRange { index, len: n });
        }
        let per = self.per_image();
        let range = index * per..(index + 1) * per;
        Ok(match &self.pixels {
            Pixels::U8 { data, max } => data[range].iter().map(|&v| 2.0 * v as f32 / max - 1.0).collect(),
            Pixels::F32(d) => d[range].to_vec(),
        })
    }

    fn label(&self, index: usize) -> Option<u32> {
        self.labels.as_ref().and_then(|l| l.get(index).copied())
    }

    fn num_classes(&self) -> Option<usize> {
        self.num_classes
    }
}
