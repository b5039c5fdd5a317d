//! Any of Kiln's models behind one type: building, running, stepping and (de)serialising.
//!
//! Not a derived burn module on purpose: a derived enum puts the variant name into every tensor
//! path, which would rename the MLP's stored weights (`layers.0.weight`) that exports rely on.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Gradients;
use burn::tensor::{Bytes, Device, Tensor};

use super::cnn::Cnn;
use super::config::ModelConfig;
use super::mlp::Mlp;
use crate::data::InputShape;

#[derive(Debug, Clone)]
pub enum Network {
    Mlp(Mlp),
    Cnn(Cnn),
}

impl Network {
    /// Builds a fresh (randomly initialised) model; the config must suit the input shape.
    pub fn new(
        config: &ModelConfig,
        input: &InputShape,
        outputs: usize,
        device: &Device,
    ) -> Result<Self, String> {
        config
            .validate_for(input)
            .map_err(|error| error.to_string())?;
        Ok(match (config, input) {
            (ModelConfig::Mlp(mlp), _) => {
                Network::Mlp(Mlp::new(mlp, input.width(), outputs, device))
            }
            (ModelConfig::Cnn(cnn), InputShape::Image(shape)) => {
                Network::Cnn(Cnn::new(cnn, *shape, outputs, device))
            }
            (ModelConfig::Cnn(_), InputShape::Flat(_)) => {
                return Err("a CNN needs image data".to_string());
            }
        })
    }

    /// Builds the model described by `config` and loads burnpack `bytes` into it; every tensor
    /// must match.
    pub fn from_burnpack(
        config: &ModelConfig,
        input: &InputShape,
        outputs: usize,
        bytes: Vec<u8>,
        device: &Device,
    ) -> Result<Self, String> {
        let mut model = Self::new(config, input, outputs, device)?;
        let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)));
        let result = match &mut model {
            Network::Mlp(mlp) => mlp.load_from(&mut store),
            Network::Cnn(cnn) => cnn.load_from(&mut store),
        }
        .map_err(|error| format!("the weights do not fit the model: {error}"))?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(format!(
                "the weights do not fit the model: errors {:?}, missing {:?}",
                result.errors, result.missing
            ));
        }
        Ok(model)
    }

    /// Logits (classification) or standardised values (regression), `[batch, outputs]`.
    pub fn forward(&self, input: Tensor<2>, training: bool) -> Tensor<2> {
        match self {
            Network::Mlp(mlp) => mlp.forward(input, training),
            Network::Cnn(cnn) => cnn.forward(input, training),
        }
    }

    /// The model without autodiff, in inference mode (batch-norm uses its running statistics).
    pub fn valid(&self) -> Self {
        match self {
            Network::Mlp(mlp) => Network::Mlp(mlp.valid()),
            Network::Cnn(cnn) => Network::Cnn(cnn.valid()),
        }
    }

    /// The weights as burnpack bytes (written to disk by the caller, atomically).
    pub fn to_burnpack(&self) -> Result<Vec<u8>, String> {
        let mut store = BurnpackStore::from_bytes(None);
        // `valid()` folds pending batch-norm statistics in; saving the training module directly
        // can miss the last batch's update.
        match self.valid() {
            Network::Mlp(mlp) => mlp.save_into(&mut store),
            Network::Cnn(cnn) => cnn.save_into(&mut store),
        }
        .map_err(|error| error.to_string())?;
        let bytes = store.get_bytes().map_err(|error| error.to_string())?;
        Ok(bytes.to_vec())
    }

    /// Saves the weights into any burn store (safetensors for exports).
    pub fn save_into<S: burn::store::ModuleStore>(&self, store: &mut S) -> Result<(), String> {
        match self.valid() {
            Network::Mlp(mlp) => mlp.save_into(store),
            Network::Cnn(cnn) => cnn.save_into(store),
        }
        .map_err(|error| error.to_string())
    }

    /// One optimiser step with the gradients of a loss computed from this model.
    pub fn step(&mut self, optimizer: &mut ModuleOptimizer, lr: f64, grads: Gradients) {
        match self {
            Network::Mlp(mlp) => {
                let gradients = GradientsParams::from_grads(grads, &*mlp);
                let model = std::mem::replace(mlp, mlp.placeholder());
                *mlp = optimizer.step(lr, model, gradients);
            }
            Network::Cnn(cnn) => {
                let gradients = GradientsParams::from_grads(grads, &*cnn);
                let model = std::mem::replace(cnn, cnn.placeholder());
                *cnn = optimizer.step(lr, model, gradients);
            }
        }
    }
}
