//! Model configurations (serde) and the burn modules they build.

mod cnn;
mod config;
mod cost;
pub mod cpu_kernels;
mod mlp;
mod network;

pub use cnn::{Cnn, ConvLayer};
pub use config::{
    Activation, CnnConfig, ConvBlock, MAX_CONV_CHANNELS, MAX_KERNEL_SIZE, MAX_LAYER_WIDTH,
    MlpConfig, ModelConfig, ModelConfigError,
};
pub use mlp::Mlp;
pub use network::Network;
