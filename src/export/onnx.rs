//! ONNX export through burn-onnx: the model (MLP or CNN) plus its output head (softmax, or the target's scale)
//! traced into an ONNX graph with a dynamic batch axis.

use burn::module::{Module, Param};
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
    /// `[classes, classes²]`: logits times this give every difference `l_j - l_i` (column
    /// `i·classes + j`).
    pairwise_differences: Param<Tensor<2>>,
    /// `[classes², classes]` of 0/1: sums each run of `classes` columns (over `j`, for each `i`).
    group_sums: Param<Tensor<2>>,
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
            // Softmax as p_i = 1 / Σ_j exp(l_j − l_i), which cannot overflow into NaN: a large
            // difference gives exp → inf, so p_i → 0, its correct limit; the j = i term keeps
            // the sum ≥ 1. burn-onnx 0.22 lowers neither softmax, reductions nor a reciprocal,
            // so the differences and sums are matmuls with constant matrices, and 1/s is
            // exp(−ln s) (ln inf = inf, exp(−inf) = 0).
            let differences = output.matmul(self.pairwise_differences.val());
            let sums = differences.exp().matmul(self.group_sums.val());
            sums.log().neg().exp()
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
        pairwise_differences: Param::from_tensor(pairwise_differences(outputs, device)),
        group_sums: Param::from_tensor(group_sums(outputs, device)),
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

/// `A[k, i·n + j] = [k = j] − [k = i]`, so `(l · A)[i·n + j] = l_j − l_i`.
fn pairwise_differences(n: usize, device: &Device) -> Tensor<2> {
    let mut values = vec![0f32; n * n * n];
    for i in 0..n {
        for j in 0..n {
            let column = i * n + j;
            values[j * n * n + column] += 1.0;
            values[i * n * n + column] -= 1.0;
        }
    }
    Tensor::from_data(TensorData::new(values, [n, n * n]), device)
}

/// `B[i·n + j, i] = 1`: column `i` of `x · B` sums `x[i·n .. i·n + n]`.
fn group_sums(n: usize, device: &Device) -> Tensor<2> {
    let mut values = vec![0f32; n * n * n];
    for i in 0..n {
        for j in 0..n {
            values[(i * n + j) * n + i] = 1.0;
        }
    }
    Tensor::from_data(TensorData::new(values, [n * n, n]), device)
}
