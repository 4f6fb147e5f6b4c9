//! Convolution as candle custom ops: `Conv2d` (x, w) and `Conv2dBias` (x, w, b), whose
//! backward is one fused custom op computing the requested input/weight/bias gradients.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::conv_kernels::{conv_backward, conv_forward, ConvGeom, ConvGrads};
use super::cpu::{output, slice, unpack};

fn geom(x: &Layout, w: &Layout, stride: usize, pad: usize) -> Result<ConvGeom> {
    ConvGeom::new(x.dims(), w.dims(), stride, pad).map_err(candle_core::Error::msg)
}

/// Convolution without bias.
pub(crate) struct Conv2d {
    pub stride: usize,
    pub pad: usize,
}

/// Convolution with a per-output-channel bias.
pub(crate) struct Conv2dBias {
    pub stride: usize,
    pub pad: usize,
}

/// The fused backward: inputs (x, w, dy), output the packed gradients `want` asks for.
struct Conv2dBackward {
    stride: usize,
    pad: usize,
    want: ConvGrads,
}

fn out_shape(g: &ConvGeom) -> Shape {
    Shape::from((g.b, g.cout, g.ho, g.wo))
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "rediffuse-conv2d"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-conv2d", || {
            let g = geom(l1, l2, self.stride, self.pad)?;
            let y = conv_forward(slice(s1, l1, "conv2d")?, slice(s2, l2, "conv2d")?, None, &g);
            Ok(output(y, out_shape(&g)))
        })
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let want = ConvGrads { dx: x.track_op(), dw: w.track_op(), db: false };
        let g = backward(x, w, dy, self.stride, self.pad, want)?;
        Ok((g.0, g.1))
    }
}

impl CustomOp3 for Conv2dBias {
    fn name(&self) -> &'static str {
        "rediffuse-conv2d-bias"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-conv2d-bias", || {
            let g = geom(l1, l2, self.stride, self.pad)?;
            if l3.dims() != [g.cout] {
                candle_core::bail!(
                    "conv2d: bias shape {:?} does not match {} output channels",
                    l3.dims(),
                    g.cout
                );
            }
            let bias = slice(s3, l3, "conv2d")?;
            let y = conv_forward(slice(s1, l1, "conv2d")?, slice(s2, l2, "conv2d")?, Some(bias), &g);
            Ok(output(y, out_shape(&g)))
        })
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let want = ConvGrads { dx: x.track_op(), dw: w.track_op(), db: b.track_op() };
        backward(x, w, dy, self.stride, self.pad, want)
    }
}

impl CustomOp3 for Conv2dBackward {
    fn name(&self) -> &'static str {
        "rediffuse-conv2d-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-conv2d-backward", || {
            let g = geom(l1, l2, self.stride, self.pad)?;
            if l3.dims() != [g.b, g.cout, g.ho, g.wo] {
                candle_core::bail!("conv2d backward: gradient shape {:?} does not match output", l3.dims());
            }
            let (x, w, dy) = (slice(s1, l1, "conv2d")?, slice(s2, l2, "conv2d")?, slice(s3, l3, "conv2d")?);
            let packed = conv_backward(x, w, dy, &g, self.want);
            let n = packed.len();
            Ok(output(packed, n))
        })
    }
}

type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

fn backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    stride: usize,
    pad: usize,
    want: ConvGrads,
) -> Result<Grads3> {
    if !(want.dx || want.dw || want.db) {
        return Ok((None, None, None));
    }
    let (x, w, dy) = (x.contiguous()?, w.contiguous()?, dy.contiguous()?);
    let packed = x.apply_op3_no_bwd(&w, &dy, &Conv2dBackward { stride, pad, want })?;
    let cout = w.dim(0)?;
    let bias_dims = [cout];
    let shapes =
        [want.dx.then_some(x.dims()), want.dw.then_some(w.dims()), want.db.then_some(&bias_dims[..])];
    let mut g = unpack(&packed, &shapes)?.into_iter();
    Ok((g.next().flatten(), g.next().flatten(), g.next().flatten()))
}
