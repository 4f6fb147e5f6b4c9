//! AdamW with checkpointable state.

use crate::error::{Result, TrainError};
use crate::kernels::{fusable, AdamWUpdate, MomentUpdate};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// AdamW hyper-parameters (the learning rate is given per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay λ: θ ← θ − lr·λ·θ before the Adam step.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// AdamW (Loshchilov & Hutter 2019, Alg. 2, in PyTorch's form): at step k = 1, 2, …
/// ```text
/// θ ← θ·(1 − lr·λ)
/// m ← β₁·m + (1 − β₁)·g,  v ← β₂·v + (1 − β₂)·g²
/// θ ← θ − lr·(m/(1 − β₁ᵏ)) / (√(v/(1 − β₂ᵏ)) + ε)
/// ```
/// Parameters without a gradient in the `GradStore` are left untouched (no decay either).
/// State (`m.<name>`, `v.<name>`, `step`) saves to and loads from safetensors.
pub struct AdamW {
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    config: AdamWConfig,
    fused: bool,
}

impl AdamW {
    /// Zero moments for each named parameter.
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let mut m = Vec::with_capacity(params.len());
        let mut v = Vec::with_capacity(params.len());
        for (_, p) in &params {
            m.push(p.as_tensor().zeros_like()?);
            v.push(p.as_tensor().zeros_like()?);
        }
        Ok(Self { params, m, v, step: 0, config, fused: true })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Number of steps taken (k of the last update).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// One update with learning rate `lr`, every gradient multiplied by `grad_scale`
    /// (1 for none; the gradient-clipping factor otherwise).
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let k = self.step as i32;
        let c = &self.config;
        let upd = AdamWUpdate {
            lr,
            weight_decay: c.weight_decay,
            bias_correction1: 1.0 - c.beta1.powi(k),
            bias_correction2: 1.0 - c.beta2.powi(k),
            eps: c.eps,
        };
        for (i, (_, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            let g = g.contiguous()?;
            let (m, v, pt) = (&self.m[i], &self.v[i], p.as_tensor());
            if self.fused && fusable(&g) && fusable(m) && fusable(pt) {
                let scale = grad_scale as f32;
                m.inplace_op2(&g, &MomentUpdate { beta: c.beta1 as f32, scale, square: false })?;
                v.inplace_op2(&g, &MomentUpdate { beta: c.beta2 as f32, scale, square: true })?;
                pt.inplace_op3(m, v, &upd)?;
            } else {
                let g = g.affine(grad_scale, 0.0)?;
                let m_new = ((m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                let v_new = ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                let denom = ((&v_new / upd.bias_correction2)?.sqrt()? + c.eps)?;
                let delta = ((&m_new / upd.bias_correction1)? / denom)?;
                let p_new = ((pt * (1.0 - lr * c.weight_decay))? - (delta * lr)?)?;
                p.set(&p_new)?;
                self.m[i] = m_new;
                self.v[i] = v_new;
            }
        }
        Ok(())
    }

    /// The state as named tensors: `m.<name>`, `v.<name>`, and `step` (`[1]` i64). The moment
    /// tensors share storage with the optimiser, which later steps update in place.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::with_capacity(2 * self.params.len() + 1);
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        let dev = self.params.first().map(|(_, p)| p.device().clone()).unwrap_or(Device::Cpu);
        out.insert("step".into(), Tensor::new(&[self.step as i64], &dev)?);
        Ok(out)
    }

    /// Restore the state from named tensors (as produced by [`AdamW::state_tensors`]).
    /// `origin` names the source in error messages.
    pub fn load_state_tensors(&mut self, mut map: HashMap<String, Tensor>, origin: &Path) -> Result<()> {
        let step_t =
            map.remove("step").ok_or_else(|| TrainError::corrupt(origin, "missing tensor `step`"))?;
        let step = step_t
            .to_dtype(DType::I64)
            .and_then(|t| t.flatten_all()?.to_vec1::<i64>())
            .map_err(|e| TrainError::corrupt(origin, e))?;
        let step = match step.as_slice() {
            [s] if *s >= 0 => *s as u64,
            _ => return Err(TrainError::corrupt(origin, "`step` must hold one non-negative integer")),
        };
        let mut m = Vec::with_capacity(self.params.len());
        let mut v = Vec::with_capacity(self.params.len());
        for (name, p) in &self.params {
            for (prefix, dst) in [("m", &mut m), ("v", &mut v)] {
                let key = format!("{prefix}.{name}");
                let t = map
                    .remove(&key)
                    .ok_or_else(|| TrainError::corrupt(origin, format!("missing `{key}`")))?;
                if t.dims() != p.dims() || t.dtype() != p.dtype() {
                    return Err(TrainError::corrupt(
                        origin,
                        format!(
                            "`{key}` has shape {:?} {:?}, expected {:?} {:?}",
                            t.dims(),
                            t.dtype(),
                            p.dims(),
                            p.dtype()
                        ),
                    ));
                }
                dst.push(t.to_device(p.device())?.copy()?);
            }
        }
        if let Some(extra) = map.keys().next() {
            return Err(TrainError::corrupt(origin, format!("unexpected tensor `{extra}`")));
        }
        self.m = m;
        self.v = v;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One and two steps against the closed form, on both the fused and the reference path.
    #[test]
    fn matches_closed_form() {
        for fused in [true, false] {
            let dev = Device::Cpu;
            let theta0 = [0.5f64, -1.5, 2.0];
            let p = Var::new(&[0.5f32, -1.5, 2.0], &dev).unwrap();
            let cfg = AdamWConfig { beta1: 0.8, beta2: 0.95, eps: 1e-3, weight_decay: 0.1 };
            let mut opt = AdamW::new(vec![("w".into(), p.clone())], cfg).unwrap();
            opt.fused = fused;
            // loss = Σ c_i θ_i² / 2  ->  g = c ⊙ θ
            let c = Tensor::new(&[1.0f32, 2.0, -0.5], &dev).unwrap();
            let (lr, scale) = (0.01, 0.5);
            let (mut th, mut m, mut v) = (theta0.to_vec(), vec![0.0; 3], vec![0.0; 3]);
            let cv = [1.0, 2.0, -0.5];
            for k in 1..=2 {
                let loss =
                    (p.as_tensor().sqr().unwrap() * &c).unwrap().sum_all().unwrap().affine(0.5, 0.0).unwrap();
                let grads = loss.backward().unwrap();
                opt.step(&grads, lr, scale).unwrap();
                for i in 0..3 {
                    let g = scale * cv[i] * th[i];
                    th[i] *= 1.0 - lr * cfg.weight_decay;
                    m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
                    v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
                    let mh = m[i] / (1.0 - cfg.beta1.powi(k));
                    let vh = v[i] / (1.0 - cfg.beta2.powi(k));
                    th[i] -= lr * mh / (vh.sqrt() + cfg.eps);
                }
                let got = p.as_tensor().to_vec1::<f32>().unwrap();
                for i in 0..3 {
                    assert!(
                        (got[i] as f64 - th[i]).abs() < 1e-6,
                        "fused={fused} k={k} i={i}: {} vs {}",
                        got[i],
                        th[i]
                    );
                }
            }
            assert_eq!(opt.step_count(), 2);
            let mt = opt.m[0].to_vec1::<f32>().unwrap();
            for i in 0..3 {
                assert!((mt[i] as f64 - m[i]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn state_round_trip_and_errors() {
        let dev = Device::Cpu;
        let p = Var::new(&[1.0f32, 2.0], &dev).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), p.clone())], AdamWConfig::default()).unwrap();
        let grads = p.as_tensor().sqr().unwrap().sum_all().unwrap().backward().unwrap();
        opt.step(&grads, 0.1, 1.0).unwrap();
        let st = opt.state_tensors().unwrap();
        let q = Var::new(&[0.0f32, 0.0], &dev).unwrap();
        let mut opt2 = AdamW::new(vec![("w".into(), q)], AdamWConfig::default()).unwrap();
        opt2.load_state_tensors(st.clone(), Path::new("mem")).unwrap();
        assert_eq!(opt2.step_count(), 1);
        assert_eq!(opt2.v[0].to_vec1::<f32>().unwrap(), opt.v[0].to_vec1::<f32>().unwrap());
        let mut bad = st.clone();
        bad.remove("v.w");
        assert!(matches!(opt2.load_state_tensors(bad, Path::new("mem")), Err(TrainError::Corrupt { .. })));
        let mut bad = st;
        bad.insert("m.w".into(), Tensor::zeros(3, DType::F32, &dev).unwrap());
        assert!(matches!(opt2.load_state_tensors(bad, Path::new("mem")), Err(TrainError::Corrupt { .. })));
    }
}
