//! Parameter creation (with recorded names and initialisers) and the basic layers
//! of the U-Net, all running on the functions of [`crate::ops`].

use crate::ops;
use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};
use std::cell::RefCell;
use std::rc::Rc;

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamInit {
    /// U(−bound, bound); `bound = 1/sqrt(fan_in)` is PyTorch's default for conv/linear layers.
    Uniform { bound: f64 },
    /// N(0, std²).
    Normal { std: f64 },
    /// A constant.
    Const(f64),
}

impl ParamInit {
    fn to_candle(self) -> Init {
        match self {
            ParamInit::Uniform { bound } => Init::Uniform { lo: -bound, up: bound },
            ParamInit::Normal { std } => Init::Randn { mean: 0.0, stdev: std },
            ParamInit::Const(c) => Init::Const(c),
        }
    }
}

/// One parameter of a network: full dotted name, shape and initialiser.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: ParamInit,
}

impl ParamSpec {
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A `VarBuilder` that also records every parameter it hands out.
#[derive(Clone)]
pub(crate) struct Builder<'a> {
    vb: VarBuilder<'a>,
    path: Vec<String>,
    log: Rc<RefCell<Vec<ParamSpec>>>,
}

impl<'a> Builder<'a> {
    pub fn new(vb: VarBuilder<'a>) -> Self {
        Self { vb, path: Vec::new(), log: Rc::new(RefCell::new(Vec::new())) }
    }

    pub fn pp(&self, s: impl ToString) -> Self {
        let s = s.to_string();
        let mut path = self.path.clone();
        path.push(s.clone());
        Self { vb: self.vb.pp(s), path, log: self.log.clone() }
    }

    pub fn get(&self, shape: &[usize], name: &str, init: ParamInit) -> Result<Tensor> {
        let t = self.vb.get_with_hints(shape, name, init.to_candle())?;
        let mut full = self.path.clone();
        full.push(name.to_string());
        self.log.borrow_mut().push(ParamSpec { name: full.join("."), shape: shape.to_vec(), init });
        Ok(t)
    }

    pub fn into_log(self) -> Vec<ParamSpec> {
        self.log.borrow().clone()
    }
}

fn fan_in_bound(fan_in: usize) -> ParamInit {
    ParamInit::Uniform { bound: 1.0 / (fan_in as f64).sqrt() }
}

fn weight_init(fan_in: usize, zero: bool) -> ParamInit {
    if zero {
        ParamInit::Const(0.0)
    } else {
        fan_in_bound(fan_in)
    }
}

/// Square-kernel 2-D convolution with bias (`weight`, `bias`).
#[derive(Debug, Clone)]
pub(crate) struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    pub fn new(
        b: &Builder,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        zero: bool,
    ) -> Result<Self> {
        let fan_in = cin * k * k;
        let weight = b.get(&[cout, cin, k, k], "weight", weight_init(fan_in, zero))?;
        let bias = b.get(&[cout], "bias", weight_init(fan_in, zero))?;
        Ok(Self { weight, bias, stride, padding })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::conv2d(x, &self.weight, Some(&self.bias), self.stride, self.padding)
    }
}

/// Fully connected layer with bias on `[N, in]` inputs.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    pub fn new(b: &Builder, din: usize, dout: usize, zero: bool) -> Result<Self> {
        let weight = b.get(&[dout, din], "weight", weight_init(din, zero))?;
        let bias = b.get(&[dout], "bias", weight_init(din, zero))?;
        Ok(Self { weight, bias })
    }

    /// A layer on given `weight` `[out, in]` and `bias` `[out]`.
    pub fn from_tensors(weight: Tensor, bias: Tensor) -> Self {
        Self { weight, bias }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::linear(x, &self.weight, Some(&self.bias))
    }
}

/// GroupNorm with affine `weight` (γ) and `bias` (β).
#[derive(Debug, Clone)]
pub(crate) struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    pub fn new(b: &Builder, channels: usize, groups: usize, eps: f64) -> Result<Self> {
        let weight = b.get(&[channels], "weight", ParamInit::Const(1.0))?;
        let bias = b.get(&[channels], "bias", ParamInit::Const(0.0))?;
        Ok(Self { weight, bias, groups, eps })
    }

    /// GroupNorm, followed by SiLU when `silu` (fused in the fast kernels).
    pub fn forward(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        ops::group_norm(x, &self.weight, &self.bias, self.groups, self.eps, silu)
    }
}

/// Overwrite the variables `params` in `varmap` with seeded draws from their initialisers
/// (one ChaCha8 stream seeded with `seed`, drawn in the order of `params`).
pub(crate) fn init_seeded(params: &[ParamSpec], varmap: &candle_nn::VarMap, seed: u64) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data = varmap.data().lock().map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
    for p in params {
        let var = data
            .get(&p.name)
            .ok_or_else(|| candle_core::Error::Msg(format!("variable `{}` not in the VarMap", p.name)))?;
        let n = p.elem_count();
        let values: Vec<f32> = match p.init {
            ParamInit::Uniform { bound } => {
                (0..n).map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32).collect()
            }
            ParamInit::Normal { std } => {
                (0..n).map(|_| (rng.sample::<f64, _>(rand_distr::StandardNormal) * std) as f32).collect()
            }
            ParamInit::Const(c) => vec![c as f32; n],
        };
        let t = Tensor::from_vec(values, p.shape.as_slice(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}
