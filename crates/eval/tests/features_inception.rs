//! InceptionV3Fid against pytorch-fid on the same synthetic (pseudo-random) weights.
//! Golden values: tests/golden/inception_golden.json, written by make_inception_golden.py.

use candle_core::{DType, Device, Tensor};
use rediffuse_eval::features::inception::synthetic::synthetic_inception_tensors;
use rediffuse_eval::features::{FeatureError, FeatureExtractor, InceptionV3Fid};
use serde_json::Value;
use std::collections::HashMap;

const GOLDEN: &str = include_str!("golden/inception_golden.json");

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("rediffuse-inception-{}-{name}", std::process::id()))
}

/// The test images of the golden file (formulas in its `images_formula`).
fn images(kind: &str, device: &Device) -> Tensor {
    let (n, c, h, w) = if kind == "rgb" { (2, 3, 32, 32) } else { (1, 1, 28, 20) };
    let mut v = Vec::with_capacity(n * c * h * w);
    for ni in 0..n {
        for ci in 0..c {
            for hi in 0..h {
                for wi in 0..w {
                    let (nf, cf, hf, wf) = (ni as f64, ci as f64, hi as f64, wi as f64);
                    let x = if kind == "rgb" {
                        (0.3 * hf + 0.7 * wf * (cf + 1.0) + 1.1 * nf).sin() * (0.2 * (hf - wf) + cf).cos()
                    } else {
                        (0.5 * hf + 0.9 * nf).sin() * (0.37 * wf + 0.2 * hf * wf / 28.0).cos()
                    };
                    v.push(x as f32);
                }
            }
        }
    }
    Tensor::from_vec(v, (n, c, h, w), device).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Compare one golden summary (`head`, `sum`, `norm`, optional `strided`) with `t` `[N, ...]`.
fn compare(label: &str, t: &Tensor, golden: &Value) {
    let n = t.dim(0).unwrap();
    let flat: Vec<Vec<f64>> = t.reshape((n, ())).unwrap().to_dtype(DType::F64).unwrap().to_vec2().unwrap();
    for (i, row) in flat.iter().enumerate() {
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        let sum: f64 = row.iter().sum();
        let g_norm = golden["norm"][i].as_f64().unwrap();
        let g_sum = golden["sum"][i].as_f64().unwrap();
        let abs_sum = row.iter().map(|x| x.abs()).sum::<f64>();
        assert!((norm - g_norm).abs() <= 1e-4 * g_norm, "{label}[{i}] norm {norm} vs {g_norm}");
        assert!((sum - g_sum).abs() <= 1e-4 * abs_sum, "{label}[{i}] sum {sum} vs {g_sum}");
        let max_abs = row.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let head = floats(&golden["head"][i]);
        for (j, g) in head.iter().enumerate() {
            assert!((row[j] - g).abs() <= 1e-4 * max_abs, "{label}[{i}] head {j}: {} vs {g}", row[j]);
        }
        if let Some(stride) = golden.get("stride").and_then(|s| s.as_u64()) {
            let strided = floats(&golden["strided"][i]);
            assert_eq!(strided.len(), row.len().div_ceil(stride as usize));
            for (j, g) in strided.iter().enumerate() {
                let v = row[j * stride as usize];
                assert!(
                    (v - g).abs() <= 1e-4 * max_abs,
                    "{label}[{i}] element {}: {v} vs {g}",
                    j * stride as usize
                );
            }
        }
        println!("{label}[{i}]: norm {norm:.6} (golden {g_norm:.6})");
    }
}

#[test]
fn matches_pytorch_fid_on_synthetic_weights() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    println!(
        "golden from pytorch-fid {} / torch {}",
        golden["pytorch_fid_version"].as_str().unwrap(),
        golden["torch_version"].as_str().unwrap()
    );
    let device = Device::Cpu;
    // Write the synthetic weights to a safetensors file and go through the normal loader.
    let path = temp_path("weights.safetensors");
    candle_core::safetensors::save(&synthetic_inception_tensors(&device).unwrap(), &path).unwrap();
    let model = InceptionV3Fid::load(&path, &device);
    std::fs::remove_file(&path).unwrap();
    let model = model.unwrap();
    assert!(model.has_logits());
    assert_eq!(model.dim(), 2048);
    assert!(model.id().starts_with("inception-v3-fid/pool3/"));

    for kind in ["rgb", "grey"] {
        let case = &golden["cases"][kind];
        let x = images(kind, &device);
        let t = std::time::Instant::now();
        let [b0, b1, b2, b3] = model.block_outputs(&x).unwrap();
        println!("{kind}: forward in {:.2}s", t.elapsed().as_secs_f64());
        assert_eq!(b0.dims()[1..], [64, 73, 73]);
        assert_eq!(b1.dims()[1..], [192, 35, 35]);
        assert_eq!(b2.dims()[1..], [768, 17, 17]);
        compare(&format!("{kind}/block0"), &b0, &case["block0"]);
        compare(&format!("{kind}/block1"), &b1, &case["block1"]);
        compare(&format!("{kind}/block2"), &b2, &case["block2"]);
        compare(&format!("{kind}/pool3"), &b3, &case["pool3"]);
        let (f, logits) = model.features_and_logits(&x).unwrap();
        assert_eq!(f.to_vec2::<f32>().unwrap(), b3.to_vec2::<f32>().unwrap());
        compare(&format!("{kind}/logits"), &logits.unwrap(), &case["logits"]);
        if kind == "grey" {
            // A grey image is the same as its 3-channel repetition.
            let rgb = x.repeat((1, 3, 1, 1)).unwrap();
            let g = model.features(&rgb).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(g, b3.to_vec2::<f32>().unwrap());
        }
    }
}

