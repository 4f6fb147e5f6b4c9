//! The DiT backbone: adaLN-Zero identity / zero output at initialisation, patchify round trips,
//! output shapes (learned σ), gradients (finite differences in f64; fast kernels against the
//! reference ops in f32), class conditioning with the null label, parameter counts of the
//! presets and configuration errors; plus the DiT kernels (adaLN, GELU, gated residual)
//! against their stock-candle references.

mod ops_util;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use ops_util::{assert_close, probe_loss, rand, rel_err, var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rediffuse_nn::dit::patch::{patchify, unpatchify};
use rediffuse_nn::ops::{self, reference};
use rediffuse_nn::{DiffusionNet, Dit, DitConfig, ModelConfig};

const DEV: Device = Device::Cpu;

fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// A small config (fast to run), optionally class-conditional / learned-σ.
fn tiny(classes: Option<usize>, learn_sigma: bool) -> DitConfig {
    DitConfig {
        image_size: 8,
        channels: 2,
        patch_size: 2,
        width: 16,
        depth: 2,
        num_heads: 2,
        mlp_ratio: 2,
        time_embed_dim: 8,
        num_classes: classes,
        learn_sigma,
        norm_eps: 1e-6,
    }
}

fn build(cfg: &DitConfig, dtype: DType, seed: u64) -> (Dit, VarMap) {
    let vm = VarMap::new();
    let net = Dit::new_seeded(cfg, &vm, dtype, &DEV, seed).unwrap();
    (net, vm)
}

/// Overwrite every variable whose name contains one of `pats` with N(0, std²) draws.
fn perturb(vm: &VarMap, pats: &[&str], std: f64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        if !pats.iter().any(|p| name.contains(p)) {
            continue;
        }
        let v = &data[name];
        let vals: Vec<f64> =
            (0..v.elem_count()).map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal) * std).collect();
        let t = Tensor::from_vec(vals, v.shape(), &DEV).unwrap().to_dtype(v.dtype()).unwrap();
        v.set(&t).unwrap();
    }
}

const ZERO_INIT: [&str; 3] = ["adaln_modulation", "final_layer.linear", "class_embedding"];

fn inputs(cfg: &DitConfig, b: usize, dtype: DType) -> (Tensor, Tensor) {
    let s = cfg.image_size;
    let x = rand(&[b, cfg.channels, s, s], 11).to_dtype(dtype).unwrap();
    let t: Vec<f32> = (0..b).map(|i| (i * 997 % 1000) as f32).collect();
    (x, Tensor::from_vec(t, b, &DEV).unwrap())
}

#[test]
fn adaln_zero_is_identity_and_output_zero_at_init() {
    let cfg = DitConfig { num_classes: Some(10), ..DitConfig::digits() };
    let (net, vm) = build(&cfg, DType::F32, 1);
    let (x, t) = inputs(&cfg, 4, DType::F32);
    let labels = Tensor::new(&[0u32, 3, 9, 10], &DEV).unwrap();
    let tokens = net.tokens(&x).unwrap();
    let c = net.conditioning(&t, Some(&labels)).unwrap();
    assert_eq!(tokens.dims(), &[4, 16, 96]);
    assert_eq!(
        max_abs(&(net.trunk(&tokens, &c).unwrap() - &tokens).unwrap()),
        0.0,
        "blocks not the identity"
    );
    let y = net.forward_with_labels(&x, &t, Some(&labels)).unwrap();
    assert_eq!(y.dims(), x.dims());
    assert_eq!(max_abs(&y), 0.0, "output not exactly zero at init");
    assert!(max_abs(&tokens) > 0.1 && max_abs(&c) > 0.01);

    // non-zero block modulation: the blocks change the tokens, the zero final layer still hides it
    perturb(&vm, &["blocks.0.adaln_modulation", "blocks.3.adaln_modulation"], 0.1, 2);
    let moved = max_abs(&(net.trunk(&tokens, &c).unwrap() - &tokens).unwrap());
    assert!(moved > 1e-3, "perturbed adaLN had no effect: {moved}");
    assert_eq!(max_abs(&net.forward(&x, &t, false).unwrap()), 0.0);
    // non-zero final layer: a non-zero output
    perturb(&vm, &["final_layer"], 0.1, 3);
    let y = net.forward_with_labels(&x, &t, Some(&labels)).unwrap();
    assert!(
        max_abs(&y) > 1e-3
            && y.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite())
    );
}

