//! Layers of the FID Inception-v3: conv + folded BatchNorm + ReLU, pooling variants and the
//! Mixed blocks (pytorch-fid `FIDInceptionA/C/E_1/E_2`, torchvision `InceptionB/D`).

use super::super::error::{FeatureError, Result};
use candle_core::{DType, Device, Tensor, D};
use std::collections::HashMap;

/// `relu(conv(x, W') + b')` with BatchNorm folded into `W'`, `b'`.
#[derive(Debug, Clone)]
pub(crate) struct ConvBn {
    pub weight: Tensor,
    /// `[1, out, 1, 1]`.
    pub bias: Tensor,
    pub stride: usize,
    pub padding: (usize, usize),
}

impl ConvBn {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (ph, pw) = self.padding;
        let y = if ph == pw {
            x.conv2d(&self.weight, ph, self.stride, 1, 1)?
        } else {
            x.pad_with_zeros(2, ph, ph)?.pad_with_zeros(3, pw, pw)?.conv2d(
                &self.weight,
                0,
                self.stride,
                1,
                1,
            )?
        };
        Ok(y.broadcast_add(&self.bias)?.relu()?)
    }
}

/// Named conv layers, taken out one by one while the blocks are assembled.
pub(crate) struct ConvStore(pub HashMap<String, ConvBn>);

impl ConvStore {
    pub fn take(&mut self, name: &str) -> Result<ConvBn> {
        self.0.remove(name).ok_or_else(|| FeatureError::Shape(format!("missing layer {name}")))
    }
}

/// 3×3 max pooling with stride 2, no padding (`nn.MaxPool2d(3, stride=2)`).
pub(crate) fn max_pool_3s2(x: &Tensor) -> Result<Tensor> {
    Ok(x.max_pool2d_with_stride((3, 3), (2, 2))?)
}

/// 3×3, stride 1, padding 1 average pooling that ignores the padded zeros
/// (`F.avg_pool2d(..., count_include_pad=False)`, the TensorFlow behaviour).
pub(crate) fn avg_pool_3s1_exclude_pad(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let sum9 = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.avg_pool2d_with_stride((3, 3), (1, 1))?;
    // Number of in-image rows (columns) in the window [i − 1, i + 1].
    let valid = |i: usize, n: usize| (i + 1).min(n - 1) + 1 - i.saturating_sub(1);
    let mut scale = Vec::with_capacity(h * w);
    for i in 0..h {
        for j in 0..w {
            scale.push(9.0f32 / (valid(i, h) * valid(j, w)) as f32);
        }
    }
    let scale = Tensor::from_vec(scale, (1, 1, h, w), x.device())?.to_dtype(x.dtype())?;
    Ok(sum9.broadcast_mul(&scale)?)
}

/// 3×3, stride 1, padding 1 max pooling (`F.max_pool2d(x, 3, 1, 1)`). Replicating the edge
/// is exact: each window already contains the element that is copied into its padding.
pub(crate) fn max_pool_3s1_pad1(x: &Tensor) -> Result<Tensor> {
    Ok(x.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?.max_pool2d_with_stride((3, 3), (1, 1))?)
}

/// `FIDInceptionA`.
pub(crate) struct BlockA {
    b1x1: ConvBn,
    b5x5: [ConvBn; 2],
    b3x3dbl: [ConvBn; 3],
    pool: ConvBn,
}

