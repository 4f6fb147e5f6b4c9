//! Glue between candle's CPU storage and the plain-slice kernels.

use candle_core::{bail, CpuStorage, Device, Layout, Result, Shape, Tensor};

/// The contiguous f32 data of `storage` described by `layout`.
pub(crate) fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        _ => bail!("{op}: expected f32 storage"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input is not contiguous"),
    }
}

/// Wraps an output vector as f32 CPU storage with the given shape.
pub(crate) fn output<S: Into<Shape>>(data: Vec<f32>, shape: S) -> (CpuStorage, Shape) {
    (CpuStorage::F32(data), shape.into())
}

/// Whether the fast CPU kernels apply to every tensor in `ts` (CPU device, f32).
pub(crate) fn fast_path(ts: &[&Tensor]) -> bool {
    if super::REFERENCE_ONLY.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let fast = ts.iter().all(|t| matches!(t.device(), Device::Cpu) && t.dtype() == candle_core::DType::F32);
    if fast {
        super::alloc::tune();
    }
    fast
}

/// Splits a packed 1-D gradient buffer into tensors of the given shapes
/// (an entry `None` skips nothing and yields `None`; sizes are consumed in order).
pub(crate) fn unpack(packed: &Tensor, shapes: &[Option<&[usize]>]) -> Result<Vec<Option<Tensor>>> {
    let mut offset = 0;
    let mut out = Vec::with_capacity(shapes.len());
    for s in shapes {
        match s {
            Some(dims) => {
                let n: usize = dims.iter().product();
                out.push(Some(packed.narrow(0, offset, n)?.reshape(*dims)?));
                offset += n;
            }
            None => out.push(None),
        }
    }
    Ok(out)
}