#[test]
fn patchify_unpatchify_round_trip() {
    let x = rand(&[2, 3, 8, 12], 5);
    for p in [1, 2, 4] {
        let t = patchify(&x, p).unwrap();
        assert_eq!(t.dims(), &[2, (8 / p) * (12 / p), 3 * p * p]);
        let back = unpatchify(&t, p, 8 / p, 12 / p).unwrap();
        assert_eq!(max_abs(&(back - &x).unwrap()), 0.0, "p = {p}");
        // and the other way round
        let tok = rand(t.dims(), 6);
        let again = patchify(&unpatchify(&tok, p, 8 / p, 12 / p).unwrap(), p).unwrap();
        assert_eq!(max_abs(&(again - &tok).unwrap()), 0.0);
    }
    assert!(patchify(&x, 3).is_err() && patchify(&x, 5).is_err());
    assert!(unpatchify(&rand(&[1, 5, 4], 1), 2, 2, 2).is_err());
}

#[test]
fn output_shapes_with_and_without_learned_sigma() {
    for learn_sigma in [false, true] {
        let cfg = DitConfig { image_size: 16, channels: 3, ..tiny(None, learn_sigma) };
        let (net, vm) = build(&cfg, DType::F32, 4);
        perturb(&vm, &ZERO_INIT, 0.1, 4);
        let (x, t) = inputs(&cfg, 3, DType::F32);
        let y = net.forward(&x, &t, true).unwrap();
        let c = if learn_sigma { 6 } else { 3 };
        assert_eq!(y.dims(), &[3, c, 16, 16]);
        assert_eq!(cfg.output_channels(), c);
        let m = ModelConfig::Dit(cfg.clone());
        assert_eq!((m.learn_sigma(), m.sample_shape()), (learn_sigma, vec![3, 16, 16]));
    }
    // wrong input shapes are errors
    let cfg = tiny(None, false);
    let (net, _) = build(&cfg, DType::F32, 4);
    let t = Tensor::new(&[1f32, 2.0], &DEV).unwrap();
    assert!(net.forward(&rand(&[2, 1, 8, 8], 1), &t, false).is_err());
    assert!(net.forward(&rand(&[2, 2, 16, 16], 1), &t, false).is_err());
    assert!(net.forward(&rand(&[2, 2, 8, 8], 1), &Tensor::new(&[1f32], &DEV).unwrap(), false).is_err());
}

