//! The network families a run can be configured with.
//!
//! Adding a family: add a variant here and one arm in each `match` below.

use crate::dit::{Dit, DitConfig};
use crate::error::NnError;
use crate::mlp::{Mlp, MlpConfig};
use crate::net::DiffusionNet;
use crate::unet::{Unet, UnetConfig};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Which network to build, with its hyper-parameters. Serialised with a `kind` tag,
/// e.g. TOML `[model]` / `kind = "mlp"` / `data_dim = 2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// Time-conditioned residual MLP for vector data.
    Mlp(MlpConfig),
    /// DDPM/ADM-style U-Net for images `[C, H, W]`.
    Unet(UnetConfig),
    /// Diffusion Transformer (adaLN-Zero) for images `[C, H, W]`.
    Dit(DitConfig),
}

impl ModelConfig {
    /// Short name of the family (`"mlp"`).
    pub fn name(&self) -> &'static str {
        match self {
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::Unet(_) => "unet",
            ModelConfig::Dit(_) => "dit",
        }
    }

    /// Check the hyper-parameters; the error names the offending field.
    pub fn validate(&self) -> Result<(), NnError> {
        match self {
            ModelConfig::Mlp(c) => c.validate(),
            ModelConfig::Unet(c) => c.validate().map_err(NnError::from),
            ModelConfig::Dit(c) => c.validate(),
        }
    }

    /// Check that data samples of shape `sample_shape` (without the batch dimension) fit the model.
    pub fn check_data_shape(&self, sample_shape: &[usize]) -> Result<(), NnError> {
        match self {
            ModelConfig::Mlp(c) => c.check_data_shape(sample_shape),
            ModelConfig::Unet(c) => {
                let want = [c.out_channels, c.image_size, c.image_size];
                if sample_shape != want {
                    return Err(NnError::DataShape {
                        got: sample_shape.to_vec(),
                        reason: format!("the U-Net generates samples of shape {want:?}"),
                    });
                }
                Ok(())
            }
            ModelConfig::Dit(c) => c.check_data_shape(sample_shape),
        }
    }

    /// Create the network, its parameters coming from (or being created in) `vb`.
    pub fn build(&self, vb: VarBuilder) -> candle_core::Result<Box<dyn DiffusionNet>> {
        Ok(match self {
            ModelConfig::Mlp(c) => Box::new(Mlp::new(c, vb)?),
            ModelConfig::Unet(c) => {
                Box::new(Unet::new(c, vb).map_err(|e| candle_core::Error::Msg(e.to_string()))?)
            }
            ModelConfig::Dit(c) => {
                Box::new(Dit::new(c, vb).map_err(|e| candle_core::Error::Msg(e.to_string()))?)
            }
        })
    }

    /// Whether the network also outputs iDDPM's variance interpolation v (twice the data
    /// channels; see `rediffuse_core::vlb::VarianceMode::LearnedRange`).
    pub fn learn_sigma(&self) -> bool {
        match self {
            ModelConfig::Mlp(c) => c.learn_sigma,
            ModelConfig::Unet(c) => c.learn_sigma,
            ModelConfig::Dit(c) => c.learn_sigma,
        }
    }

    /// Set [`ModelConfig::learn_sigma`].
    pub fn set_learn_sigma(&mut self, on: bool) {
        match self {
            ModelConfig::Mlp(c) => c.learn_sigma = on,
            ModelConfig::Unet(c) => c.learn_sigma = on,
            ModelConfig::Dit(c) => c.learn_sigma = on,
        }
    }

    /// Number of classes of a class-conditional network (`None`: unconditional).
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            ModelConfig::Mlp(c) => c.num_classes,
            ModelConfig::Unet(c) => c.num_classes,
            ModelConfig::Dit(c) => c.num_classes,
        }
    }

    /// Make the network class-conditional on `n` classes (or unconditional with `None`).
    pub fn set_num_classes(&mut self, n: Option<usize>) {
        match self {
            ModelConfig::Mlp(c) => c.num_classes = n,
            ModelConfig::Unet(c) => c.num_classes = n,
            ModelConfig::Dit(c) => c.num_classes = n,
        }
    }

    /// Shape of one data sample (without the batch dimension) the network generates (a U-Net's
    /// `out_channels`; its input may carry extra conditioning channels, see
    /// [`ModelConfig::extra_input_channels`]).
    pub fn sample_shape(&self) -> Vec<usize> {
        match self {
            ModelConfig::Mlp(c) => c.sample_shape(),
            ModelConfig::Unet(c) => vec![c.out_channels, c.image_size, c.image_size],
            ModelConfig::Dit(c) => c.sample_shape(),
        }
    }

    /// Input channels beyond the generated sample's (a super-resolution U-Net's conditioning
    /// channels; 0 for every other network).
    pub fn extra_input_channels(&self) -> usize {
        match self {
            ModelConfig::Mlp(_) | ModelConfig::Dit(_) => 0,
            ModelConfig::Unet(c) => c.in_channels.saturating_sub(c.out_channels),
        }
    }

    /// Number of trainable scalars of the network `build` creates.
    pub fn param_count(&self) -> usize {
        match self {
            ModelConfig::Mlp(c) => c.param_count(),
            ModelConfig::Unet(c) => {
                let varmap = candle_nn::VarMap::new();
                let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
                Unet::new(c, vb).map_or(0, |u| u.param_count())
            }
            ModelConfig::Dit(c) => c.param_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn serde_round_trip_and_build() {
        let m = ModelConfig::Mlp(MlpConfig {
            data_dim: 2,
            hidden: 8,
            layers: 1,
            time_embed_dim: 4,
            learn_sigma: false,
            sample_shape: None,
            num_classes: None,
        });
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"kind\":\"mlp\""), "{json}");
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), m);
        // defaults fill missing fields
        let d: ModelConfig = serde_json::from_str(r#"{"kind":"mlp","data_dim":2}"#).unwrap();
        assert_eq!(d, ModelConfig::Mlp(MlpConfig::new(2)));
        assert!(serde_json::from_str::<ModelConfig>(r#"{"kind":"transformer","data_dim":2}"#).is_err());
        let vm = VarMap::new();
        let _net = m.build(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n, m.param_count());
    }
}
