//! `rediffuse data resize`: resample a .npy of images (super-resolution inputs and baselines).

use crate::args::{ResizeArgs, ResizeFilter};
use crate::io::prepare_output;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rediffuse_data::images::{bicubic_resize, bilinear_resize};
use rediffuse_data::npy::{read_npy_tensor, write_npy_tensor, NpyDtype};

/// `x` (`[N, C, H, W]`) resized to `size × size` with `filter`.
pub fn resize(x: &Tensor, size: usize, filter: ResizeFilter) -> Result<Tensor> {
    let (n, c, h, w) = match x.dims() {
        &[n, c, h, w] => (n, c, h, w),
        other => bail!("resize needs images N×C×H×W, got shape {other:?}"),
    };
    if size == 0 {
        bail!("--size must be >= 1");
    }
    if let ResizeFilter::Area = filter {
        if h != w || size > h || h % size != 0 {
            bail!("area resizing averages blocks: {size} must divide the input size {h}×{w}");
        }
        return Ok(rediffuse_core::superres::downsample_area(x, h / size)?);
    }
    let planes: Vec<f32> = x.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(n * c * size * size);
    for p in planes.chunks(h * w) {
        match filter {
            ResizeFilter::Bilinear => out.extend(bilinear_resize(p, h, w, size, size)),
            ResizeFilter::Bicubic => {
                out.extend(bicubic_resize(p, h, w, size, size).into_iter().map(|v| v.clamp(-1.0, 1.0)))
            }
            ResizeFilter::Area => unreachable!("handled above"),
        }
    }
    Ok(Tensor::from_vec(out, (n, c, size, size), x.device())?)
}

pub fn run(a: ResizeArgs) -> Result<()> {
    prepare_output(&a.out, a.force)?;
    let x =
        read_npy_tensor(&a.input, &Device::Cpu).with_context(|| format!("reading {}", a.input.display()))?;
    let y = resize(&x, a.size, a.filter)?;
    write_npy_tensor(&a.out, &y, NpyDtype::F32).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {:?} to {}", y.dims(), a.out.display());
    Ok(())
}
