//! Parameter counts of the U-Net against hand computations, and diffusers naming.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use rediffuse_nn::unet::{SkipLayout, Unet, UnetConfig, UnetError};

fn build(cfg: &UnetConfig) -> (Unet, VarMap) {
    let vm = VarMap::new();
    let net = Unet::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    (net, vm)
}

fn var_total(vm: &VarMap) -> usize {
    vm.all_vars().iter().map(|v| v.elem_count()).sum()
}

/// Small net: image 8, base 8, mults [1, 2], 1 ResBlock per level, attention at 4×4
/// and in the middle, 2 heads, groups 4, sinusoid 8, temb 16.
fn small(layout: SkipLayout) -> UnetConfig {
    UnetConfig {
        image_size: 8,
        in_channels: 1,
        out_channels: 1,
        base_channels: 8,
        channel_mults: vec![1, 2],
        num_res_blocks: 1,
        attention_resolutions: vec![4],
        mid_attention: true,
        num_heads: 2,
        dropout: 0.0,
        groups: 4,
        time_embed_dim: 8,
        temb_dim: 16,
        num_classes: None,
        learn_sigma: false,
        skip_layout: layout,
        ..UnetConfig::speed_bench()
    }
}

/// ResBlock(cin→cout) with temb width `t`: norm1 2cin, conv1 9·cin·cout+cout, time_emb_proj t·cout+cout,
/// norm2 2cout, conv2 9·cout²+cout, 1×1 shortcut cin·cout+cout when cin≠cout.
fn resblock(cin: usize, cout: usize, t: usize) -> usize {
    let sc = if cin != cout { cin * cout + cout } else { 0 };
    2 * cin + 9 * cin * cout + cout + t * cout + cout + 2 * cout + 9 * cout * cout + cout + sc
}

#[test]
fn small_symmetric_matches_hand_count() {
    // time MLP 8·16+16 + 16·16+16 = 144 + 272 = 416; conv_in 9·8+8 = 80
    // down: RB(8→8) = 1336, Downsample(8) = 584, RB(8→16) = 3952, Attn(16) = 32 + 4·272 = 1120
    // mid: 2·RB(16→16) = 2·4976, Attn(16) = 1120
    // up: RB(32→16) = 7840, Attn 1120, Upsample(16) = 2320, RB(24→8) = 2720
    // out: GN 16 + conv 9·8+1 = 89
    assert_eq!(resblock(8, 8, 16), 1336);
    assert_eq!(resblock(8, 16, 16), 3952);
    assert_eq!(resblock(16, 16, 16), 4976);
    assert_eq!(resblock(32, 16, 16), 7840);
    assert_eq!(resblock(24, 8, 16), 2720);
    let hand = 416 + 80 + 1336 + 584 + 3952 + 1120 + 2 * 4976 + 1120 + 7840 + 1120 + 2320 + 2720 + 89;
    assert_eq!(hand, 32649);
    let (net, vm) = build(&small(SkipLayout::Symmetric));
    assert_eq!(net.param_count(), hand);
    assert_eq!(var_total(&vm), hand);
}

#[test]
fn small_adm_matches_hand_count() {
    // Same encoder and middle (416 + 80 + 1336 + 584 + 3952 + 1120 + 2·4976 + 1120 = 18576);
    // skips [8 conv_in, 8 RB, 8 Downsample, 16 RB]; 2 up ResBlocks per level:
    // level 1: RB(16+16→16) 7840 + Attn 1120, RB(16+8→16) 6544 + Attn 1120, Upsample 2320;
    // level 0: RB(16+8→8) 2720, RB(8+8→8) 2064; out 89.
    assert_eq!(resblock(24, 16, 16), 6544);
    assert_eq!(resblock(16, 8, 16), 2064);
    let hand = 18560 + 7840 + 1120 + 6544 + 1120 + 2320 + 2720 + 2064 + 89;
    assert_eq!(hand, 42377);
    let (net, vm) = build(&small(SkipLayout::Adm));
    assert_eq!(net.param_count(), hand);
    assert_eq!(var_total(&vm), hand);
}

#[test]
fn speed_bench_has_793697_params() {
    let (net, vm) = build(&UnetConfig::speed_bench());
    assert_eq!(net.param_count(), 793_697);
    assert_eq!(var_total(&vm), 793_697);
    // structure: exactly one ResBlock per down level, 3 up ResBlocks, one attention (mid)
    let names: Vec<&str> = net.params().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.iter().filter(|n| n.ends_with("to_q.weight")).count(), 1);
    assert!(names.contains(&"mid_block.attentions.0.to_q.weight"));
    assert_eq!(names.iter().filter(|n| n.ends_with("conv1.weight")).count(), 3 + 2 + 3);
}

