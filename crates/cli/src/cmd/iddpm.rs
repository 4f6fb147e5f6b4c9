//! iDDPM settings of `rediffuse train`: learned-variance networks, importance sampling, and the
//! number of data levels of the decoder term L₀.

use anyhow::{bail, Result};
use rediffuse_data::images::ImageSpec;
use rediffuse_train::{Method, TrainConfig};

/// Levels of the embedded digits at their native 8×8 size: pixel values v ∈ {0, …, 16}, scaled
/// to [−1, 1] as v/16·2 − 1 by the data layer.
pub const DIGITS_LEVELS: u32 = 17;

/// The number of values of a data set in [−1, 1] that a discretized decoder should assume:
/// 17 for the native digits, `None` when the data set does not say (8-bit images, `.npy` files).
pub fn known_levels(data: &str) -> Option<u32> {
    match crate::cmd::data::parse(data) {
        Ok(crate::cmd::data::Data::Images(ImageSpec::Digits { size: 8 })) => Some(DIGITS_LEVELS),
        _ => None,
    }
}

/// Make a run configuration consistent for its method: iDDPM networks output a learned variance
/// (`learn_sigma`, set here for `--model mlp|unet`), other methods' do not; `--importance-sampling`
/// turns on iDDPM's p_t ∝ √E[L_t²]; on the native digits L₀ uses 17 levels.
pub fn configure(cfg: &mut TrainConfig, importance_sampling: bool) -> Result<()> {
    let data = cfg.data.clone();
    match &mut cfg.method {
        Method::Iddpm { iddpm, .. } => {
            if importance_sampling {
                iddpm.importance_sampling = true;
            }
            if let Some(levels) = known_levels(&data) {
                iddpm.data_levels = levels;
            }
            cfg.model.set_learn_sigma(true);
        }
        _ if importance_sampling => bail!("--importance-sampling applies to --method iddpm only"),
        _ => cfg.model.set_learn_sigma(false),
    }
    Ok(())
}
