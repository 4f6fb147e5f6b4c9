//! The interface every trainable diffusion network implements.

use candle_core::{DType, Device, Result, Tensor};

/// A network f_θ(x_t, t) (optionally class-conditioned) whose output has the
/// shape of `x_t` (or twice its channels for learned-variance models).
///
/// * `x_t`: `[B, …]` f32; `t`: `[B]` f32 model time (timestep index for DDPM models).
/// * `train`: dropout and other train-only behaviour on.
pub trait DiffusionNet: Send + Sync {
    fn forward(&self, x_t: &Tensor, t: &Tensor, train: bool) -> Result<Tensor>;

    /// f_θ(x_t, t, y) with class labels `labels` (`[B]` u32 in `0..=num_classes`, the last index
    /// being the "null" label of classifier-free guidance). `None` on a class-conditional network
    /// means the null label; labels on an unconditional network are an error (the default).
    fn forward_with_labels(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        match labels {
            None => self.forward(x_t, t, train),
            Some(_) => candle_core::bail!("class labels given to a network that is not class-conditional"),
        }
    }

    /// Number of classes of a class-conditional network (`None`: unconditional).
    fn num_classes(&self) -> Option<usize> {
        None
    }
}

/// The label indices `[B]` (u32) a class-conditional network embeds: `labels` checked to be an
/// integer tensor of shape `[b]` with values in `0..=num_classes`, or the null label
/// `num_classes` for every row when `labels` is `None`.
pub fn label_indices(labels: Option<&Tensor>, num_classes: usize, b: usize, dev: &Device) -> Result<Tensor> {
    let n = num_classes;
    match labels {
        None => Tensor::from_vec(vec![n as u32; b], b, dev),
        Some(l) => {
            if l.dims() != [b] {
                candle_core::bail!("labels must have shape [{b}], got {:?}", l.dims());
            }
            let l = match l.dtype() {
                DType::F32 | DType::F64 | DType::F16 | DType::BF16 => {
                    candle_core::bail!("labels must be an integer tensor, got {:?}", l.dtype())
                }
                _ => l.to_dtype(DType::I64)?,
            };
            let v = l.to_vec1::<i64>()?;
            if let Some(bad) = v.iter().find(|&&y| y < 0 || y as usize > n) {
                candle_core::bail!("label {bad} out of range 0..={n} ({n} = null label)");
            }
            Tensor::from_vec(v.iter().map(|&y| y as u32).collect::<Vec<_>>(), b, dev)
        }
    }
}

/// A super-resolution network with the conditioning of one training batch:
/// `forward(x_t, t) = net.forward([x_t, cond], t)` (`rediffuse_core::superres`), so the
/// objectives train it as any network of the data's shape.
pub struct ConditionedNet<'a> {
    pub net: &'a dyn DiffusionNet,
    /// `[B, C + 1, H, W]` (`rediffuse_core::superres::augment_condition`).
    pub cond: Tensor,
}

impl ConditionedNet<'_> {
    fn input(&self, x_t: &Tensor) -> Result<Tensor> {
        rediffuse_core::superres::concat_condition(x_t, &self.cond)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

impl DiffusionNet for ConditionedNet<'_> {
    fn forward(&self, x_t: &Tensor, t: &Tensor, train: bool) -> Result<Tensor> {
        self.net.forward(&self.input(x_t)?, t, train)
    }
    fn forward_with_labels(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        labels: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        self.net.forward_with_labels(&self.input(x_t)?, t, labels, train)
    }
    fn num_classes(&self) -> Option<usize> {
        self.net.num_classes()
    }
}
