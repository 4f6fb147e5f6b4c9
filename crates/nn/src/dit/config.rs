//! Configuration of the Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion Models
//! with Transformers"; seed 002 § DiT).

use crate::error::NnError;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [`super::Dit`].
///
/// Images `[channels, image_size, image_size]` are cut into `(image_size / patch_size)²`
/// patches of `patch_size × patch_size` pixels, each embedded linearly to `width` values;
/// `depth` adaLN-Zero transformer blocks with `num_heads`-head self-attention and an MLP of
/// `mlp_ratio · width` hidden units follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DitConfig {
    /// Side length of the (square) training images.
    pub image_size: usize,
    /// Channels of the images (input and prediction, before `learn_sigma` doubling).
    pub channels: usize,
    /// Side of the square patches; must divide `image_size`.
    pub patch_size: usize,
    /// Token width (hidden size); divisible by `num_heads` and by 4 (2-D sin-cos positions).
    pub width: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads; must divide `width`.
    pub num_heads: usize,
    /// Hidden units of each block's MLP, in multiples of `width` (DiT: 4).
    pub mlp_ratio: usize,
    /// Dimension of the sinusoidal timestep embedding fed to the time MLP (>= 2).
    pub time_embed_dim: usize,
    /// Number of classes for class conditioning; the embedding table has `num_classes + 1`
    /// rows, the last one (index `num_classes`) being the "null" label of classifier-free
    /// guidance.
    pub num_classes: Option<usize>,
    /// Output `2 * channels` channels (the prediction and iDDPM's variance interpolation v).
    pub learn_sigma: bool,
    /// LayerNorm epsilon (DiT: 1e-6).
    pub norm_eps: f64,
}

impl Default for DitConfig {
    fn default() -> Self {
        Self::digits()
    }
}

impl DitConfig {
    /// 8×8 UCI digits (1 channel): 2×2 patches (16 tokens), width 96, 4 blocks of 4 heads:
    /// 704,356 parameters.
    pub fn digits() -> Self {
        Self {
            image_size: 8,
            channels: 1,
            patch_size: 2,
            width: 96,
            depth: 4,
            num_heads: 4,
            mlp_ratio: 4,
            time_embed_dim: 64,
            num_classes: None,
            learn_sigma: false,
            norm_eps: 1e-6,
        }
    }

    /// MNIST 1×28×28: 4×4 patches (49 tokens), width 128, 3 blocks of 4 heads: 952,592 parameters.
    pub fn mnist() -> Self {
        Self { image_size: 28, patch_size: 4, width: 128, depth: 3, ..Self::digits() }
    }

    /// Patches per side.
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Number of tokens (patches).
    pub fn num_tokens(&self) -> usize {
        self.grid_size() * self.grid_size()
    }

    /// Values of one input patch, `channels · patch_size²`.
    pub fn patch_dim(&self) -> usize {
        self.channels * self.patch_size * self.patch_size
    }

    /// Channels of the network's output (doubled with `learn_sigma`).
    pub fn output_channels(&self) -> usize {
        self.channels * if self.learn_sigma { 2 } else { 1 }
    }

    /// Hidden units of each block's MLP.
    pub fn mlp_hidden(&self) -> usize {
        self.mlp_ratio * self.width
    }

    /// Shape of one sample `[channels, image_size, image_size]`.
    pub fn sample_shape(&self) -> Vec<usize> {
        vec![self.channels, self.image_size, self.image_size]
    }

    /// Number of trainable scalars, in closed form (D = width, M = mlp_hidden, P = patch_dim,
    /// O = patch_size²·output_channels, E = time_embed_dim, K = num_classes, L = depth):
    /// `E·D + D + D² + D` (time MLP) `+ (K + 1)·D` (class table) `+ P·D + D` (patch embedding)
    /// `+ L·(6D² + 6D + 3D² + 3D + D² + D + D·M + M + M·D + D)` (blocks: adaLN, qkv, proj, fc1, fc2)
    /// `+ 2D² + 2D + D·O + O` (final layer).
    pub fn param_count(&self) -> usize {
        let (d, m, p, e, l) =
            (self.width, self.mlp_hidden(), self.patch_dim(), self.time_embed_dim, self.depth);
        let o = self.patch_size * self.patch_size * self.output_channels();
        let time = e * d + d + d * d + d;
        let classes = self.num_classes.map_or(0, |k| (k + 1) * d);
        let patch = p * d + d;
        let block = 6 * d * d + 6 * d + 3 * d * d + 3 * d + d * d + d + d * m + m + m * d + d;
        let last = 2 * d * d + 2 * d + d * o + o;
        time + classes + patch + l * block + last
    }

    /// Check ranges and divisibility; the error names the offending field.
    pub fn validate(&self) -> Result<(), NnError> {
        let positive = [
            ("image_size", self.image_size),
            ("channels", self.channels),
            ("patch_size", self.patch_size),
            ("width", self.width),
            ("depth", self.depth),
            ("num_heads", self.num_heads),
            ("mlp_ratio", self.mlp_ratio),
            ("time_embed_dim", self.time_embed_dim),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(NnError::invalid(name, "must be > 0"));
            }
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(NnError::invalid(
                "patch_size",
                format!("{} does not divide image_size {}", self.patch_size, self.image_size),
            ));
        }
        if !self.width.is_multiple_of(self.num_heads) {
            return Err(NnError::invalid(
                "num_heads",
                format!("{} heads do not divide width {}", self.num_heads, self.width),
            ));
        }
        if !self.width.is_multiple_of(4) {
            return Err(NnError::invalid(
                "width",
                format!("must be divisible by 4 (2-D sin-cos positional embedding), got {}", self.width),
            ));
        }
        if self.time_embed_dim < 2 {
            return Err(NnError::invalid(
                "time_embed_dim",
                format!("must be >= 2, got {}", self.time_embed_dim),
            ));
        }
        if self.num_classes == Some(0) {
            return Err(NnError::invalid("num_classes", "must be > 0 when given"));
        }
        if !self.norm_eps.is_finite() || self.norm_eps <= 0.0 {
            return Err(NnError::invalid("norm_eps", format!("must be > 0, got {}", self.norm_eps)));
        }
        Ok(())
    }

    /// Data samples must have the shape [`DitConfig::sample_shape`].
    pub fn check_data_shape(&self, sample_shape: &[usize]) -> Result<(), NnError> {
        let want = self.sample_shape();
        if sample_shape != want.as_slice() {
            return Err(NnError::DataShape {
                got: sample_shape.to_vec(),
                reason: format!("the DiT generates samples of shape {want:?}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for c in [DitConfig::digits(), DitConfig::mnist()] {
            c.validate().unwrap();
        }
        assert_eq!(DitConfig::mnist().num_tokens(), 49);
        assert_eq!(DitConfig::digits().num_tokens(), 16);
    }

    #[test]
    fn serde_fills_defaults_and_rejects_unknown_fields() {
        let c: DitConfig = serde_json::from_str(r#"{"width": 64, "depth": 2}"#).unwrap();
        assert_eq!(c, DitConfig { width: 64, depth: 2, ..DitConfig::digits() });
        assert!(serde_json::from_str::<DitConfig>(r#"{"hidden": 64}"#).is_err());
    }
}
