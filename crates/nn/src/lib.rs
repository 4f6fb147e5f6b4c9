//! rediffuse-nn: networks (time-conditioned MLP, U-Net) and the CPU kernels
//! they run on. Depends only on rediffuse-core and candle.

pub mod net;
pub mod ops;
pub mod unet;

pub use net::DiffusionNet;
