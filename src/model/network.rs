//! Any of Kiln's models behind one type: building, running, stepping and (de)serialising.
//!
//! Not a derived burn module on purpose: a derived enum puts the variant name into every tensor
//! path, which would rename the MLP's stored weights (`layers.0.weight`) that exports rely on.

use burn::module::{Module, ModuleVisitor, Param};
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
    /// Draws every parameter's initial values (burn's parameters are initialised lazily).
    fn initialize_now(&self) {
        struct Draw;
        impl ModuleVisitor for Draw {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        match self {
            Network::Mlp(mlp) => mlp.visit(&mut Draw),
            Network::Cnn(cnn) => cnn.visit(&mut Draw),
        }
    }

    /// Builds a fresh (randomly initialised) model; the config must suit the input shape.
    pub fn new(
        config: &ModelConfig,
        input: &InputShape,
        outputs: usize,
        device: &Device,
    ) -> Result<Self, String> {
        let network = Self::build(config, input, outputs, device)?;
        // burn draws a parameter's initial values at its first use; drawing them all here keeps
        // them a function of the generator's state now (the caller seeds it under a lock: the
        // device's generator is shared by every run in the process, so a first forward pass
        // running beside another run's initialisation drew from the other run's sequence).
        network.initialize_now();
        Ok(network)
    }

    /// The model with its parameters not yet drawn (burn draws them at their first use): for
    /// loading weights into, which then never draws.
    fn build(
        config: &ModelConfig,
        input: &InputShape,
        outputs: usize,
        device: &Device,
    ) -> Result<Self, String> {
        config
            .validate_for(input)
            .map_err(|error| error.to_string())?;
        let network = match (config, input) {
            (ModelConfig::Mlp(mlp), _) => {
                Network::Mlp(Mlp::new(mlp, input.width(), outputs, device))
            }
            (ModelConfig::Cnn(cnn), InputShape::Image(shape)) => {
                Network::Cnn(Cnn::new(cnn, *shape, outputs, device))
            }
            (ModelConfig::Cnn(_), InputShape::Flat(_)) => {
                return Err("a CNN needs image data".to_string());
            }
        };
        Ok(network)
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
        let weight_bytes = bytes.len();
        let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)));
        Self::from_store(config, input, outputs, &mut store, weight_bytes, device)
    }

    /// Builds the model described by `config` and loads its weights from `store` (burnpack, or
    /// safetensors with the PyTorch adapter), which holds `weight_bytes`; every tensor must match.
    pub fn from_store<S: burn::store::ModuleStore>(
        config: &ModelConfig,
        input: &InputShape,
        outputs: usize,
        store: &mut S,
        weight_bytes: usize,
        device: &Device,
    ) -> Result<Self, String> {
        check_loadable(config, input, outputs, weight_bytes)?;
        let mut model = Self::build(config, input, outputs, device)?;
        let result = match &mut model {
            Network::Mlp(mlp) => mlp.load_from(store),
            Network::Cnn(cnn) => cnn.load_from(store),
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

    /// Every weight tensor by its stored name, as `f32` values: for comparing two copies of a
    /// model, e.g. the same training step run on two devices.
    pub fn parameters(&self) -> Result<Vec<(String, Vec<f32>)>, String> {
        let tensors = match self.valid() {
            Network::Mlp(mlp) => mlp.collect(None, None, false),
            Network::Cnn(cnn) => cnn.collect(None, None, false),
        };
        tensors
            .into_iter()
            .map(|tensor| {
                let (name, dtype, _, _, bytes) =
                    tensor.into_parts().map_err(|error| error.to_string())?;
                if dtype != burn::tensor::DType::F32 {
                    return Err(format!("{name} is {dtype:?}, not f32"));
                }
                let values = bytes
                    .chunks_exact(4)
                    .map(|four| f32::from_le_bytes([four[0], four[1], four[2], four[3]]))
                    .collect();
                Ok((name, values))
            })
            .collect()
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

/// Hidden layers, conv blocks and dense layers a model read from a file may have.
const MAX_LOADED_LAYERS: usize = 64;
/// Inputs per row a model read from a file may take (a 4096×4096 RGB image is 50M).
const MAX_LOADED_INPUTS: usize = 1 << 26;

/// Refuses, before anything is allocated, a model description (from a card or a run folder
/// that may come from elsewhere) that is absurdly large or that `weight_bytes` cannot hold.
fn check_loadable(
    config: &ModelConfig,
    input: &InputShape,
    outputs: usize,
    weight_bytes: usize,
) -> Result<(), String> {
    let inputs = match input {
        InputShape::Flat(width) => Some(*width),
        InputShape::Image(shape) => shape
            .channels
            .checked_mul(shape.height)
            .and_then(|pixels| pixels.checked_mul(shape.width)),
    };
    if inputs.is_none_or(|inputs| inputs == 0 || inputs > MAX_LOADED_INPUTS) {
        return Err(format!(
            "the model claims an input size Kiln does not load (1 to {MAX_LOADED_INPUTS} values)"
        ));
    }
    if outputs == 0 || outputs > super::config::MAX_LAYER_WIDTH {
        return Err(format!("the model claims {outputs} outputs"));
    }
    let layers = match config {
        ModelConfig::Mlp(mlp) => mlp.hidden.len(),
        ModelConfig::Cnn(cnn) => cnn.blocks.len() + cnn.dense.len(),
    };
    if layers > MAX_LOADED_LAYERS {
        return Err(format!(
            "the model claims {layers} layers; Kiln loads at most {MAX_LOADED_LAYERS}"
        ));
    }
    config
        .validate_for(input)
        .map_err(|error| error.to_string())?;
    // Every parameter is an f32 in the weights file, so a file smaller than that is not them.
    let parameters = config.parameter_count(input, outputs);
    if parameters.saturating_mul(4) > weight_bytes {
        return Err(format!(
            "the weights file has {weight_bytes} bytes, too few for the {parameters} parameters the model claims"
        ));
    }
    Ok(())
}
