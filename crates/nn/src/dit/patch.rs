//! Patchify / unpatchify by reshapes (no convolution).
//!
//! A patch's values are ordered `(channel, row in patch, column in patch)`, i.e. as a stride-`p`
//! convolution's weight `[D, C, p, p]` flattened, and tokens in row-major patch order.

use candle_core::{bail, Result, Tensor};

/// `[B, C, H, W]` → `[B, (H/p)·(W/p), C·p·p]`.
pub fn patchify(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if p == 0 || h % p != 0 || w % p != 0 {
        bail!("patchify: patch size {p} must divide the image size {h}×{w}");
    }
    let (gh, gw) = (h / p, w / p);
    x.reshape(vec![b, c, gh, p, gw, p])?.permute([0, 2, 4, 1, 3, 5])?.contiguous()?.reshape((
        b,
        gh * gw,
        c * p * p,
    ))
}

/// Inverse of [`patchify`]: `[B, gh·gw, C·p·p]` → `[B, C, gh·p, gw·p]`.
pub fn unpatchify(tokens: &Tensor, p: usize, gh: usize, gw: usize) -> Result<Tensor> {
    let (b, n, pd) = tokens.dims3()?;
    if p == 0 || n != gh * gw || pd % (p * p) != 0 {
        bail!("unpatchify: tokens {:?} do not fit a {gh}×{gw} grid of {p}×{p} patches", tokens.dims());
    }
    let c = pd / (p * p);
    tokens.reshape(vec![b, gh, gw, c, p, p])?.permute([0, 3, 1, 4, 2, 5])?.contiguous()?.reshape((
        b,
        c,
        gh * p,
        gw * p,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn patch_layout() {
        // 1×1×4×4 image with values 0..16, 2×2 patches
        let x = Tensor::arange(0f32, 16.0, &Device::Cpu).unwrap().reshape((1, 1, 4, 4)).unwrap();
        let t = patchify(&x, 2).unwrap();
        assert_eq!(t.dims(), &[1, 4, 4]);
        let v: Vec<Vec<f32>> = t.squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(v[0], [0.0, 1.0, 4.0, 5.0]);
        assert_eq!(v[1], [2.0, 3.0, 6.0, 7.0]);
        assert_eq!(v[3], [10.0, 11.0, 14.0, 15.0]);
        assert!(patchify(&x, 3).is_err());
    }
}
