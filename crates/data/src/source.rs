//! Data specifications: a string naming a data set (`moons`, `data/x.npy`, ...)
//! parsed into a typed [`DataSpec`], and loaded as a tensor.

use crate::error::{DataError, Result};
use crate::npy::read_npy;
use crate::toy2d::Toy2d;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Number of points drawn from a toy set when no count is given.
pub const DEFAULT_TOY_SAMPLES: usize = 10_000;

/// Where training or reference data come from.
///
/// Serialised as the same string [`DataSpec::parse`] accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSpec {
    /// A 2-D toy distribution sampled from a seed.
    Toy(Toy2d),
    /// An array stored in a `.npy` file; the first axis indexes samples.
    Npy(PathBuf),
}

impl DataSpec {
    /// Description of the accepted forms, for error messages and help text.
    pub fn valid_forms() -> String {
        format!("a toy set ({}) or a path ending in .npy", Toy2d::valid_names())
    }

    /// Parse a specification: a string ending in `.npy` (case-insensitive) is a file,
    /// anything else must name a toy set.
    pub fn parse(s: &str) -> Result<Self> {
        let trimmed = s.trim();
        if trimmed.to_ascii_lowercase().ends_with(".npy") {
            return Ok(DataSpec::Npy(PathBuf::from(trimmed)));
        }
        Toy2d::from_name(trimmed)
            .map(DataSpec::Toy)
            .map_err(|_| DataError::UnknownSource { spec: s.to_string(), valid: Self::valid_forms() })
    }

    /// Load the data as an f32 tensor `[N, ...]`.
    ///
    /// Toy sets: `n` points (default [`DEFAULT_TOY_SAMPLES`]) drawn with `seed`, shape `[n, 2]`.
    /// `.npy` files: the whole array, or its first `n` rows; `seed` is not used.
    pub fn load(&self, n: Option<usize>, seed: u64, device: &Device) -> Result<Tensor> {
        if n == Some(0) {
            return Err(DataError::invalid("n", "the number of samples must be at least 1"));
        }
        match self {
            DataSpec::Toy(toy) => toy.sample_tensor(n.unwrap_or(DEFAULT_TOY_SAMPLES), seed, device),
            DataSpec::Npy(path) => {
                let arr = read_npy(path)?;
                let Some(&rows) = arr.shape.first() else {
                    return Err(DataError::invalid(
                        "data",
                        format!("{} holds a 0-dimensional array; need [N, ...]", path.display()),
                    ));
                };
                if rows == 0 {
                    return Err(DataError::invalid("data", format!("{} holds no rows", path.display())));
                }
                let t = arr.to_tensor(device)?;
                match n {
                    None => Ok(t),
                    Some(k) if k <= rows => Ok(t.narrow(0, 0, k)?),
                    Some(k) => {
                        Err(DataError::NotEnoughRows { path: path.clone(), requested: k, available: rows })
                    }
                }
            }
        }
    }
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSpec::Toy(t) => write!(f, "{t}"),
            DataSpec::Npy(p) => write!(f, "{}", p.display()),
        }
    }
}

impl std::str::FromStr for DataSpec {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        DataSpec::parse(s)
    }
}

impl TryFrom<String> for DataSpec {
    type Error = DataError;
    fn try_from(s: String) -> Result<Self> {
        DataSpec::parse(&s)
    }
}

impl From<DataSpec> for String {
    fn from(d: DataSpec) -> String {
        d.to_string()
    }
}