/// Σ f(x)·r for the fixed probe r (seed 77), f64.
fn probe(net: &Dit, x: &Tensor, t: &Tensor, labels: &Tensor) -> Tensor {
    let y = net.forward_with_labels(x, t, Some(labels)).unwrap();
    let r = rand(y.dims(), 77).to_dtype(y.dtype()).unwrap();
    (y * r).unwrap().sum_all().unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    let cfg = DitConfig { image_size: 4, width: 8, depth: 2, time_embed_dim: 4, ..tiny(Some(2), true) };
    let (net, vm) = build(&cfg, DType::F64, 8);
    perturb(&vm, &ZERO_INIT, 0.3, 9);
    let (x, t) = inputs(&cfg, 2, DType::F64);
    let x = Var::from_tensor(&x).unwrap();
    let labels = Tensor::new(&[1u32, 2], &DEV).unwrap();
    let grads = probe(&net, &x, &t, &labels).backward().unwrap();
    let f = |net: &Dit, x: &Tensor| probe(net, x, &t, &labels).to_scalar::<f64>().unwrap();
    let h = 1e-5;
    let mut worst = (0f64, String::new());
    let mut check = |name: &str, v: &Var, g: &Tensor| {
        let base = v.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let n = base.len();
        for &i in &[0, n / 2, n - 1] {
            let at = |d: f64| {
                let mut p = base.clone();
                p[i] += d;
                v.set(&Tensor::from_vec(p, v.shape(), &DEV).unwrap()).unwrap();
                f(&net, &x)
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            v.set(&Tensor::from_vec(base.clone(), v.shape(), &DEV).unwrap()).unwrap();
            let e = (fd - g[i]).abs() / (fd.abs().max(g[i].abs()).max(1e-3));
            if e > worst.0 {
                worst = (e, format!("{name}[{i}]: fd {fd} vs autograd {}", g[i]));
            }
        }
    };
    let data = vm.data().lock().unwrap().clone();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    assert_eq!(names.len(), 6 + 1 + 2 * 10 + 4);
    for name in names {
        let v = &data[name];
        let g = grads.get(v).unwrap_or_else(|| panic!("no gradient for {name}"));
        check(name, v, g);
    }
    check("x_t", &x, grads.get(&x).unwrap());
    assert!(worst.0 < 1e-5, "worst relative gradient error {}: {}", worst.0, worst.1);
}

#[test]
fn fast_kernels_match_reference_ops_on_the_digits_preset() {
    fast_kernels_match_reference_ops(DitConfig {
        num_classes: Some(10),
        learn_sigma: true,
        ..DitConfig::digits()
    });
}

/// The MNIST preset: 49 tokens of 4×4 patches, 32-wide heads (other kernel tile shapes).
#[test]
fn fast_kernels_match_reference_ops_on_the_mnist_preset() {
    fast_kernels_match_reference_ops(DitConfig::mnist());
}

fn fast_kernels_match_reference_ops(cfg: DitConfig) {
    let (net, vm) = build(&cfg, DType::F32, 12);
    perturb(&vm, &ZERO_INIT, 0.05, 13);
    let (x, t) = inputs(&cfg, 3, DType::F32);
    let labels = cfg.num_classes.map(|_| Tensor::new(&[1u32, 10, 4], &DEV).unwrap());
    let run = || {
        let y = net.forward_with_labels(&x, &t, labels.as_ref()).unwrap();
        let g = probe_loss(&y, 21).backward().unwrap();
        let data = vm.data().lock().unwrap();
        let mut gs: Vec<(String, Tensor)> =
            data.iter().map(|(n, v)| (n.clone(), g.get(v).unwrap().clone())).collect();
        gs.sort_by(|a, b| a.0.cmp(&b.0));
        (y, gs)
    };
    ops::set_reference_only(false);
    let (yf, gf) = run();
    ops::set_reference_only(true);
    let (yr, gr) = run();
    ops::set_reference_only(false);
    assert_close(&yf, &yr, 1e-4, "DiT output");
    let global = gr.iter().map(|(_, g)| max_abs(g)).fold(0f64, f64::max);
    for ((name, a), (_, b)) in gf.iter().zip(&gr) {
        let e = max_abs(&(a - b).unwrap()) / max_abs(b).max(1e-3 * global);
        assert!(e < 1e-3, "{name}: relative gradient error {e}");
    }
}

#[test]
fn class_conditioning_and_null_label() {
    let cfg = tiny(Some(3), false);
    let (net, vm) = build(&cfg, DType::F32, 14);
    let (x, t) = inputs(&cfg, 3, DType::F32);
    let lab = |v: [u32; 3]| Tensor::new(&v, &DEV).unwrap();
    // at init the output is zero whatever the label
    assert_eq!(max_abs(&net.forward_with_labels(&x, &t, Some(&lab([0, 1, 2]))).unwrap()), 0.0);
    perturb(&vm, &ZERO_INIT, 0.2, 15);
    let y = |l: Option<&Tensor>| net.forward_with_labels(&x, &t, l).unwrap();
    let (y0, y1) = (y(Some(&lab([0, 0, 0]))), y(Some(&lab([1, 1, 1]))));
    assert!(max_abs(&(&y0 - &y1).unwrap()) > 1e-4, "labels have no effect");
    // no labels = the null label (index 3), in the trait too
    let null = y(Some(&lab([3, 3, 3])));
    assert_eq!(max_abs(&(y(None) - &null).unwrap()), 0.0);
    let via_trait = DiffusionNet::forward_with_labels(&net, &x, &t, None, false).unwrap();
    assert_eq!(max_abs(&(via_trait - &null).unwrap()), 0.0);
    assert!(max_abs(&(&null - &y0).unwrap()) > 1e-4);
    assert_eq!(DiffusionNet::num_classes(&net), Some(3));
    // each row depends only on its own label
    let mixed = y(Some(&lab([0, 1, 3])));
    assert_eq!(max_abs(&(mixed.get(1).unwrap() - y1.get(1).unwrap()).unwrap()), 0.0);
    // bad labels
    assert!(net.forward_with_labels(&x, &t, Some(&lab([0, 4, 1]))).is_err());
    assert!(net.forward_with_labels(&x, &t, Some(&Tensor::new(&[0f32, 1.0, 2.0], &DEV).unwrap())).is_err());
    let (plain, _) = build(&tiny(None, false), DType::F32, 16);
    assert!(plain.forward_with_labels(&x, &t, Some(&lab([0, 1, 2]))).is_err());
    assert_eq!(DiffusionNet::num_classes(&plain), None);
}

#[test]
fn preset_param_counts_and_names() {
    for (name, cfg, want) in
        [("digits", DitConfig::digits(), 704_356), ("mnist", DitConfig::mnist(), 952_592)]
    {
        let vm = VarMap::new();
        let net = Dit::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &DEV)).unwrap();
        let built: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        println!(
            "DiT {name} preset: {built} parameters ({}×{} image, patch {}, {} tokens, width {}, depth {}, {} heads)",
            cfg.image_size,
            cfg.image_size,
            cfg.patch_size,
            cfg.num_tokens(),
            cfg.width,
            cfg.depth,
            cfg.num_heads
        );
        assert_eq!(built, want, "{name}");
        assert_eq!(
            (cfg.param_count(), net.param_count(), ModelConfig::Dit(cfg.clone()).param_count()),
            (want, want, want)
        );
        // closed form with classes and learned σ too
        let c = DitConfig { num_classes: Some(10), learn_sigma: true, ..cfg };
        let vm = VarMap::new();
        Dit::new(&c, VarBuilder::from_varmap(&vm, DType::F32, &DEV)).unwrap();
        assert_eq!(vm.all_vars().iter().map(|v| v.elem_count()).sum::<usize>(), c.param_count());
    }
    // the stable parameter names of a one-block class-conditional DiT
    let cfg = DitConfig { depth: 1, ..tiny(Some(2), true) };
    let (net, _) = build(&cfg, DType::F32, 1);
    let mut names: Vec<String> = net.params().iter().map(|p| format!("{} {:?}", p.name, p.shape)).collect();
    names.sort();
    let want = [
        "blocks.0.adaln_modulation.bias [96]",
        "blocks.0.adaln_modulation.weight [96, 16]",
        "blocks.0.attn.proj.bias [16]",
        "blocks.0.attn.proj.weight [16, 16]",
        "blocks.0.attn.qkv.bias [48]",
        "blocks.0.attn.qkv.weight [48, 16]",
        "blocks.0.mlp.fc1.bias [32]",
        "blocks.0.mlp.fc1.weight [32, 16]",
        "blocks.0.mlp.fc2.bias [16]",
        "blocks.0.mlp.fc2.weight [16, 32]",
        "class_embedding.weight [3, 16]",
        "final_layer.adaln_modulation.bias [32]",
        "final_layer.adaln_modulation.weight [32, 16]",
        "final_layer.linear.bias [16]",
        "final_layer.linear.weight [16, 16]",
        "patch_embed.bias [16]",
        "patch_embed.weight [16, 8]",
        "time_embedding.linear_1.bias [16]",
        "time_embedding.linear_1.weight [16, 8]",
        "time_embedding.linear_2.bias [16]",
        "time_embedding.linear_2.weight [16, 16]",
    ];
    assert_eq!(names, want);
}

