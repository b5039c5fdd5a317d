//! Model configurations (serde) and the burn modules they build.

mod config;
mod mlp;

pub use config::{Activation, MlpConfig, ModelConfig, ModelConfigError};
pub use mlp::Mlp;
