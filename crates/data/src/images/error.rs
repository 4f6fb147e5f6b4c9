//! Typed errors of the image loaders.

use std::path::PathBuf;

/// Errors raised while reading image data sets.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not an IDX file (magic bytes {found:02x?}, expected [00, 00, type, ndim])")]
    BadMagic { path: PathBuf, found: Vec<u8> },
    #[error("{path}: unsupported IDX element type 0x{code:02x} (only 0x08 = unsigned byte)")]
    UnsupportedIdxType { path: PathBuf, code: u8 },
    #[error("{path}: truncated: expected {expected} bytes, found {found}")]
    Truncated { path: PathBuf, expected: u64, found: u64 },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("cannot decode image {path}: {source}")]
    Decode { path: PathBuf, source: image::ImageError },
    #[error("no data files found: {0}")]
    Missing(String),
    #[error("data set `{dataset}` has no {split} split")]
    NoSplit { dataset: &'static str, split: &'static str },
    #[error("index {index} out of range for a data set of {len} images")]
    OutOfRange { index: usize, len: usize },
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl ImageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io { path: path.into(), source }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ImageError::Malformed { path: path.into(), reason: reason.into() }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        ImageError::InvalidArgument { name, reason: reason.into() }
    }
}

pub type Result<T> = std::result::Result<T, ImageError>;
