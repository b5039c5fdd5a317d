//! ONNX export through burn-onnx: the MLP plus its output head (softmax, or the target's scale)
//! traced into an ONNX graph with a dynamic batch axis.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter, Opset};

use crate::data::{Preprocessor, Task};
use crate::model::Mlp;

/// Whether burn-onnx can export this model; the reason when it cannot.
pub fn onnx_support(model: &crate::model::ModelConfig) -> Result<(), String> {
    match model {
        crate::model::ModelConfig::Mlp(config)
            if config.activation == crate::model::Activation::Gelu =>
        {
            Err(
                "burn-onnx 0.22 cannot export gelu yet; use relu or tanh for an ONNX model"
                    .to_string(),
            )
        }
        crate::model::ModelConfig::Mlp(_) => Ok(()),
    }
}

/// What the ONNX graph computes: the card's outputs (probabilities or values), not raw logits.
#[derive(Module, Debug)]
struct Deployed {
    mlp: Mlp,
    /// `[classes, classes]` of ones: multiplying by it gives every column its row's sum.
    row_sum: Param<Tensor<2>>,
    #[module(skip)]
    classification: bool,
    #[module(skip)]
    target_mean: f64,
    #[module(skip)]
    target_std: f64,
}

impl Deployed {
    fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let output = self.mlp.forward(input, false);
        if self.classification {
            // burn-onnx 0.22 lowers neither softmax nor reductions, so the row sums come from a
            // matmul with a ones matrix. Without the usual max subtraction, a logit above ~88
            // would overflow f32; trained MLP logits stay far below that.
            let exp = output.exp();
            exp.clone() / exp.matmul(self.row_sum.val())
        } else {
            output
                .mul_scalar(self.target_std)
                .add_scalar(self.target_mean)
        }
    }
}

/// The ONNX bytes (opset 18) of `model`: input `[batch, inputs]`, output `[batch, outputs]`.
pub fn onnx_bytes(
    model: &Mlp,
    task: Task,
    preprocessor: &Preprocessor,
    (inputs, outputs): (usize, usize),
    device: &Device,
) -> Result<Vec<u8>, String> {
    let deployed = Deployed {
        mlp: model.clone(),
        row_sum: Param::from_tensor(Tensor::ones([outputs, outputs], device)),
        classification: task == Task::Classification,
        target_mean: preprocessor.target_mean,
        target_std: preprocessor.target_std,
    };
    let sample = Tensor::<2>::zeros([1, inputs], device);
    let validation = Tensor::<2>::zeros([2, inputs], device);
    let specs = [InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
    ])];
    OnnxExporter::new()
        .opset(Opset::V18)
        .export_dynamic(&deployed, sample, validation, &specs, Deployed::forward)
        .map(|model| model.into_bytes())
        .map_err(|error| error.to_string())
}
