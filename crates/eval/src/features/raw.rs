//! `RawFeatures`: the flattened image values themselves (for low-dimensional data and tests).

use super::error::{FeatureError, Result};
use super::FeatureExtractor;
use candle_core::{DType, Tensor};

/// Features = flattened `[C, H, W]` values, `dim = C·H·W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFeatures {
    shape: [usize; 3],
}

impl RawFeatures {
    /// Extractor for images of shape `[channels, height, width]` (all >= 1).
    pub fn new(channels: usize, height: usize, width: usize) -> Result<Self> {
        if channels == 0 || height == 0 || width == 0 {
            return Err(FeatureError::invalid(
                "image shape",
                format!("{channels}x{height}x{width} has a zero side"),
            ));
        }
        Ok(Self { shape: [channels, height, width] })
    }
}

impl FeatureExtractor for RawFeatures {
    fn id(&self) -> String {
        let [c, h, w] = self.shape;
        format!("raw:{c}x{h}x{w}")
    }

    fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    fn features(&self, images: &Tensor) -> Result<Tensor> {
        let dims = images.dims();
        if dims.len() != 4 || dims[1..] != self.shape {
            return Err(FeatureError::Shape(format!(
                "raw features expect [N, {:?}], got {dims:?}",
                self.shape
            )));
        }
        Ok(images.to_dtype(DType::F32)?.reshape((dims[0], self.dim()))?)
    }
}
