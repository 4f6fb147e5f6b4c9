//! Deterministic pseudo-random Inception weights, used to verify this implementation against
//! pytorch-fid without the real (non-downloadable) weights. The same formula is implemented
//! in `crates/eval/tests/golden/make_inception_golden.py`:
//!
//! * `u_i = 2·(splitmix64(fnv1a64(name) + i) >> 11)·2⁻⁵³ − 1 ∈ [−1, 1)` for element `i` (flat,
//!   row-major) of the tensor `name` (wrapping u64 arithmetic);
//! * `*.conv.weight`: `u·sqrt(6 / fan_in)` (He-uniform, `fan_in = in·kh·kw`);
//!   `*.bn.weight`: `1 + 0.1u`; `*.bn.bias`: `0.1u`; `*.bn.running_mean`: `0.1u`;
//!   `*.bn.running_var`: `1 + 0.25(u + 1)`; `fc.weight`: `u·sqrt(3 / 2048)`; `fc.bias`: `0.1u`;
//! * computed in f64 and rounded to f32.

use super::super::error::Result;
use super::spec::{parameter_specs, ParamRole};
use super::{fnv1a64, FNV_OFFSET};
use candle_core::{Device, Tensor};
use std::collections::HashMap;

/// SplitMix64 output function (Steele, Lea & Flood 2014).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `count` uniform values `u_i ∈ [−1, 1)` of tensor `name`.
pub fn synthetic_uniform(name: &str, count: usize) -> Vec<f64> {
    let seed = fnv1a64(name.as_bytes(), FNV_OFFSET);
    (0..count as u64)
        .map(|i| {
            let bits = splitmix64(seed.wrapping_add(i)) >> 11;
            2.0 * (bits as f64) * (1.0 / (1u64 << 53) as f64) - 1.0
        })
        .collect()
}

/// Values of one parameter of the given role and shape.
fn synthetic_values(name: &str, shape: &[usize], role: ParamRole) -> Vec<f32> {
    let count: usize = shape.iter().product();
    let u = synthetic_uniform(name, count);
    let map = |f: &dyn Fn(f64) -> f64| u.iter().map(|&x| f(x) as f32).collect::<Vec<f32>>();
    match role {
        ParamRole::ConvWeight => {
            let fan_in = (shape[1] * shape[2] * shape[3]) as f64;
            let a = (6.0 / fan_in).sqrt();
            map(&|x| x * a)
        }
        ParamRole::BnWeight => map(&|x| 1.0 + 0.1 * x),
        ParamRole::BnBias | ParamRole::BnRunningMean | ParamRole::FcBias => map(&|x| 0.1 * x),
        ParamRole::BnRunningVar => map(&|x| 1.0 + 0.25 * (x + 1.0)),
        ParamRole::FcWeight => {
            let a = (3.0 / shape[1] as f64).sqrt();
            map(&|x| x * a)
        }
    }
}

/// The full synthetic state dict (all conv/BN tensors and the fc layer) as f32 tensors.
pub fn synthetic_inception_tensors(device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (name, shape, role) in parameter_specs() {
        let v = synthetic_values(&name, &shape, role);
        out.insert(name, Tensor::from_vec(v, shape, device)?);
    }
    Ok(out)
}