#[test]
fn class_embedding_and_learn_sigma_add_expected_params() {
    let base = small(SkipLayout::Symmetric);
    let (n0, _) = build(&base);
    let (n1, _) = build(&UnetConfig { num_classes: Some(10), ..base.clone() });
    // (10 + 1 null) rows of temb_dim = 16
    assert_eq!(n1.param_count() - n0.param_count(), 11 * 16);
    let (n2, _) = build(&UnetConfig { learn_sigma: true, ..base });
    // conv_out 8→2 instead of 8→1: one more 3×3×8 filter and bias
    assert_eq!(n2.param_count() - n0.param_count(), 9 * 8 + 1);
}

#[test]
fn presets_are_cpu_sized() {
    let count = |c: &UnetConfig| build(c).0.param_count();
    let digits = count(&UnetConfig::digits());
    eprintln!(
        "digits {digits} mnist {} cifar {}",
        count(&UnetConfig::mnist()),
        count(&UnetConfig::cifar10())
    );
    assert!((200_000..=500_000).contains(&digits), "digits {digits}");
    let mnist = count(&UnetConfig::mnist());
    assert!((800_000..=1_500_000).contains(&mnist), "mnist {mnist}");
    assert_eq!(count(&UnetConfig::fashion_mnist()), mnist);
    let cifar = count(&UnetConfig::cifar10());
    assert!((2_000_000..=8_000_000).contains(&cifar), "cifar {cifar}");
}

#[test]
fn diffusers_names() {
    let cfg = UnetConfig { num_classes: Some(3), ..small(SkipLayout::Adm) };
    let (net, vm) = build(&cfg);
    let data = vm.data().lock().unwrap();
    for name in [
        "time_embedding.linear_1.weight",
        "time_embedding.linear_2.bias",
        "class_embedding.weight",
        "conv_in.weight",
        "down_blocks.0.resnets.0.norm1.weight",
        "down_blocks.0.resnets.0.conv1.weight",
        "down_blocks.0.resnets.0.time_emb_proj.weight",
        "down_blocks.0.resnets.0.norm2.bias",
        "down_blocks.0.resnets.0.conv2.weight",
        "down_blocks.1.resnets.0.conv_shortcut.weight",
        "down_blocks.0.downsamplers.0.conv.weight",
        "down_blocks.1.attentions.0.group_norm.weight",
        "down_blocks.1.attentions.0.to_out.0.weight",
        "mid_block.resnets.1.conv2.bias",
        "mid_block.attentions.0.to_k.weight",
        "up_blocks.0.resnets.1.conv_shortcut.weight",
        "up_blocks.0.attentions.1.to_v.bias",
        "up_blocks.0.upsamplers.0.conv.weight",
        "up_blocks.1.resnets.1.conv1.weight",
        "conv_norm_out.weight",
        "conv_out.bias",
    ] {
        assert!(data.contains_key(name), "missing {name}");
    }
    assert!(!data.contains_key("down_blocks.1.downsamplers.0.conv.weight"));
    assert!(!data.contains_key("up_blocks.1.upsamplers.0.conv.weight"));
    assert_eq!(data.len(), net.params().len());
}

#[test]
fn invalid_configs_are_typed_errors() {
    let base = small(SkipLayout::Symmetric);
    let bad = [
        UnetConfig { groups: 3, ..base.clone() },
        UnetConfig { dropout: 1.0, ..base.clone() },
        UnetConfig { dropout: f64::NAN, ..base.clone() },
        UnetConfig { image_size: 7, ..base.clone() },
        UnetConfig { channel_mults: vec![], ..base.clone() },
        UnetConfig { time_embed_dim: 7, ..base.clone() },
        UnetConfig { num_heads: 3, ..base.clone() },
        UnetConfig { attention_resolutions: vec![5], ..base.clone() },
        UnetConfig { num_classes: Some(0), ..base.clone() },
        UnetConfig { norm_eps: -1.0, ..base },
    ];
    for cfg in bad {
        let vm = VarMap::new();
        match Unet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)) {
            Err(UnetError::InvalidConfig { .. }) => {}
            Err(e) => panic!("wrong error {e} for {cfg:?}"),
            Ok(_) => panic!("accepted {cfg:?}"),
        }
    }
}

#[test]
fn config_serde_round_trip_and_defaults() {
    let cfg = UnetConfig::cifar10();
    let s = serde_json::to_string(&cfg).unwrap();
    let back: UnetConfig = serde_json::from_str(&s).unwrap();
    assert_eq!(back, cfg);
    let partial: UnetConfig = serde_json::from_str(r#"{"base_channels": 16, "skip_layout": "adm"}"#).unwrap();
    assert_eq!(partial.base_channels, 16);
    assert_eq!(partial.skip_layout, SkipLayout::Adm);
    assert_eq!(partial.channel_mults, UnetConfig::speed_bench().channel_mults);
    assert!(serde_json::from_str::<UnetConfig>(r#"{"bogus": 1}"#).is_err());
}