#[test]
fn config_validation_names_the_field() {
    let base = DitConfig::digits();
    let cases: Vec<(DitConfig, &str)> = vec![
        (DitConfig { patch_size: 3, ..base.clone() }, "patch_size"),
        (DitConfig { patch_size: 0, ..base.clone() }, "patch_size"),
        (DitConfig { num_heads: 5, ..base.clone() }, "num_heads"),
        (DitConfig { num_heads: 0, ..base.clone() }, "num_heads"),
        (DitConfig { width: 0, ..base.clone() }, "width"),
        (DitConfig { width: 6, num_heads: 2, ..base.clone() }, "width"),
        (DitConfig { depth: 0, ..base.clone() }, "depth"),
        (DitConfig { image_size: 0, ..base.clone() }, "image_size"),
        (DitConfig { channels: 0, ..base.clone() }, "channels"),
        (DitConfig { mlp_ratio: 0, ..base.clone() }, "mlp_ratio"),
        (DitConfig { time_embed_dim: 1, ..base.clone() }, "time_embed_dim"),
        (DitConfig { num_classes: Some(0), ..base.clone() }, "num_classes"),
        (DitConfig { norm_eps: 0.0, ..base.clone() }, "norm_eps"),
        (DitConfig { norm_eps: f64::NAN, ..base.clone() }, "norm_eps"),
    ];
    for (cfg, field) in cases {
        let e = cfg.validate().expect_err(field).to_string();
        assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
        let m = ModelConfig::Dit(cfg.clone());
        assert!(m.validate().is_err());
        let vm = VarMap::new();
        let err = m.build(VarBuilder::from_varmap(&vm, DType::F32, &DEV)).err().expect("build must fail");
        assert!(err.to_string().contains(field), "{err}");
    }
    // data shape
    let m = ModelConfig::Dit(base.clone());
    m.check_data_shape(&[1, 8, 8]).unwrap();
    let e = m.check_data_shape(&[1, 16, 16]).unwrap_err().to_string();
    assert!(e.contains("DiT") && e.contains("[1, 8, 8]"), "{e}");
    assert_eq!((m.name(), m.extra_input_channels(), m.num_classes()), ("dit", 0, None));
}

