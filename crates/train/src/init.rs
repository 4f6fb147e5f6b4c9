//! Seeded parameter initialisation: a `VarBuilder` backend that creates the parameters in a
//! `VarMap` from the run seed (candle's own initialisers draw from an unseeded thread RNG).

use crate::rng::{derive_rng, fnv1a64};
use candle_core::{bail, DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::Rng;
use rand_distr::StandardNormal;

/// Creates each parameter on first request, drawing its values from the ChaCha8 stream
/// (`seed`, stream = FNV-1a(name)), so a parameter's initial value depends only on the seed and
/// its name, not on the order in which the network asks for parameters.
pub struct SeededInit {
    varmap: VarMap,
    seed: u64,
    zeros: bool,
}

impl SeededInit {
    /// A `VarBuilder` that fills `varmap` with seeded initial values.
    pub fn var_builder(varmap: &VarMap, seed: u64, device: &Device) -> VarBuilder<'static> {
        let b = SeededInit { varmap: varmap.clone(), seed, zeros: false };
        VarBuilder::from_backend(Box::new(b), DType::F32, device.clone())
    }

    /// A `VarBuilder` that fills `varmap` with zeros (parameters about to be loaded from a file).
    pub fn zeros_var_builder(varmap: &VarMap, device: &Device) -> VarBuilder<'static> {
        let b = SeededInit { varmap: varmap.clone(), seed: 0, zeros: true };
        VarBuilder::from_backend(Box::new(b), DType::F32, device.clone())
    }

    fn values(&self, shape: &Shape, name: &str, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        if self.zeros {
            return vec![0.0; n];
        }
        let mut rng = derive_rng(self.seed, "init");
        rng.set_stream(fnv1a64(name.as_bytes()));
        let mut uniform = |lo: f64, up: f64| -> Vec<f32> {
            (0..n).map(|_| (lo + (up - lo) * rng.random::<f64>()) as f32).collect()
        };
        match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => uniform(lo, up),
            Init::Randn { mean, stdev } => {
                (0..n).map(|_| (mean + stdev * rng.sample::<f64, _>(StandardNormal)) as f32).collect()
            }
            Init::Kaiming { dist, fan, non_linearity } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => uniform(-(3f64.sqrt()) * std, 3f64.sqrt() * std),
                    NormalOrUniform::Normal => {
                        (0..n).map(|_| (std * rng.sample::<f64, _>(StandardNormal)) as f32).collect()
                    }
                }
            }
        }
    }
}

impl SimpleBackend for SeededInit {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = match self.varmap.data().lock() {
            Ok(d) => d,
            Err(_) => bail!("parameter map lock poisoned"),
        };
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                bail!("parameter `{name}` requested with shape {s:?} but exists with {:?}", v.shape());
            }
            return v.as_tensor().to_dtype(dtype);
        }
        let t = Tensor::from_vec(self.values(&s, name, h), s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, _dev: &Device) -> Result<Tensor> {
        match self.varmap.data().lock() {
            Ok(d) => match d.get(name) {
                Some(v) => v.as_tensor().to_dtype(dtype),
                None => bail!("no parameter named `{name}`"),
            },
            Err(_) => bail!("parameter map lock poisoned"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}

/// The parameters of `varmap`, sorted by name (the stable order used by the optimiser and EMA).
pub fn sorted_params(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<(String, Var)> = data.iter().map(|(n, p)| (n.clone(), p.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rediffuse_nn::{MlpConfig, ModelConfig};

    #[test]
    fn seeded_and_order_independent() {
        let cfg = ModelConfig::Mlp(MlpConfig {
            data_dim: 2,
            hidden: 16,
            layers: 2,
            time_embed_dim: 8,
            learn_sigma: false,
            sample_shape: None,
            num_classes: None,
        });
        let dev = Device::Cpu;
        let snapshot = |seed| {
            let vm = VarMap::new();
            cfg.build(SeededInit::var_builder(&vm, seed, &dev)).unwrap();
            sorted_params(&vm)
                .into_iter()
                .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()))
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (snapshot(5), snapshot(5), snapshot(6));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // PyTorch-style bound 1/√in for the input layer (in = 2 + 16)
        let (_, w) = a.iter().find(|(n, _)| n == "input.weight").unwrap();
        let bound = 1.0 / 18f32.sqrt();
        assert!(w.iter().all(|x| x.abs() <= bound));
        let spread = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(spread > 0.8 * bound, "{spread}");
        // Kaiming and Randn follow their formulas' scale
        let vm = VarMap::new();
        let vb = SeededInit::var_builder(&vm, 1, &dev);
        let k = vb.get_with_hints((64, 100), "k", candle_nn::init::DEFAULT_KAIMING_NORMAL).unwrap();
        let std = k.sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap().sqrt();
        assert!((std - (2f32 / 100.0).sqrt()).abs() < 0.01, "{std}");
        let r = vb.get_with_hints(4000, "r", Init::Randn { mean: 3.0, stdev: 0.5 }).unwrap();
        let m = r.mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((m - 3.0).abs() < 0.05, "{m}");
    }
}
