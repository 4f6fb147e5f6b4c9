//! Typed errors of the data layer.

use std::path::PathBuf;

/// Errors raised while generating, reading or writing data sets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file does not exist.
    #[error("file not found: {}", .0.display())]
    NotFound(PathBuf),
    /// Any other I/O failure on `path`.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the `\x93NUMPY` magic string.
    #[error("{}: not a .npy file (bad magic bytes)", .0.display())]
    BadMagic(PathBuf),
    /// The file ends before `what` is complete.
    #[error("{}: truncated file ({what})", path.display())]
    Truncated { path: PathBuf, what: String },
    /// The `.npy` header could not be parsed or is inconsistent.
    #[error("{}: malformed .npy header: {reason}", path.display())]
    BadHeader { path: PathBuf, reason: String },
    /// The array dtype is not one this crate reads.
    #[error("{}: unsupported dtype `{dtype}` (supported: {supported})", path.display())]
    UnsupportedDtype { path: PathBuf, dtype: String, supported: &'static str },
    /// The array is stored in Fortran (column-major) order.
    #[error("{}: Fortran-order arrays are not supported (save with C order)", .0.display())]
    FortranOrder(PathBuf),
    /// The element count implied by a shape differs from the data length.
    #[error("size mismatch: shape {shape:?} needs {expected} elements, got {actual}")]
    SizeMismatch { shape: Vec<usize>, expected: usize, actual: usize },
    /// A toy data-set name is not known.
    #[error("unknown toy data set `{name}` (valid: {valid})")]
    UnknownToy { name: String, valid: String },
    /// A data specification string names neither a known data set nor a file type we read.
    #[error("unknown data source `{spec}` (valid: {valid})")]
    UnknownSource { spec: String, valid: String },
    /// More rows were requested than the source holds.
    #[error("requested {requested} rows but {} holds only {available}", path.display())]
    NotEnoughRows { path: PathBuf, requested: usize, available: usize },
    /// A parameter is out of its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// Error raised by the tensor engine.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        DataError::InvalidParameter { name, reason: reason.into() }
    }

    /// Wrap an I/O error, mapping `NotFound` to [`DataError::NotFound`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound(path)
        } else {
            DataError::Io { path, source }
        }
    }
}
