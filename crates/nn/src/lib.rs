//! rediffuse-nn: networks (time-conditioned MLP, U-Net, DiT) and the CPU kernels
//! they run on. Depends only on rediffuse-core and candle.

pub mod autoencoder;
pub mod checkpoint;
pub mod classifier;
pub mod diffusers;
pub mod dit;
pub mod embedding;
pub mod error;
pub mod mlp;
pub mod model;
pub mod net;
pub mod ops;
pub mod unet;

pub use autoencoder::{AutoencoderKl, AutoencoderKlConfig};
pub use classifier::{Classifier, ClassifierConfig, ClassifierOutput};
pub use dit::{Dit, DitConfig};
pub use embedding::{timestep_embedding, SinusoidalEmbedding};
pub use error::NnError;
pub use mlp::{Mlp, MlpConfig};
pub use model::ModelConfig;
pub use net::{ConditionedNet, DiffusionNet};