#[test]
fn model_config_serde_round_trip() {
    let m = ModelConfig::Dit(DitConfig { num_classes: Some(10), ..DitConfig::mnist() });
    let json = serde_json::to_string(&m).unwrap();
    assert!(json.contains("\"kind\":\"dit\""), "{json}");
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), m);
    let d: ModelConfig = serde_json::from_str(r#"{"kind":"dit","patch_size":4}"#).unwrap();
    assert_eq!(d, ModelConfig::Dit(DitConfig { patch_size: 4, ..DitConfig::digits() }));
    assert!(serde_json::from_str::<ModelConfig>(r#"{"kind":"dit","patch":4}"#).is_err());
    let mut m = m;
    m.set_learn_sigma(true);
    m.set_num_classes(None);
    assert!(m.learn_sigma() && m.num_classes().is_none());
}

#[test]
fn seeded_init_is_reproducible() {
    let cfg = tiny(None, false);
    let snap = |seed| {
        let (_, vm) = build(&cfg, DType::F32, seed);
        let data = vm.data().lock().unwrap();
        let mut v: Vec<(String, Vec<f32>)> = data
            .iter()
            .map(|(n, p)| (n.clone(), p.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(snap(3), snap(3));
    assert_ne!(snap(3), snap(4));
}

// ---- kernels ----

#[test]
fn adaln_kernel_matches_reference() {
    for (i, &(b, n, d)) in [(3, 16, 96), (2, 1, 5), (1, 49, 128), (4, 7, 33)].iter().enumerate() {
        let s = 30 + 3 * i as u64;
        let (x, shift, scale) = (var(&[b, n, d], s), var(&[b, d], s + 1), var(&[b, d], s + 2));
        let x2 = (x.as_tensor() * 3.0).unwrap();
        let yf = ops::adaln_modulate(&x2, &shift, &scale, 1e-6).unwrap();
        let yr = reference::adaln_modulate(&x2, &shift, &scale, 1e-6).unwrap();
        assert_close(&yf, &yr, 1e-4, &format!("adaln {b}×{n}×{d}"));
        let gf = probe_loss(&yf, s + 3).backward().unwrap();
        let gr = probe_loss(&yr, s + 3).backward().unwrap();
        for (v, what) in [(&x, "x"), (&shift, "shift"), (&scale, "scale")] {
            let e = rel_err(gf.get(v).unwrap(), gr.get(v).unwrap());
            assert!(e < 2e-4, "adaln {b}×{n}×{d} d{what}: {e}");
        }
    }
}

#[test]
fn gelu_and_gated_residual_kernels_match_reference() {
    for (i, dims) in [&[3usize, 5, 7][..], &[70001]].iter().enumerate() {
        let x = var(dims, 40 + i as u64);
        let x4 = (x.as_tensor() * 4.0).unwrap();
        let (yf, yr) = (ops::gelu(&x4).unwrap(), reference::gelu(&x4).unwrap());
        assert_close(&yf, &yr, 1e-4, "gelu");
        let (gf, gr) = (probe_loss(&yf, 1).backward().unwrap(), probe_loss(&yr, 1).backward().unwrap());
        assert_close(gf.get(&x).unwrap(), gr.get(&x).unwrap(), 1e-4, "gelu grad");
    }
    let big = (rand(&[1000], 9) * 100.0).unwrap();
    assert_close(&ops::gelu(&big).unwrap(), &reference::gelu(&big).unwrap(), 1e-4, "gelu large");
    let (x, h, g) = (var(&[3, 10, 24], 50), var(&[3, 10, 24], 51), var(&[3, 24], 52));
    let yf = ops::gated_residual(&x, &h, &g).unwrap();
    let yr = reference::gated_residual(&x, &h, &g).unwrap();
    assert_close(&yf, &yr, 1e-6, "gated residual");
    let (gf, gr) = (probe_loss(&yf, 2).backward().unwrap(), probe_loss(&yr, 2).backward().unwrap());
    for v in [&x, &h, &g] {
        assert_close(gf.get(v).unwrap(), gr.get(v).unwrap(), 1e-5, "gated residual grad");
    }
    assert!(ops::gated_residual(&x, &h, &var(&[3, 23], 1)).is_err());
    assert!(ops::adaln_modulate(&x, &var(&[3, 23], 1), &var(&[3, 23], 1), 1e-6).is_err());
}

/// Forward + backward time of the presets at their training batch sizes, with the kernel
/// breakdown (`cargo test --release -p rediffuse-nn --test dit -- --ignored --nocapture`).
#[test]
#[ignore]
fn dit_step_profile() {
    for (name, cfg, b) in [("digits", DitConfig::digits(), 128), ("mnist", DitConfig::mnist(), 64)] {
        let (net, vm) = build(&cfg, DType::F32, 1);
        perturb(&vm, &ZERO_INIT, 0.05, 2);
        let (x, t) = inputs(&cfg, b, DType::F32);
        let step = || {
            let y = net.forward(&x, &t, true).unwrap();
            let loss = (&y - &x).unwrap().sqr().unwrap().mean_all().unwrap();
            loss.backward().unwrap();
        };
        step();
        ops::set_profiling(true);
        let _ = ops::take_profile();
        let n = 5;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            step();
        }
        let per = t0.elapsed().as_secs_f64() / n as f64;
        ops::set_profiling(false);
        println!("DiT {name} (batch {b}): {:.1} ms per forward+backward", per * 1e3);
        let mut prof = ops::take_profile();
        prof.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
        let total: f64 = prof.iter().map(|p| p.1).sum();
        println!("  kernels {:.1} ms/step of {:.1}", total / n as f64, per * 1e3);
        for (op, ms, calls) in prof {
            println!("  {op:40} {:8.2} ms/step {:5} calls/step", ms / n as f64, calls / n);
        }
    }
}

#[test]
fn attention_kernel_matches_reference() {
    for (i, &(b, n, c, heads)) in
        [(3, 16, 96, 4), (2, 49, 32, 2), (1, 1, 6, 1), (2, 5, 24, 3)].iter().enumerate()
    {
        let qkv = var(&[b, n, 3 * c], 60 + i as u64);
        let x = (qkv.as_tensor() * 2.0).unwrap();
        let (yf, yr) = (ops::attention(&x, heads).unwrap(), reference::attention(&x, heads).unwrap());
        assert_eq!(yf.dims(), &[b, n, c]);
        assert_close(&yf, &yr, 1e-4, &format!("attention {b}×{n}×{c}/{heads}"));
        let (gf, gr) = (probe_loss(&yf, 3).backward().unwrap(), probe_loss(&yr, 3).backward().unwrap());
        assert_close(
            gf.get(&qkv).unwrap(),
            gr.get(&qkv).unwrap(),
            2e-4,
            &format!("attention {b}×{n}×{c}/{heads} grad"),
        );
    }
    assert!(ops::attention(&rand(&[2, 3, 10], 1), 2).is_err());
}
