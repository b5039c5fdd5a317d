//! ONNX export through burn-onnx: the model (MLP or CNN) plus its output head (softmax, or the target's scale)
//! traced into an ONNX graph with a dynamic batch axis.

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
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
    /// One `[classes, 1]` one-hot column per class: logits times it pick that class's logit.
    pick: Vec<Param<Tensor<2>>>,
    /// `[1, classes]` of ones: spreads a per-row value over every class.
    spread: Param<Tensor<2>>,
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
            // A softmax that cannot overflow: exp(l − max l) lies in (0, 1], so the row sums
            // lie in [1, classes] and nothing becomes inf or NaN, however large the logits (a
            // naive exp(l) overflows above ~88, and inf · 0 in the sums' matmul gives NaN).
            // Built from ops burn-onnx 0.22 lowers: the row maximum as a running
            // max(m, x) = m + relu(x − m) over columns picked by matmuls with one-hot
            // columns, and the sums as a matmul with a ones matrix.
            let mut max = output.clone().matmul(self.pick[0].val());
            for pick in &self.pick[1..] {
                let logit = output.clone().matmul(pick.val());
                max = max.clone() + relu(logit - max);
            }
            let exp = (output - max.matmul(self.spread.val())).exp();
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
        pick: (0..outputs.max(1))
            .map(|class| Param::from_tensor(one_hot_column(class, outputs.max(1), device)))
            .collect(),
        spread: Param::from_tensor(Tensor::ones([1, outputs], device)),
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

/// `[n, 1]`, one at `class`: logits times it give that class's logit, exactly.
fn one_hot_column(class: usize, n: usize, device: &Device) -> Tensor<2> {
    let mut values = vec![0f32; n];
    values[class] = 1.0;
    Tensor::from_data(TensorData::new(values, [n, 1]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exported head alone (no layers: its input is the logits), run by the ONNX
    /// interpreter, against Kiln's own softmax on logits far beyond f32's exp range.
    #[test]
    fn the_exported_softmax_cannot_overflow() {
        let device = Device::flex();
        let classes = 3;
        let head = Deployed {
            mlp: None,
            cnn: None,
            pick: (0..classes)
                .map(|class| Param::from_tensor(one_hot_column(class, classes, &device)))
                .collect(),
            spread: Param::from_tensor(Tensor::ones([1, classes], &device)),
            row_sum: Param::from_tensor(Tensor::ones([classes, classes], &device)),
            classification: true,
            target_mean: 0.0,
            target_std: 1.0,
        };
        let specs = [InputSpec::new([
            AxisSpec::dynamic("batch"),
            AxisSpec::Static,
        ])];
        let bytes = OnnxExporter::new()
            .opset(Opset::V18)
            .export_dynamic(
                &head,
                Tensor::<2>::zeros([37, classes], &device),
                Tensor::<2>::zeros([53, classes], &device),
                &specs,
                Deployed::forward,
            )
            .expect("the head exports")
            .into_bytes();
        let logits: Vec<f32> = vec![
            1000.0, -1000.0, 0.0, //
            -1000.0, 1000.0, 999.0, //
            88.0, 89.0, 90.0, //
            0.1, 0.2, 0.3, //
            1.0e30, -1.0e30, 0.0, //
            -5.0e3, 2.0e3, 2.0e3,
        ];
        let rows = logits.len() / classes;
        let onnx = crate::export::onnx_eval::run_onnx(&bytes, vec![rows, classes], logits.clone())
            .expect("the interpreter runs it");
        for (row, got) in logits.chunks(classes).zip(onnx.chunks(classes)) {
            let expected = crate::train::softmax(row);
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    g.is_finite() && (f64::from(*g) - e).abs() < 1e-5,
                    "{row:?}: {got:?} vs {expected:?}"
                );
            }
        }
    }
}
