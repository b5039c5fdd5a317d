//! ONNX export through burn-onnx: the model (MLP or CNN) plus its output head (softmax, or the target's scale)
//! traced into an ONNX graph with a dynamic batch axis.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter, Opset};

use crate::data::{Preprocessor, Task};
use crate::model::{Cnn, Mlp, Network};

/// Whether burn-onnx can export this model; the reason when it cannot.
pub fn onnx_support(model: &crate::model::ModelConfig) -> Result<(), String> {
    match model {
        crate::model::ModelConfig::Cnn(_) => Ok(()),
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
    mlp: Option<Mlp>,
    cnn: Option<Cnn>,
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
        let output = match &self.mlp {
            Some(mlp) => mlp.forward(input, false),
            None => input,
        };
        self.head(output)
    }

    /// CNNs take images `[batch, channels, height, width]`: burn-onnx cannot keep the batch axis
    /// dynamic through a reshape that splits flat pixels into an image.
    fn forward_images(&self, images: Tensor<4>) -> Tensor<2> {
        match &self.cnn {
            Some(cnn) => self.head(cnn.forward_images(images, false)),
            None => images.flatten(1, 3),
        }
    }

    fn head(&self, output: Tensor<2>) -> Tensor<2> {
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
    model: &Network,
    task: Task,
    preprocessor: &Preprocessor,
    (inputs, outputs): (usize, usize),
    device: &Device,
) -> Result<Vec<u8>, String> {
    let (mlp, cnn) = match model.valid() {
        Network::Mlp(mlp) => (Some(mlp), None),
        Network::Cnn(cnn) => (None, Some(cnn)),
    };
    let deployed = Deployed {
        mlp,
        cnn,
        row_sum: Param::from_tensor(Tensor::ones([outputs, outputs], device)),
        classification: task == Task::Classification,
        target_mean: preprocessor.target_mean,
        target_std: preprocessor.target_std,
    };
    // The exporter tells dynamic axes from static ones by tracing two batch sizes; sizes no
    // layer is likely to have (a batch of 1 would look like a 1-channel image's channel axis).
    let sample = Tensor::<2>::zeros([37, inputs], device);
    let validation = Tensor::<2>::zeros([53, inputs], device);
    let exporter = OnnxExporter::new().opset(Opset::V18);
    let exported = match preprocessor
        .image
        .as_ref()
        .filter(|_| deployed.cnn.is_some())
    {
        Some(image) => {
            let shape = image.shape;
            let dims = |batch| [batch, shape.channels, shape.height, shape.width];
            let specs = [InputSpec::new([
                AxisSpec::dynamic("batch"),
                AxisSpec::Static,
                AxisSpec::Static,
                AxisSpec::Static,
            ])];
            exporter.export_dynamic(
                &deployed,
                Tensor::<4>::zeros(dims(37), device),
                Tensor::<4>::zeros(dims(53), device),
                &specs,
                Deployed::forward_images,
            )
        }
        None => {
            let specs = [InputSpec::new([
                AxisSpec::dynamic("batch"),
                AxisSpec::Static,
            ])];
            exporter.export_dynamic(&deployed, sample, validation, &specs, Deployed::forward)
        }
    };
    exported
        .map(|model| model.into_bytes())
        .map_err(|error| error.to_string())
}
