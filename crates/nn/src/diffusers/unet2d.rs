//! diffusers' `UNet2DModel` config, translated to [`UnetConfig`] (the U-Net already uses
//! diffusers' layout and parameter names in the ADM skip layout).

use super::{refuse_unknown_keys, unsupported};
use crate::error::NnError;
use crate::unet::{SkipLayout, UnetConfig};
use candle_core::{DType, Tensor};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// `sample_size`: one side, or `[height, width]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SampleSize {
    Square(usize),
    Rect(Vec<usize>),
}

/// The `UNet2DModel` config keys (diffusers' defaults where a key is absent).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Unet2dModelConfig {
    pub sample_size: Option<SampleSize>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub center_input_sample: bool,
    pub time_embedding_type: String,
    pub time_embedding_dim: Option<usize>,
    pub freq_shift: f64,
    pub flip_sin_to_cos: bool,
    pub down_block_types: Vec<String>,
    pub mid_block_type: Option<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub mid_block_scale_factor: f64,
    pub downsample_padding: usize,
    pub downsample_type: String,
    pub upsample_type: String,
    pub dropout: f64,
    pub act_fn: String,
    pub attention_head_dim: Option<usize>,
    pub norm_num_groups: usize,
    pub attn_norm_num_groups: Option<usize>,
    pub norm_eps: f64,
    pub resnet_time_scale_shift: String,
    pub add_attention: bool,
    pub class_embed_type: Option<String>,
    pub num_class_embeds: Option<usize>,
    pub num_train_timesteps: Option<usize>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Default for Unet2dModelConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        Self {
            sample_size: None,
            in_channels: 3,
            out_channels: 3,
            center_input_sample: false,
            time_embedding_type: "positional".into(),
            time_embedding_dim: None,
            freq_shift: 0.0,
            flip_sin_to_cos: true,
            down_block_types: s(&["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]),
            mid_block_type: Some("UNetMidBlock2D".into()),
            up_block_types: s(&["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"]),
            block_out_channels: vec![224, 448, 672, 896],
            layers_per_block: 2,
            mid_block_scale_factor: 1.0,
            downsample_padding: 1,
            downsample_type: "conv".into(),
            upsample_type: "conv".into(),
            dropout: 0.0,
            act_fn: "silu".into(),
            attention_head_dim: Some(8),
            norm_num_groups: 32,
            attn_norm_num_groups: None,
            norm_eps: 1e-5,
            resnet_time_scale_shift: "default".into(),
            add_attention: true,
            class_embed_type: None,
            num_class_embeds: None,
            num_train_timesteps: None,
            extra: BTreeMap::new(),
        }
    }
}

fn block_attention(kind: &str, plain: &str, attn: &str, field: &str) -> Result<bool, NnError> {
    if kind == plain {
        Ok(false)
    } else if kind == attn {
        Ok(true)
    } else {
        Err(unsupported(field, kind, &format!("only {plain} and {attn}")))
    }
}

