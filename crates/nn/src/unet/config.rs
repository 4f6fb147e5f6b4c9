//! Configuration of the DDPM/ADM U-Net (DDPM paper, Appendix B; seed 004 §9.2).

use serde::{Deserialize, Serialize};

/// Errors raised while building a U-Net.
#[derive(Debug, thiserror::Error)]
pub enum UnetError {
    /// A configuration field is out of its valid range.
    #[error("invalid U-Net config `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// Error raised by the tensor engine (variable creation, shape checks).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> UnetError {
    UnetError::InvalidConfig { field, reason: reason.into() }
}

/// How the decoder consumes the encoder's skip connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipLayout {
    /// Every down-path ResBlock pushes one skip; every level of the up path has
    /// `num_res_blocks` ResBlocks, each popping one skip (concatenated on channels).
    Symmetric,
    /// DDPM/ADM/diffusers layout: `conv_in`, every down ResBlock and every
    /// Downsample push a skip; each up level has `num_res_blocks + 1` ResBlocks.
    Adm,
}

/// Hyper-parameters of [`super::Unet`].
///
/// Levels: level `i` works at `image_size / 2^i` pixels with
/// `base_channels * channel_mults[i]` channels; a stride-2 Downsample sits between
/// consecutive levels, and the up path mirrors it with nearest×2 + conv3×3 Upsamples.
/// Input height and width must be divisible by `2^(levels-1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnetConfig {
    /// Side length of the training images; only used to place attention
    /// (see `attention_resolutions`) and by presets' documentation.
    pub image_size: usize,
    pub in_channels: usize,
    /// Channels of the prediction (before `learn_sigma` doubling).
    pub out_channels: usize,
    /// Width of `conv_in`'s output.
    pub base_channels: usize,
    /// Per-level channel multipliers of `base_channels`; its length is the number of levels.
    pub channel_mults: Vec<usize>,
    /// ResBlocks per level on the down path (see [`SkipLayout`] for the up path).
    pub num_res_blocks: usize,
    /// Feature-map side lengths (pixels) at which the level's ResBlocks are each followed
    /// by self-attention, as in the DDPM paper ("self-attention at 16×16").
    /// Level `i` has side `image_size / 2^i`. The middle block is governed by `mid_attention`.
    pub attention_resolutions: Vec<usize>,
    /// Self-attention between the two middle ResBlocks.
    pub mid_attention: bool,
    /// Attention heads; every attended channel count must be divisible by it.
    /// Ignored when `head_dim` is set.
    pub num_heads: usize,
    /// Channels per attention head (diffusers' `attention_head_dim`): a block with C channels
    /// then has C / head_dim heads. `None`: `num_heads` heads everywhere.
    pub head_dim: Option<usize>,
    /// Dropout probability inside ResBlocks (training only), in [0, 1).
    pub dropout: f64,
    /// GroupNorm groups; must divide every normalised channel count.
    pub groups: usize,
    /// Dimension of the sinusoidal time embedding (even).
    pub time_embed_dim: usize,
    /// Width of the time-embedding MLP (`temb`), fed to every ResBlock.
    pub temb_dim: usize,
    /// Number of classes for class conditioning; the embedding table has
    /// `num_classes + 1` rows, the last one (index `num_classes`) is the "null"
    /// label used for unconditional / classifier-free-guidance evaluation.
    pub num_classes: Option<usize>,
    /// Output `2 * out_channels` channels (ε and the variance interpolation `v`).
    pub learn_sigma: bool,
    pub skip_layout: SkipLayout,
    /// Sinusoid order `[cos, sin]` (true, diffusers' UNet2DModel default) or `[sin, cos]`.
    pub flip_sin_to_cos: bool,
    /// Frequencies `exp(-ln(10000) k / (half - freq_shift))`; 0 (diffusers) or 1 (original DDPM).
    pub freq_shift: f64,
    /// GroupNorm epsilon.
    pub norm_eps: f64,
    /// Zero-initialise the last layer of every residual branch and `conv_out` (DDPM/ADM);
    /// the network then outputs exactly zero at initialisation.
    pub zero_init: bool,
}

impl Default for UnetConfig {
    fn default() -> Self {
        Self::speed_bench()
    }
}

impl UnetConfig {
    /// The speed benchmark's network: 1×28×28, 793,697 parameters.
    /// base 32, mults [1, 2, 2], one ResBlock per level, attention only in the middle.
    pub fn speed_bench() -> Self {
        Self {
            image_size: 28,
            in_channels: 1,
            out_channels: 1,
            base_channels: 32,
            channel_mults: vec![1, 2, 2],
            num_res_blocks: 1,
            attention_resolutions: vec![],
            mid_attention: true,
            num_heads: 1,
            head_dim: None,
            dropout: 0.0,
            groups: 32,
            time_embed_dim: 32,
            temb_dim: 128,
            num_classes: None,
            learn_sigma: false,
            skip_layout: SkipLayout::Symmetric,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            norm_eps: 1e-5,
            zero_init: false,
        }
    }

    /// 8×8 UCI digits (1 channel): two levels (8×8 with 32 channels, 4×4 with 64),
    /// one ResBlock per level, attention in the middle, temb width 64: 474,913 parameters,
    /// sized to give recognisable digits after a few minutes on 2 CPU cores.
    pub fn digits() -> Self {
        Self {
            image_size: 8,
            base_channels: 32,
            channel_mults: vec![1, 2],
            num_res_blocks: 1,
            attention_resolutions: vec![],
            mid_attention: true,
            groups: 8,
            temb_dim: 64,
            ..Self::speed_bench()
        }
    }

