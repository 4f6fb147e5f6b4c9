//! One module per subcommand.

pub mod data;
pub mod demo;
pub mod eval;
pub mod sample;
pub mod train;
