//! One module per subcommand.

pub mod analytic;
pub mod autoencoder;
pub mod cascade;
pub mod classifier;
pub mod cold;
pub mod data;
pub mod demo;
pub mod distill;
pub mod els;
pub mod eval;
pub mod features;
pub mod iddpm;
pub mod inpaint;
pub mod interpolate;
pub mod nll;
pub mod reflow;
pub mod resize;
pub mod sample;
pub mod train;
pub mod train_eval;
