//! Building a network on the tensors of a weights file, with every mismatch reported.
//!
//! [`build_checked`] hands the file's tensors to a network builder through a candle
//! `SimpleBackend` that records each name the builder asks for. A missing name or a tensor of
//! another shape does not stop the build: the builder gets a zero-strided placeholder (nothing
//! of the claimed size is allocated), and once it is done the report lists every missing,
//! misshapen and unexpected (never asked for) tensor, so one error names them all.

use crate::error::NnError;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What did not fit between a weights file and the network built on it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightReport {
    /// Parameters the network needs that the file lacks.
    pub missing: Vec<String>,
    /// `(name, file shape, expected shape)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Tensors of the file the network never asked for.
    pub unexpected: Vec<String>,
}

impl WeightReport {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty() && self.unexpected.is_empty()
    }
}

/// At most this many names are listed per kind of problem.
const LISTED: usize = 12;

fn list(names: impl Iterator<Item = String>, total: usize) -> String {
    let mut s: Vec<String> = names.take(LISTED).collect();
    if total > LISTED {
        s.push(format!("… and {} more", total - LISTED));
    }
    s.join(", ")
}

impl std::fmt::Display for WeightReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let names = self.missing.iter().map(|n| format!("`{n}`"));
            parts.push(format!("missing tensor(s) {}", list(names, self.missing.len())));
        }
        if !self.mismatched.is_empty() {
            let names = self
                .mismatched
                .iter()
                .map(|(n, got, want)| format!("`{n}` has shape {got:?}, the model expects {want:?}"));
            parts.push(list(names, self.mismatched.len()));
        }
        if !self.unexpected.is_empty() {
            let names = self.unexpected.iter().map(|n| format!("`{n}`"));
            parts.push(format!(
                "unexpected tensor(s) {} (different model or config?)",
                list(names, self.unexpected.len())
            ));
        }
        write!(f, "{}", parts.join("; "))
    }
}

#[derive(Default)]
struct Log {
    used: HashSet<String>,
    report: WeightReport,
}

struct Checked<'a> {
    map: &'a HashMap<String, Tensor>,
    log: &'a Mutex<Log>,
}

impl Checked<'_> {
    fn take(
        &self,
        name: &str,
        shape: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let placeholder = |s: &Shape| Tensor::zeros((), dtype, dev)?.broadcast_as(s.clone());
        let Some(t) = self.map.get(name) else {
            log.report.missing.push(name.to_string());
            return match shape {
                Some(s) => placeholder(s),
                None => Err(candle_core::Error::Msg(format!("missing tensor `{name}`"))),
            };
        };
        log.used.insert(name.to_string());
        if let Some(s) = shape {
            if t.shape() != s {
                log.report.mismatched.push((name.to_string(), t.dims().to_vec(), s.dims().to_vec()));
                return placeholder(s);
            }
        }
        t.to_device(dev)?.to_dtype(dtype)
    }
}

impl SimpleBackend for Checked<'_> {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.take(name, Some(&s), dtype, dev)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.take(name, None, dtype, dev)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// Build a network with `build` on the tensors `map` (converted to `dtype` on `device`).
/// Every parameter the builder asks for must be in `map` with the asked shape and every tensor
/// of `map` must be asked for; otherwise the result is [`NnError::Weights`] naming them all.
/// The builder must not compute with its parameters (placeholders stand in for bad ones).
pub fn build_checked<T, E>(
    map: &HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> Result<T, E>,
) -> Result<T, NnError>
where
    E: Into<NnError>,
{
    let log = Mutex::new(Log::default());
    let backend = Checked { map, log: &log };
    let built = build(VarBuilder::from_backend(Box::new(backend), dtype, device.clone()));
    let Log { used, mut report } = log.into_inner().unwrap_or_else(|e| e.into_inner());
    // a builder that failed on its own (e.g. a config error) has not asked for everything
    let built = match built {
        Err(e) if report.is_empty() => return Err(e.into()),
        other => other,
    };
    report.unexpected = map.keys().filter(|k| !used.contains(k.as_str())).cloned().collect();
    report.unexpected.sort();
    if !report.is_empty() {
        return Err(NnError::Weights(report));
    }
    built.map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_layers(vb: VarBuilder) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((vb.get((4, 3), "a.weight")?, vb.get(4, "a.bias")?))
    }

    #[test]
    fn reports_every_problem_at_once() {
        let dev = Device::Cpu;
        let mut map = HashMap::new();
        map.insert("a.weight".to_string(), Tensor::ones((4, 3), DType::F32, &dev).unwrap());
        map.insert("a.bias".to_string(), Tensor::ones(4, DType::F32, &dev).unwrap());
        let (w, _) = build_checked(&map, DType::F32, &dev, two_layers).unwrap();
        assert_eq!(w.sum_all().unwrap().to_scalar::<f32>().unwrap(), 12.0);

        map.insert("a.weight".to_string(), Tensor::ones((5, 3), DType::F32, &dev).unwrap());
        map.remove("a.bias");
        map.insert("zzz".to_string(), Tensor::ones(1, DType::F32, &dev).unwrap());
        let Err(NnError::Weights(r)) = build_checked(&map, DType::F32, &dev, two_layers) else { panic!() };
        assert_eq!(r.missing, ["a.bias"]);
        assert_eq!(r.mismatched, [("a.weight".to_string(), vec![5, 3], vec![4, 3])]);
        assert_eq!(r.unexpected, ["zzz"]);
        let msg = r.to_string();
        for part in
            ["missing tensor(s) `a.bias`", "`a.weight` has shape [5, 3], the model expects [4, 3]", "`zzz`"]
        {
            assert!(msg.contains(part), "{msg}");
        }
    }

    #[test]
    fn a_huge_claimed_shape_is_not_allocated() {
        let dev = Device::Cpu;
        let map: HashMap<String, Tensor> = HashMap::new();
        // 2^40 elements: only a zero-strided placeholder is made for it
        let r = build_checked(&map, DType::F32, &dev, |vb| vb.get((1usize << 20, 1usize << 20), "big"));
        let Err(NnError::Weights(r)) = r else { panic!() };
        assert_eq!(r.missing, ["big"]);
    }
}
