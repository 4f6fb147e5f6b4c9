//! rediffuse-data: data sets (2-D toy sets, `.npy` arrays, images) and loaders.

pub mod error;
pub mod fetch;
pub mod images;
pub mod npy;
pub mod source;
pub mod toy2d;

pub use error::{DataError, Result};
pub use npy::{read_npy, read_npy_tensor, write_npy, write_npy_tensor, NpyArray, NpyDtype};
pub use source::DataSpec;
pub use toy2d::Toy2d;
