//! Model configurations (serde) and the burn modules they build.

mod cnn;
mod config;
mod mlp;
mod network;

pub use cnn::{Cnn, ConvLayer};
pub use config::{
    Activation, CnnConfig, ConvBlock, MAX_KERNEL_SIZE, MlpConfig, ModelConfig, ModelConfigError,
};
pub use mlp::Mlp;
pub use network::Network;