#[test]
fn loader_reports_bad_weights() {
    let device = Device::Cpu;
    let mut tensors = synthetic_inception_tensors(&device).unwrap();
    let fingerprint = InceptionV3Fid::from_tensors(&tensors, &device).unwrap().fingerprint();

    // Without the fc layer: features work, no logits, different fingerprint.
    let mut no_fc: HashMap<String, Tensor> = tensors.clone();
    no_fc.remove("fc.weight");
    no_fc.remove("fc.bias");
    let m = InceptionV3Fid::from_tensors(&no_fc, &device).unwrap();
    assert!(!m.has_logits());
    assert!(m.logits(&images("grey", &device)).is_none());
    assert_ne!(m.fingerprint(), fingerprint);

    // Half an fc layer, a missing conv, a wrong shape, a negative variance.
    let mut half = no_fc.clone();
    half.insert("fc.bias".into(), tensors["fc.bias"].clone());
    assert!(matches!(InceptionV3Fid::from_tensors(&half, &device), Err(FeatureError::Weights { .. })));
    let w = tensors.remove("Mixed_6c.branch7x7_2.conv.weight").unwrap();
    assert!(matches!(InceptionV3Fid::from_tensors(&tensors, &device), Err(FeatureError::Weights { .. })));
    tensors.insert("Mixed_6c.branch7x7_2.conv.weight".into(), w.transpose(2, 3).unwrap());
    assert!(matches!(InceptionV3Fid::from_tensors(&tensors, &device), Err(FeatureError::Weights { .. })));
    tensors.insert("Mixed_6c.branch7x7_2.conv.weight".into(), w);
    tensors.insert("Conv2d_1a_3x3.bn.running_var".into(), Tensor::full(-1f32, 32, &device).unwrap());
    assert!(matches!(InceptionV3Fid::from_tensors(&tensors, &device), Err(FeatureError::Weights { .. })));

    // A file that is not safetensors.
    let path = temp_path("garbage.safetensors");
    std::fs::write(&path, b"garbage").unwrap();
    let r = InceptionV3Fid::load(&path, &device);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(r, Err(FeatureError::Weights { .. })));
}

#[test]
fn rejects_bad_image_shapes() {
    let device = Device::Cpu;
    let model =
        InceptionV3Fid::from_tensors(&synthetic_inception_tensors(&device).unwrap(), &device).unwrap();
    let two_channels = Tensor::zeros((1, 2, 8, 8), DType::F32, &device).unwrap();
    assert!(matches!(model.features(&two_channels), Err(FeatureError::Shape(_))));
    let rank3 = Tensor::zeros((3, 8, 8), DType::F32, &device).unwrap();
    assert!(matches!(model.features(&rank3), Err(FeatureError::Shape(_))));
}
