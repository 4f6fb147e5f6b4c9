//! Linear layer `y = x·Wᵀ + b` over the last dimension, straight on `gemm`, with a fused
//! backward (`dx = dy·W`, `dW = dyᵀ·x`, `db = Σ_rows dy`).

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::{output, slice, unpack};
use super::sgemm::{sgemm, Mat};
use super::threads::gemm_parallelism;

/// `(rows, in, out)` of a linear call with input dims `x` and weight dims `w`.
fn geom(x: &[usize], w: &[usize]) -> Result<(usize, usize, usize)> {
    let (&fin, lead) = match x.split_last() {
        Some(v) => v,
        None => bail!("linear: input must have at least one dimension"),
    };
    match w {
        &[out, win] if win == fin => Ok((lead.iter().product(), fin, out)),
        _ => bail!("linear: weight {w:?} does not match input {x:?} (expected [out, {fin}])"),
    }
}

fn out_shape(x: &[usize], out: usize) -> Shape {
    let mut d = x.to_vec();
    if let Some(last) = d.last_mut() {
        *last = out;
    }
    Shape::from(d)
}

fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, m: usize, fin: usize, fout: usize) -> Vec<f32> {
    let mut y = vec![0f32; m * fout];
    if let Some(b) = b {
        for row in y.chunks_exact_mut(fout.max(1)) {
            row.copy_from_slice(b);
        }
    }
    sgemm(
        m,
        fout,
        fin,
        &mut y,
        fout,
        b.is_some(),
        Mat::rows(x, fin),
        Mat::rows_t(w, fin),
        gemm_parallelism(),
    );
    y
}

/// Linear without bias on (x, w).
pub(crate) struct Linear;
/// Linear with bias on (x, w, b).
pub(crate) struct LinearBias;
/// Backward on (x, w, dy) → packed `[dx?, dw?, db?]`.
struct LinearBackward {
    want: [bool; 3],
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "rediffuse-linear"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::profile::timed("rediffuse-linear", || {
            let (m, fin, fout) = geom(l1.dims(), l2.dims())?;
            let y = forward(slice(s1, l1, "linear")?, slice(s2, l2, "linear")?, None, m, fin, fout);
            Ok(output(y, out_shape(l1.dims(), fout)))
        })
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = backward(x, w, dy, [x.track_op(), w.track_op(), false])?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        "rediffuse-linear-bias"
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
        super::profile::timed("rediffuse-linear-bias", || {
            let (m, fin, fout) = geom(l1.dims(), l2.dims())?;
            if l3.dims() != [fout] {
                bail!("linear: bias {:?} must be [{fout}]", l3.dims());
            }
            let b = slice(s3, l3, "linear")?;
            let y = forward(slice(s1, l1, "linear")?, slice(s2, l2, "linear")?, Some(b), m, fin, fout);
            Ok(output(y, out_shape(l1.dims(), fout)))
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
        backward(x, w, dy, [x.track_op(), w.track_op(), b.track_op()])
    }
}

impl CustomOp3 for LinearBackward {
    fn name(&self) -> &'static str {
        "rediffuse-linear-backward"
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
        super::profile::timed("rediffuse-linear-backward", || {
            let (m, fin, fout) = geom(l1.dims(), l2.dims())?;
            if l3.dims().iter().product::<usize>() != m * fout {
                bail!("linear backward: gradient {:?} does not match output", l3.dims());
            }
            let (x, w, dy) = (slice(s1, l1, "linear")?, slice(s2, l2, "linear")?, slice(s3, l3, "linear")?);
            let [want_dx, want_dw, want_db] = self.want;
            let n_dx = if want_dx { m * fin } else { 0 };
            let n_dw = if want_dw { fout * fin } else { 0 };
            let mut out = vec![0f32; n_dx + n_dw + if want_db { fout } else { 0 }];
            let (dx, rest) = out.split_at_mut(n_dx);
            let (dw, db) = rest.split_at_mut(n_dw);
            let par = gemm_parallelism();
            if want_dx {
                sgemm(m, fin, fout, dx, fin, false, Mat::rows(dy, fout), Mat::rows(w, fin), par);
            }
            if want_dw {
                sgemm(fout, fin, m, dw, fin, false, Mat::rows_t(dy, fout), Mat::rows(x, fin), par);
            }
            if want_db {
                for row in dy.chunks_exact(fout.max(1)) {
                    super::simd::add_assign(db, row);
                }
            }
            let n = out.len();
            Ok(output(out, n))
        })
    }
}

type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

fn backward(x: &Tensor, w: &Tensor, dy: &Tensor, want: [bool; 3]) -> Result<Grads3> {
    if !want.iter().any(|&b| b) {
        return Ok((None, None, None));
    }
    let (x, w, dy) = (x.contiguous()?, w.contiguous()?, dy.contiguous()?);
    let packed = x.apply_op3_no_bwd(&w, &dy, &LinearBackward { want })?;
    let fout = w.dim(0)?;
    let bias_dims = [fout];
    let shapes =
        [want[0].then_some(x.dims()), want[1].then_some(w.dims()), want[2].then_some(&bias_dims[..])];
    let mut g = unpack(&packed, &shapes)?.into_iter();
    Ok((g.next().flatten(), g.next().flatten(), g.next().flatten()))
}