/// Translate a `UNet2DModel` config; options without an equivalent are refused.
pub fn unet_config(d: &Unet2dModelConfig) -> Result<UnetConfig, NnError> {
    refuse_unknown_keys(&d.extra)?;
    let checks: [(&str, bool, String, &str); 10] = [
        ("center_input_sample", !d.center_input_sample, d.center_input_sample.to_string(), "only false"),
        (
            "time_embedding_type",
            d.time_embedding_type == "positional",
            d.time_embedding_type.clone(),
            "only positional",
        ),
        (
            "mid_block_scale_factor",
            d.mid_block_scale_factor == 1.0,
            d.mid_block_scale_factor.to_string(),
            "only 1",
        ),
        ("downsample_padding", d.downsample_padding == 1, d.downsample_padding.to_string(), "only 1"),
        ("downsample_type", d.downsample_type == "conv", d.downsample_type.clone(), "only conv"),
        ("upsample_type", d.upsample_type == "conv", d.upsample_type.clone(), "only conv"),
        ("act_fn", d.act_fn == "silu", d.act_fn.clone(), "only silu"),
        (
            "resnet_time_scale_shift",
            d.resnet_time_scale_shift == "default",
            d.resnet_time_scale_shift.clone(),
            "only default",
        ),
        (
            "class_embed_type",
            d.class_embed_type.is_none(),
            format!("{:?}", d.class_embed_type),
            "only none (an nn.Embedding from num_class_embeds)",
        ),
        (
            "mid_block_type",
            d.mid_block_type.as_deref() == Some("UNetMidBlock2D"),
            format!("{:?}", d.mid_block_type),
            "only UNetMidBlock2D",
        ),
    ];
    if let Some((field, _, value, reason)) = checks.into_iter().find(|c| !c.1) {
        return Err(unsupported(field, value, reason));
    }
    if d.attn_norm_num_groups.is_some_and(|g| g != d.norm_num_groups) {
        return Err(unsupported(
            "attn_norm_num_groups",
            format!("{:?}", d.attn_norm_num_groups),
            "only norm_num_groups",
        ));
    }
    let image_size = match &d.sample_size {
        Some(SampleSize::Square(s)) => *s,
        Some(SampleSize::Rect(v)) if v.len() == 2 && v[0] == v[1] => v[0],
        other => return Err(unsupported("sample_size", format!("{other:?}"), "a square side is needed")),
    };
    let ch = &d.block_out_channels;
    let levels = ch.len();
    if levels == 0 || d.down_block_types.len() != levels || d.up_block_types.len() != levels {
        return Err(NnError::invalid("block_out_channels", "one down and one up block type per entry"));
    }
    let base = ch[0];
    if base == 0 || ch.iter().any(|c| c % base != 0) {
        return Err(unsupported(
            "block_out_channels",
            format!("{ch:?}"),
            "every entry must be a multiple of the first",
        ));
    }
    let mut attention_resolutions = Vec::new();
    for i in 0..levels {
        let down =
            block_attention(&d.down_block_types[i], "DownBlock2D", "AttnDownBlock2D", "down_block_types")?;
        let up = block_attention(
            &d.up_block_types[levels - 1 - i],
            "UpBlock2D",
            "AttnUpBlock2D",
            "up_block_types",
        )?;
        if down != up {
            return Err(unsupported(
                "up_block_types",
                format!("{:?}", d.up_block_types),
                "attention must sit at the same levels on the way down and up",
            ));
        }
        if down {
            attention_resolutions.push(image_size >> i);
        }
    }
    let cfg = UnetConfig {
        image_size,
        in_channels: d.in_channels,
        out_channels: d.out_channels,
        base_channels: base,
        channel_mults: ch.iter().map(|c| c / base).collect(),
        num_res_blocks: d.layers_per_block,
        attention_resolutions,
        mid_attention: d.add_attention,
        num_heads: 1,
        head_dim: d.attention_head_dim,
        dropout: d.dropout,
        groups: d.norm_num_groups,
        time_embed_dim: base,
        temb_dim: d.time_embedding_dim.unwrap_or(4 * base),
        num_classes: d.num_class_embeds,
        learn_sigma: false,
        skip_layout: SkipLayout::Adm,
        flip_sin_to_cos: d.flip_sin_to_cos,
        freq_shift: d.freq_shift,
        norm_eps: d.norm_eps,
        zero_init: false,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// diffusers' tensors in the U-Net's layout: the class-embedding table `[K, temb]` gets a zero
/// row K, the "null label" (adds nothing to the time embedding).
pub(crate) fn convert_tensors(t: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>, NnError> {
    let mut out = t.clone();
    if let Some(table) = t.get("class_embedding.weight") {
        let (_, d) = table.dims2()?;
        let zero = Tensor::zeros((1, d), DType::F32, table.device())?;
        out.insert("class_embedding.weight".into(), Tensor::cat(&[table, &zero], 0)?);
    }
    Ok(out)
}