    /// MNIST 1×28×28: levels 28, 14, 7 (32, 64, 64 channels), two ResBlocks per level,
    /// attention (4 heads) at 7×7 and in the middle: 1,337,601 parameters.
    pub fn mnist() -> Self {
        Self {
            image_size: 28,
            base_channels: 32,
            channel_mults: vec![1, 2, 2],
            num_res_blocks: 2,
            attention_resolutions: vec![7],
            num_heads: 4,
            ..Self::speed_bench()
        }
    }

    /// Fashion-MNIST 1×28×28: same network as [`Self::mnist`].
    pub fn fashion_mnist() -> Self {
        Self::mnist()
    }

    /// CIFAR-10 3×32×32: levels 32, 16, 8, 4 (32, 64, 64, 64 channels), two ResBlocks per
    /// level in the ADM skip layout, attention at 16×16 (as in DDPM) and in the middle,
    /// dropout 0.1: DDPM's 35.7 M CIFAR model scaled down to ~1.9 M parameters for a CPU.
    pub fn cifar10() -> Self {
        Self {
            image_size: 32,
            in_channels: 3,
            out_channels: 3,
            base_channels: 32,
            channel_mults: vec![1, 2, 2, 2],
            num_res_blocks: 2,
            attention_resolutions: vec![16],
            num_heads: 4,
            dropout: 0.1,
            groups: 32,
            skip_layout: SkipLayout::Adm,
            ..Self::speed_bench()
        }
    }

    /// Number of levels.
    pub fn levels(&self) -> usize {
        self.channel_mults.len()
    }

    /// Channels of level `i`.
    pub fn level_channels(&self, i: usize) -> usize {
        self.base_channels * self.channel_mults[i]
    }

    /// Side length of level `i`'s feature maps for `image_size` inputs.
    pub fn level_resolution(&self, i: usize) -> usize {
        self.image_size >> i
    }

    /// Whether level `i` has self-attention after its ResBlocks.
    pub fn level_has_attention(&self, i: usize) -> bool {
        self.attention_resolutions.contains(&self.level_resolution(i))
    }

    /// Attention heads of a block with `channels` channels.
    pub fn heads_for(&self, channels: usize) -> usize {
        match self.head_dim {
            Some(d) if d > 0 => channels / d,
            _ => self.num_heads,
        }
    }

    /// Channels of the network's output.
    pub fn output_channels(&self) -> usize {
        self.out_channels * if self.learn_sigma { 2 } else { 1 }
    }

    /// Check ranges and divisibility; called by [`super::Unet::new`].
    pub fn validate(&self) -> Result<(), UnetError> {
        let positive = [
            ("image_size", self.image_size),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("base_channels", self.base_channels),
            ("num_res_blocks", self.num_res_blocks),
            ("num_heads", self.num_heads),
            ("groups", self.groups),
            ("time_embed_dim", self.time_embed_dim),
            ("temb_dim", self.temb_dim),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(invalid(name, "must be > 0"));
            }
        }
        if self.channel_mults.is_empty() || self.channel_mults.contains(&0) {
            return Err(invalid("channel_mults", "must be a non-empty list of positive integers"));
        }
        if self.levels() > 16 {
            return Err(invalid("channel_mults", "at most 16 levels"));
        }
        if !self.time_embed_dim.is_multiple_of(2) {
            return Err(invalid("time_embed_dim", format!("must be even, got {}", self.time_embed_dim)));
        }
        let half = (self.time_embed_dim / 2) as f64;
        if !self.freq_shift.is_finite() || self.freq_shift < 0.0 || self.freq_shift >= half {
            return Err(invalid("freq_shift", format!("must be in [0, {half}), got {}", self.freq_shift)));
        }
        if !self.dropout.is_finite() || !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid("dropout", format!("must be in [0, 1), got {}", self.dropout)));
        }
        if !self.norm_eps.is_finite() || self.norm_eps <= 0.0 {
            return Err(invalid("norm_eps", format!("must be > 0, got {}", self.norm_eps)));
        }
        if self.num_classes == Some(0) {
            return Err(invalid("num_classes", "must be > 0 when given"));
        }
        let down = 1usize << (self.levels() - 1);
        if !self.image_size.is_multiple_of(down) {
            return Err(invalid(
                "image_size",
                format!("{} is not divisible by 2^(levels-1) = {down}", self.image_size),
            ));
        }
        for &r in &self.attention_resolutions {
            if !(0..self.levels()).any(|i| self.level_resolution(i) == r) {
                return Err(invalid(
                    "attention_resolutions",
                    format!("{r} is not the side of any level (image_size {})", self.image_size),
                ));
            }
        }
        for i in 0..self.levels() {
            let c = self.level_channels(i);
            let attends = self.level_has_attention(i) || (i + 1 == self.levels() && self.mid_attention);
            if !attends {
                continue;
            }
            match self.head_dim {
                Some(0) => return Err(invalid("head_dim", "must be > 0 when given")),
                Some(d) if !c.is_multiple_of(d) => {
                    return Err(invalid("head_dim", format!("{d} does not divide {c} channels")))
                }
                None if !c.is_multiple_of(self.num_heads) => {
                    return Err(invalid(
                        "num_heads",
                        format!("{} heads do not divide {c} channels", self.num_heads),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// GroupNorm divisibility check for one channel count.
    pub(crate) fn check_groups(&self, channels: usize) -> Result<(), UnetError> {
        if !channels.is_multiple_of(self.groups) {
            return Err(invalid(
                "groups",
                format!("{} groups do not divide {channels} channels", self.groups),
            ));
        }
        Ok(())
    }
}