impl BlockA {
    pub fn new(s: &mut ConvStore, p: &str) -> Result<Self> {
        Ok(Self {
            b1x1: s.take(&format!("{p}.branch1x1"))?,
            b5x5: [s.take(&format!("{p}.branch5x5_1"))?, s.take(&format!("{p}.branch5x5_2"))?],
            b3x3dbl: [
                s.take(&format!("{p}.branch3x3dbl_1"))?,
                s.take(&format!("{p}.branch3x3dbl_2"))?,
                s.take(&format!("{p}.branch3x3dbl_3"))?,
            ],
            pool: s.take(&format!("{p}.branch_pool"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.b1x1.forward(x)?;
        let b = chain(&self.b5x5, x)?;
        let c = chain(&self.b3x3dbl, x)?;
        let d = self.pool.forward(&avg_pool_3s1_exclude_pad(x)?)?;
        Ok(Tensor::cat(&[a, b, c, d], 1)?)
    }
}

/// torchvision `InceptionB` (`Mixed_6a`).
pub(crate) struct BlockB {
    b3x3: ConvBn,
    b3x3dbl: [ConvBn; 3],
}

impl BlockB {
    pub fn new(s: &mut ConvStore, p: &str) -> Result<Self> {
        Ok(Self {
            b3x3: s.take(&format!("{p}.branch3x3"))?,
            b3x3dbl: [
                s.take(&format!("{p}.branch3x3dbl_1"))?,
                s.take(&format!("{p}.branch3x3dbl_2"))?,
                s.take(&format!("{p}.branch3x3dbl_3"))?,
            ],
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.b3x3.forward(x)?;
        let b = chain(&self.b3x3dbl, x)?;
        let c = max_pool_3s2(x)?;
        Ok(Tensor::cat(&[a, b, c], 1)?)
    }
}

/// `FIDInceptionC`.
pub(crate) struct BlockC {
    b1x1: ConvBn,
    b7x7: [ConvBn; 3],
    b7x7dbl: [ConvBn; 5],
    pool: ConvBn,
}

impl BlockC {
    pub fn new(s: &mut ConvStore, p: &str) -> Result<Self> {
        let mut t = |n: &str| s.take(&format!("{p}.{n}"));
        Ok(Self {
            b1x1: t("branch1x1")?,
            b7x7: [t("branch7x7_1")?, t("branch7x7_2")?, t("branch7x7_3")?],
            b7x7dbl: [
                t("branch7x7dbl_1")?,
                t("branch7x7dbl_2")?,
                t("branch7x7dbl_3")?,
                t("branch7x7dbl_4")?,
                t("branch7x7dbl_5")?,
            ],
            pool: t("branch_pool")?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.b1x1.forward(x)?;
        let b = chain(&self.b7x7, x)?;
        let c = chain(&self.b7x7dbl, x)?;
        let d = self.pool.forward(&avg_pool_3s1_exclude_pad(x)?)?;
        Ok(Tensor::cat(&[a, b, c, d], 1)?)
    }
}

/// torchvision `InceptionD` (`Mixed_7a`).
pub(crate) struct BlockD {
    b3x3: [ConvBn; 2],
    b7x7x3: [ConvBn; 4],
}

impl BlockD {
    pub fn new(s: &mut ConvStore, p: &str) -> Result<Self> {
        let mut t = |n: &str| s.take(&format!("{p}.{n}"));
        Ok(Self {
            b3x3: [t("branch3x3_1")?, t("branch3x3_2")?],
            b7x7x3: [t("branch7x7x3_1")?, t("branch7x7x3_2")?, t("branch7x7x3_3")?, t("branch7x7x3_4")?],
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = chain(&self.b3x3, x)?;
        let b = chain(&self.b7x7x3, x)?;
        let c = max_pool_3s2(x)?;
        Ok(Tensor::cat(&[a, b, c], 1)?)
    }
}

/// Pool branch of an InceptionE block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EPool {
    /// `FIDInceptionE_1`: average pooling without the padded zeros.
    AvgExcludePad,
    /// `FIDInceptionE_2`: max pooling (as in the TensorFlow FID graph).
    Max,
}

/// `FIDInceptionE_1` / `FIDInceptionE_2`.
pub(crate) struct BlockE {
    b1x1: ConvBn,
    b3x3_1: ConvBn,
    b3x3_2: [ConvBn; 2],
    b3x3dbl_12: [ConvBn; 2],
    b3x3dbl_3: [ConvBn; 2],
    pool: ConvBn,
    pool_kind: EPool,
}

impl BlockE {
    pub fn new(s: &mut ConvStore, p: &str, pool_kind: EPool) -> Result<Self> {
        let mut t = |n: &str| s.take(&format!("{p}.{n}"));
        Ok(Self {
            b1x1: t("branch1x1")?,
            b3x3_1: t("branch3x3_1")?,
            b3x3_2: [t("branch3x3_2a")?, t("branch3x3_2b")?],
            b3x3dbl_12: [t("branch3x3dbl_1")?, t("branch3x3dbl_2")?],
            b3x3dbl_3: [t("branch3x3dbl_3a")?, t("branch3x3dbl_3b")?],
            pool: t("branch_pool")?,
            pool_kind,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.b1x1.forward(x)?;
        let h = self.b3x3_1.forward(x)?;
        let b = Tensor::cat(&[self.b3x3_2[0].forward(&h)?, self.b3x3_2[1].forward(&h)?], 1)?;
        let h = chain(&self.b3x3dbl_12, x)?;
        let c = Tensor::cat(&[self.b3x3dbl_3[0].forward(&h)?, self.b3x3dbl_3[1].forward(&h)?], 1)?;
        let pooled = match self.pool_kind {
            EPool::AvgExcludePad => avg_pool_3s1_exclude_pad(x)?,
            EPool::Max => max_pool_3s1_pad1(x)?,
        };
        let d = self.pool.forward(&pooled)?;
        Ok(Tensor::cat(&[a, b, c, d], 1)?)
    }
}

fn chain(layers: &[ConvBn], x: &Tensor) -> Result<Tensor> {
    let mut h = layers[0].forward(x)?;
    for l in &layers[1..] {
        h = l.forward(&h)?;
    }
    Ok(h)
}

/// Bilinear interpolation matrix `[out, in]` of `F.interpolate(mode="bilinear",
/// align_corners=False)` along one axis: source coordinate `(dst + 0.5)·in/out − 0.5`
/// clamped at 0, computed in f32 like PyTorch's CPU kernel.
pub(crate) fn bilinear_matrix(input: usize, output: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; output * input];
    let scale = input as f32 / output as f32;
    for dst in 0..output {
        let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f32;
        let l0 = 1.0 - l1;
        m[dst * input + i0] += l0;
        m[dst * input + i1] += l1;
    }
    m
}

/// Resize `[N, C, H, W]` to `[N, C, out, out]` with [`bilinear_matrix`] along both axes.
pub(crate) fn resize_bilinear(x: &Tensor, out: usize, device: &Device) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h == 0 || w == 0 {
        return Err(FeatureError::Shape(format!("cannot resize an empty {h}x{w} image")));
    }
    let rh = Tensor::from_vec(bilinear_matrix(h, out), (out, h), device)?.to_dtype(DType::F32)?;
    let rw_t = Tensor::from_vec(bilinear_matrix(w, out), (out, w), device)?.t()?.contiguous()?;
    let y = x.broadcast_matmul(&rw_t)?; // [N, C, H, out]
    Ok(rh.broadcast_matmul(&y)?.contiguous()?) // [N, C, out, out]
}

/// Global average over the spatial dimensions: `[N, C, H, W] -> [N, C]`.
pub(crate) fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    Ok(x.mean(D::Minus1)?.mean(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matrix_matches_pytorch_formula() {
        // Upsampling 2 -> 4 (align_corners=False): src = (dst + 0.5)/2 − 0.5
        // = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (i0 = 1 is the last row: weight 1).
        let m = bilinear_matrix(2, 4);
        let expect = [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0];
        assert_eq!(m, expect);
        // Identity when sizes agree; downsampling 4 -> 2 averages pairs.
        let id = bilinear_matrix(3, 3);
        assert_eq!(id, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(bilinear_matrix(4, 2), [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]);
    }

    #[test]
    fn avg_pool_excludes_padding() {
        let x = Tensor::arange(0f32, 12f32, &Device::Cpu).unwrap().reshape((1, 1, 3, 4)).unwrap();
        let y = avg_pool_3s1_exclude_pad(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Corner (0,0): mean of {0,1,4,5} = 2.5; edge (0,1): mean of {0,1,2,4,5,6} = 3;
        // centre (1,1): mean of 0..=2, 4..=6, 8..=10 = 5.
        assert!((y[0] - 2.5).abs() < 1e-6 && (y[1] - 3.0).abs() < 1e-6 && (y[5] - 5.0).abs() < 1e-6);
        assert!((y[11] - 8.5).abs() < 1e-6); // corner (2,3): {6,7,10,11}
    }

    #[test]
    fn max_pool_pad1_uses_only_image_values() {
        let x = Tensor::new(&[[[[-5f32, -4.0], [-3.0, -2.0]]]], &Device::Cpu).unwrap();
        let y = max_pool_3s1_pad1(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, [-2.0, -2.0, -2.0, -2.0]);
    }
}
