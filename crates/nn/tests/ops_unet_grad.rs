//! The whole U-Net (digits preset, with stride-2 downsampling, nearest upsampling,
//! skip concatenation and mid-block attention): output and every parameter gradient with
//! the fast kernels agree with the stock-candle reference ops.

mod ops_util;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use ops_util::{rand, rel_err};

use rediffuse_nn::ops;
use rediffuse_nn::unet::{Unet, UnetConfig};
use rediffuse_nn::DiffusionNet;

fn loss_and_grads(
    net: &Unet,
    vm: &VarMap,
    x: &Tensor,
    t: &Tensor,
    target: &Tensor,
) -> (Tensor, Vec<(String, Tensor)>) {
    let y = net.forward(x, t, true).unwrap();
    let loss = (&y - target).unwrap().sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let mut out: Vec<(String, Tensor)> = data
        .iter()
        .map(|(name, var)| (name.clone(), grads.get(var).expect("every parameter gets a gradient").clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (y, out)
}

#[test]
fn unet_gradients_match_reference_ops() {
    let cfg = UnetConfig::digits();
    let vm = VarMap::new();
    let net = Unet::new_seeded(&cfg, &vm, DType::F32, &Device::Cpu, 7).unwrap();
    let (b, s) = (3, cfg.image_size);
    let x = rand(&[b, cfg.in_channels, s, s], 1);
    let target = rand(&[b, cfg.in_channels, s, s], 2);
    let t = Tensor::new(&[3f32, 250.0, 999.0], &Device::Cpu).unwrap();

    ops::set_reference_only(false);
    let (y_fast, g_fast) = loss_and_grads(&net, &vm, &x, &t, &target);
    ops::set_reference_only(true);
    let (y_ref, g_ref) = loss_and_grads(&net, &vm, &x, &t, &target);
    ops::set_reference_only(false);

    let e = rel_err(&y_fast, &y_ref);
    assert!(e < 1e-4, "output relative error {e}");
    assert_eq!(g_fast.len(), g_ref.len());
    // Relative to each gradient's own scale, floored at 1e-3 of the largest gradient entry:
    // `to_k.bias` has an exactly-zero true gradient (softmax ignores a per-query shift),
    // so both versions hold rounding noise there.
    let max_abs =
        |t: &Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let global = g_ref.iter().map(|(_, g)| max_abs(g)).fold(0f32, f32::max);
    let mut worst = (0f32, String::new());
    for ((name, gf), (_, gr)) in g_fast.iter().zip(&g_ref) {
        let diff = max_abs(&(gf - gr).unwrap());
        let e = diff / max_abs(gr).max(1e-3 * global);
        if e > worst.0 {
            worst = (e, name.clone());
        }
    }
    assert!(worst.0 < 1e-4, "worst parameter-gradient relative error {} at {}", worst.0, worst.1);
}
