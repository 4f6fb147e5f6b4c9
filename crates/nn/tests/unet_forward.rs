//! U-Net forward: output shapes, batch independence, labels, zero-init, gradient flow.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rediffuse_core::NoiseSource;
use rediffuse_nn::unet::{SkipLayout, Unet, UnetConfig};
use rediffuse_nn::DiffusionNet;

fn tiny() -> UnetConfig {
    UnetConfig {
        image_size: 8,
        base_channels: 8,
        channel_mults: vec![1, 2],
        num_res_blocks: 1,
        attention_resolutions: vec![4],
        num_heads: 2,
        groups: 4,
        time_embed_dim: 8,
        temb_dim: 16,
        ..UnetConfig::speed_bench()
    }
}

fn seeded(cfg: &UnetConfig, seed: u64) -> (Unet, VarMap) {
    let vm = VarMap::new();
    let net = Unet::new_seeded(cfg, &vm, DType::F32, &Device::Cpu, seed).unwrap();
    (net, vm)
}

fn inputs(b: usize, c: usize, h: usize, w: usize) -> (Tensor, Tensor) {
    let x = NoiseSource::new(3, 0, b).randn(&[c, h, w], &Device::Cpu).unwrap();
    let t: Vec<f32> = (0..b).map(|i| (i * 137 % 1000) as f32).collect();
    (x, Tensor::from_vec(t, b, &Device::Cpu).unwrap())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn output_shapes_for_several_configs() {
    let cases: Vec<(UnetConfig, [usize; 4], usize)> = vec![
        (tiny(), [3, 1, 8, 8], 1),
        (tiny(), [1, 1, 8, 8], 1),
        (UnetConfig { learn_sigma: true, ..tiny() }, [2, 1, 8, 8], 2),
        (UnetConfig { skip_layout: SkipLayout::Adm, num_res_blocks: 2, ..tiny() }, [2, 1, 8, 8], 1),
        // non-square and larger than image_size: any multiple of 2^(levels-1) works
        (tiny(), [2, 1, 12, 6], 1),
        (
            UnetConfig {
                in_channels: 3,
                out_channels: 3,
                channel_mults: vec![1, 2, 2],
                image_size: 16,
                attention_resolutions: vec![8],
                ..tiny()
            },
            [2, 3, 16, 16],
            3,
        ),
        (UnetConfig::speed_bench(), [1, 1, 28, 28], 1),
        (UnetConfig::cifar10(), [1, 3, 32, 32], 3),
    ];
    for (cfg, [b, c, h, w], oc) in cases {
        let (net, _) = seeded(&cfg, 1);
        let (x, t) = inputs(b, c, h, w);
        let y = net.forward(&x, &t, false).unwrap();
        assert_eq!(y.dims(), &[b, oc, h, w], "{cfg:?}");
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn class_conditional_forward_and_null_label() {
    let cfg = UnetConfig { num_classes: Some(10), ..tiny() };
    let (net, _) = seeded(&cfg, 2);
    assert_eq!(net.null_label(), Some(10));
    let (x, t) = inputs(3, 1, 8, 8);
    let labels = Tensor::new(&[0u32, 9, 10], &Device::Cpu).unwrap();
    let y = net.forward_with_labels(&x, &t, Some(&labels), false).unwrap();
    assert_eq!(y.dims(), &[3, 1, 8, 8]);
    // no labels == null label for everyone
    let null = Tensor::new(&[10u32, 10, 10], &Device::Cpu).unwrap();
    let a = net.forward(&x, &t, false).unwrap();
    let b = net.forward_with_labels(&x, &t, Some(&null), false).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    // the label changes the output
    let c = net.forward_with_labels(&x, &t, Some(&Tensor::new(&[1u32, 1, 1], &Device::Cpu).unwrap()), false);
    assert!(max_abs_diff(&a, &c.unwrap()) > 1e-4);
    // out-of-range, float, and wrong-length labels are errors
    for bad in [
        Tensor::new(&[0u32, 1, 11], &Device::Cpu).unwrap(),
        Tensor::new(&[0f32, 1., 2.], &Device::Cpu).unwrap(),
        Tensor::new(&[0u32, 1], &Device::Cpu).unwrap(),
    ] {
        assert!(net.forward_with_labels(&x, &t, Some(&bad), false).is_err());
    }
    // labels on an unconditional net are an error
    let (plain, _) = seeded(&tiny(), 2);
    assert!(plain.forward_with_labels(&x, &t, Some(&labels), false).is_err());
}

#[test]
fn bad_inputs_are_errors() {
    let (net, _) = seeded(&tiny(), 0);
    let (x, t) = inputs(2, 1, 8, 8);
    let (x3, _) = inputs(2, 3, 8, 8);
    assert!(net.forward(&x3, &t, false).is_err());
    let (x7, _) = inputs(2, 1, 7, 8);
    assert!(net.forward(&x7, &t, false).is_err());
    let t3 = Tensor::new(&[1f32, 2., 3.], &Device::Cpu).unwrap();
    assert!(net.forward(&x, &t3, false).is_err());
}

#[test]
fn samples_do_not_depend_on_batch_and_seeding_is_reproducible() {
    let (net, _) = seeded(&tiny(), 5);
    let (x, t) = inputs(4, 1, 8, 8);
    let all = net.forward(&x, &t, false).unwrap();
    for i in 0..4 {
        let one = net.forward(&x.narrow(0, i, 1).unwrap(), &t.narrow(0, i, 1).unwrap(), false).unwrap();
        assert!(max_abs_diff(&one, &all.narrow(0, i, 1).unwrap()) < 1e-4);
    }
    let (same, _) = seeded(&tiny(), 5);
    assert_eq!(max_abs_diff(&all, &same.forward(&x, &t, false).unwrap()), 0.0);
    let (other, _) = seeded(&tiny(), 6);
    assert!(max_abs_diff(&all, &other.forward(&x, &t, false).unwrap()) > 1e-3);
}

#[test]
fn zero_init_outputs_zero() {
    let (net, _) = seeded(&UnetConfig { zero_init: true, ..tiny() }, 1);
    let (x, t) = inputs(2, 1, 8, 8);
    let y = net.forward(&x, &t, false).unwrap();
    assert_eq!(y.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn dropout_only_in_training_and_seeded() {
    let cfg = UnetConfig { dropout: 0.3, ..tiny() };
    let (net, _) = seeded(&cfg, 1);
    let (x, t) = inputs(2, 1, 8, 8);
    let e1 = net.forward(&x, &t, false).unwrap();
    let e2 = net.forward(&x, &t, false).unwrap();
    assert_eq!(max_abs_diff(&e1, &e2), 0.0);
    net.reseed_dropout(9);
    let d1 = net.forward(&x, &t, true).unwrap();
    let d2 = net.forward(&x, &t, true).unwrap();
    assert!(max_abs_diff(&d1, &e1) > 1e-4);
    assert!(max_abs_diff(&d1, &d2) > 1e-4);
    net.reseed_dropout(9);
    assert_eq!(max_abs_diff(&d1, &net.forward(&x, &t, true).unwrap()), 0.0);
}

#[test]
fn gradients_reach_every_parameter() {
    for cfg in [
        UnetConfig { num_classes: Some(3), dropout: 0.1, learn_sigma: true, ..tiny() },
        UnetConfig { skip_layout: SkipLayout::Adm, num_res_blocks: 2, ..tiny() },
    ] {
        let (net, vm) = seeded(&cfg, 4);
        let (x, t) = inputs(3, 1, 8, 8);
        let labels = cfg.num_classes.map(|_| Tensor::new(&[0u32, 2, 3], &Device::Cpu).unwrap());
        let y = net.forward_with_labels(&x, &t, labels.as_ref(), true).unwrap();
        let loss = y.sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        assert_eq!(data.len(), net.params().len());
        for (name, var) in data.iter() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let s = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(s > 0.0 && s.is_finite(), "zero/non-finite gradient for {name}: {s}");
        }
    }
}

/// Wall time of one training step (forward + backward) of the presets; run with
/// `cargo test --release -p rediffuse-nn --test unet_forward -- --ignored --nocapture`.
#[test]
#[ignore]
fn preset_step_timing() {
    for (name, cfg, b) in [
        ("digits", UnetConfig::digits(), 64),
        ("speed_bench", UnetConfig::speed_bench(), 64),
        ("mnist", UnetConfig::mnist(), 32),
        ("cifar10", UnetConfig::cifar10(), 16),
    ] {
        let (net, _) = seeded(&cfg, 0);
        let s = cfg.image_size;
        let (x, t) = inputs(b, cfg.in_channels, s, s);
        let start = std::time::Instant::now();
        let reps = 3;
        for _ in 0..reps {
            let loss = net.forward(&x, &t, true).unwrap().sqr().unwrap().mean_all().unwrap();
            loss.backward().unwrap();
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / reps as f64;
        println!("{name}: {} params, batch {b}: {ms:.1} ms/step", net.param_count());
    }
}

/// A few AdamW steps on a fixed batch (ε-prediction on hand-made x_t) must cut the loss:
/// the gradients are usable, not just non-zero.
#[test]
fn adam_steps_reduce_loss_on_a_fixed_batch() {
    use candle_nn::Optimizer;
    let cfg = UnetConfig { num_classes: Some(2), ..tiny() };
    let (net, vm) = seeded(&cfg, 11);
    let (x, t) = inputs(8, 1, 8, 8);
    let eps = NoiseSource::new(99, 0, 8).randn(&[1, 8, 8], &Device::Cpu).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 0, 1, 2, 0, 1], &Device::Cpu).unwrap();
    let mut opt = candle_nn::AdamW::new(
        vm.all_vars(),
        candle_nn::ParamsAdamW { lr: 3e-3, weight_decay: 0.0, ..Default::default() },
    )
    .unwrap();
    let loss_at = |net: &Unet| -> Tensor {
        let y = net.forward_with_labels(&x, &t, Some(&labels), true).unwrap();
        (y - &eps).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let first = loss_at(&net).to_scalar::<f32>().unwrap();
    for _ in 0..60 {
        opt.backward_step(&loss_at(&net)).unwrap();
    }
    let last = loss_at(&net).to_scalar::<f32>().unwrap();
    assert!(last < 0.3 * first, "loss {first} -> {last}");
}
