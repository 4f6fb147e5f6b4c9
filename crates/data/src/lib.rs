//! rediffuse-data: data sets (2-D toy sets, `.npy` arrays, images) and loaders.

pub mod fetch;
pub mod images;
