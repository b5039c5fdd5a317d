//! Where a CNN training step spends its time on the CPU: each layer of Kiln's default CNN
//! (and of the 32×32 RGB one), forward and forward + backward, at batch 32, 128 and 256, on
//! burn's flex backend.
//!
//!     cargo run --release --example bench -- --only cnn-ops   # writes its section of BENCHMARKS.md

use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNormConfig, LinearConfig, PaddingConfig2d};
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use kiln::data::ImageShape;
use kiln::model::cpu_kernels;
use kiln::model::{Cnn, CnnConfig, ConvBlock};

use super::{Row, median, row};

pub const EXPLANATION: &str = "Each op runs on random tensors of the shape it sees inside the network, \
    on burn's flex backend with autodiff (as in training); the figure is the median of repeated calls after a warm-up, \
    in milliseconds per call, synchronised by reading a value back. Forward + backward includes the forward. \
    Intermediate ops also compute their input's gradient (as in the network); the first conv does not. \
    The dense row is the head (flatten → 64 → ReLU → 10), the step row a whole training step of the model with Adam \
    (dropout on, as in training); \"% of a step\" is the op's forward + backward against that whole step (which also holds Adam's update and the reshapes between layers). \
    The conv, batch-norm, max-pool, dense and cross-entropy rows come in pairs: burn flex's op, then Kiln's own CPU kernel that replaces it on the CPU \
    (`src/model/cpu_kernels/`: the convolution as matrix products forward and backward — over a column matrix of the 3×3 neighbourhoods \
    for few channels or small images, over shifted views of the padded images for many channels on larger ones; batch-norm as two passes \
    each way; the pool keeps each window's winner for its backward; the dense layer adds its bias and applies its ReLU in the product's pass; \
    the loss computes its value, its gradient and the batch's tally in one pass per row). The step row is the network as Kiln trains it: Kiln's kernels, \
    the ReLU after the pool (the same values on a quarter of the elements) and dropout masks from a fast seeded generator. \
    Exports, batch-norm in inference and the GPU keep burn's ops. \
    PyTorch's times (when `KILN_TORCH_PYTHON` names a Python with torch) come from `benches/torch_cnn_ops.py`: the same ops, shapes and timing rule, \
    in a separate process run right after Kiln's for the same batch; \"Kiln / PyTorch time\" above 1 means Kiln is slower.";

struct Setup {
    label: &'static str,
    shape: ImageShape,
    channels: [usize; 2],
}

const SETUPS: [Setup; 2] = [
    Setup {
        label: "1×8×8 (digits)",
        shape: ImageShape {
            channels: 1,
            height: 8,
            width: 8,
        },
        channels: [16, 32],
    },
    Setup {
        label: "3×32×32",
        shape: ImageShape {
            channels: 3,
            height: 32,
            width: 32,
        },
        channels: [32, 64],
    },
];
const BATCHES: [usize; 3] = [32, 128, 256];
const CLASSES: usize = 10;

/// Median milliseconds of `work`, after one warm-up call.
fn time_ms(repeats: usize, mut work: impl FnMut()) -> f64 {
    work();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        // As Kiln's training loop does once a step: the pool's threads kept awake.
        kiln::train::keep_warm();
        let started = Instant::now();
        work();
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    median(times)
}

fn sync<const D: usize>(tensor: Tensor<D>) {
    let _ = tensor.sum().into_scalar::<f32>();
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// (forward ms, forward + backward ms) of `op` on an input of `shape`; the input's gradient is
/// computed when `input_grad`.
fn profile<const D: usize, const E: usize>(
    device: &Device,
    shape: [usize; D],
    input_grad: bool,
    repeats: usize,
    op: impl Fn(Tensor<D>) -> Tensor<E>,
    parameter: Option<&dyn Fn() -> Tensor<1>>,
) -> (f64, f64) {
    let input = random(shape, device);
    let input = if input_grad {
        input.require_grad()
    } else {
        input
    };
    let forward = time_ms(repeats, || sync(op(input.clone())));
    let both = time_ms(repeats, || {
        let grads = op(input.clone()).sum().backward();
        if input_grad {
            if let Some(grad) = input.grad(&grads) {
                sync(grad);
            }
        } else if let Some(parameter) = parameter
            && let Some(grad) = parameter().grad(&grads)
        {
            sync(grad);
        }
    });
    (forward, both)
}

struct OpTimes {
    op: String,
    shape: String,
    forward: f64,
    both: f64,
}

fn profile_setup(setup: &Setup, batch: usize, repeats: usize) -> Vec<OpTimes> {
    let device = Device::flex().autodiff();
    let ImageShape {
        channels,
        height,
        width,
    } = setup.shape;
    let [c1, c2] = setup.channels;
    let mut out = Vec::new();
    let mut push = |op: &str, shape: String, (forward, both): (f64, f64)| {
        out.push(OpTimes {
            op: op.to_string(),
            shape,
            forward,
            both,
        })
    };
    let conv = |cin: usize, cout: usize| {
        Conv2dConfig::new([cin, cout], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device)
    };
    let conv1 = conv(channels, c1);
    let weight1 = || conv1.weight.val().flatten::<1>(0, 3);
    push(
        "conv 3×3",
        format!("{channels}→{c1}, {height}×{width}"),
        profile(
            &device,
            [batch, channels, height, width],
            false,
            repeats,
            |x| conv1.forward(x),
            Some(&weight1),
        ),
    );
    push(
        KILN_CONV,
        format!("{channels}→{c1}, {height}×{width}"),
        profile(
            &device,
            [batch, channels, height, width],
            false,
            repeats,
            |x| cpu_kernels::conv2d(&conv1, x),
            Some(&weight1),
        ),
    );
    // After each conv: batch-norm (burn's, then Kiln's kernel), ReLU, max-pool (burn's, Kiln's).
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let block_rest = |channels: usize, height: usize, width: usize| {
        let norm = BatchNormConfig::new(channels).init(&device);
        let shape = [batch, channels, height, width];
        let time =
            |op: &dyn Fn(Tensor<4>) -> Tensor<4>| profile(&device, shape, true, repeats, op, None);
        [
            ("batch-norm (training)", time(&|x| norm.forward(x))),
            (KILN_NORM, time(&|x| cpu_kernels::batch_norm(&norm, x))),
            ("ReLU", time(&relu)),
            ("max-pool 2×2", time(&|x| pool.forward(x))),
            (KILN_POOL, time(&cpu_kernels::max_pool_2x2)),
        ]
        .map(|(op, times)| (op, format!("{channels}×{height}×{width}"), times))
    };
    for (op, shape, times) in block_rest(c1, height, width) {
        push(op, shape, times);
    }
    let (h2, w2) = (height / 2, width / 2);
    let conv2 = conv(c1, c2);
    let time_conv2 = |op: &dyn Fn(Tensor<4>) -> Tensor<4>| {
        profile(&device, [batch, c1, h2, w2], true, repeats, op, None)
    };
    push(
        "conv 3×3",
        format!("{c1}→{c2}, {h2}×{w2}"),
        time_conv2(&|x| conv2.forward(x)),
    );
    push(
        KILN_CONV,
        format!("{c1}→{c2}, {h2}×{w2}"),
        time_conv2(&|x| cpu_kernels::conv2d(&conv2, x)),
    );
    for (op, shape, times) in block_rest(c2, h2, w2) {
        push(op, shape, times);
    }
    let flat = c2 * (height / 4) * (width / 4);
    let dense1 = LinearConfig::new(flat, 64).init(&device);
    let dense2 = LinearConfig::new(64, CLASSES).init(&device);
    push(
        "dense head",
        format!("{flat}→64→{CLASSES}"),
        profile(
            &device,
            [batch, flat],
            true,
            repeats,
            |x| dense2.forward(relu(dense1.forward(x))),
            None,
        ),
    );
    push(
        KILN_DENSE,
        format!("{flat}→64→{CLASSES}"),
        profile(
            &device,
            [batch, flat],
            true,
            repeats,
            |x| cpu_kernels::dense(&dense2, cpu_kernels::dense(&dense1, x, true), false),
            None,
        ),
    );
    let loss = CrossEntropyLossConfig::new().init(&device);
    let labels: Vec<i64> = (0..batch).map(|i| (i % CLASSES) as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    push(
        "cross-entropy",
        format!("{batch}×{CLASSES}"),
        profile(
            &device,
            [batch, CLASSES],
            true,
            repeats,
            |x| loss.forward(x, targets.clone()).reshape([1]),
            None,
        ),
    );
    push(
        KILN_LOSS,
        format!("{batch}×{CLASSES}"),
        profile(
            &device,
            [batch, CLASSES],
            true,
            repeats,
            |x| cpu_kernels::cross_entropy(x, targets.clone()).0,
            None,
        ),
    );
    push(
        "training step (model + Adam)",
        "whole network".to_string(),
        step_ms(setup, batch, repeats, &device),
    );
    out
}

/// (forward ms, full step ms) of the whole model: forward, backward and Adam's update.
fn step_ms(setup: &Setup, batch: usize, repeats: usize, device: &Device) -> (f64, f64) {
    let config = CnnConfig {
        blocks: setup
            .channels
            .iter()
            .map(|&channels| ConvBlock {
                channels,
                kernel_size: 3,
                pool: true,
            })
            .collect(),
        ..CnnConfig::default()
    };
    let shape = setup.shape;
    let width = shape.channels * shape.height * shape.width;
    // In an Option so that Adam can take the model by value and hand it back.
    let mut model = Some(Cnn::new(&config, shape, CLASSES, device));
    let mut optimizer = kiln::train::adam();
    let inputs = random([batch, width], device);
    let labels: Vec<i64> = (0..batch).map(|i| (i % CLASSES) as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), device);
    let forward = time_ms(repeats, || {
        if let Some(model) = &model {
            sync(model.forward(inputs.clone(), true));
        }
    });
    let step = time_ms(repeats, || {
        let Some(current) = model.take() else {
            return;
        };
        // Kiln's loss kernel, as its engine uses.
        let (value, _) = kiln::model::cpu_kernels::cross_entropy(
            current.forward(inputs.clone(), true),
            targets.clone(),
        );
        let grads = GradientsParams::from_grads(value.backward(), &current);
        model = Some(optimizer.step(0.001, current, grads));
        sync(value.inner());
    });
    (forward, step)
}

pub fn rows(quick: bool) -> anyhow::Result<Vec<Row>> {
    let repeats = if quick { 3 } else { 15 };
    let mut rows = Vec::new();
    for setup in &SETUPS {
        for batch in BATCHES {
            if quick && batch > 32 {
                continue;
            }
            // On the threads Kiln trains on: a pool of its own, the work issued from inside it.
            let ops = kiln::train::in_training_pool(|| profile_setup(setup, batch, repeats));
            let torch = torch_ops(setup, batch, repeats);
            let step = ops.last().map_or(f64::NAN, |step| step.both);
            for (index, times) in ops.into_iter().enumerate() {
                let share = format!("{:.0} % of a step", 100.0 * times.both / step);
                let note = match torch
                    .as_ref()
                    .and_then(|torch| torch.get(index))
                    .filter(|(forward, _)| forward.is_finite())
                {
                    Some(&(forward, both)) => format!(
                        "PyTorch {forward:.3} / {both:.3} ms; Kiln / PyTorch time {:.2}× / {:.2}×; {share}",
                        times.forward / forward,
                        times.both / both
                    ),
                    None => share,
                };
                rows.push(row(
                    "cnn ops",
                    format!(
                        "{}, batch {batch}: {} ({})",
                        setup.label, times.op, times.shape
                    ),
                    format!("{:.3} / {:.3} ms", times.forward, times.both),
                    note,
                ));
            }
        }
    }
    Ok(rows)
}

/// PyTorch's (forward ms, forward + backward ms) per op, in the order of [`profile_setup`] less
/// the reshape + max row, from `benches/torch_cnn_ops.py` run by `KILN_TORCH_PYTHON`.
fn torch_ops(setup: &Setup, batch: usize, repeats: usize) -> Option<Vec<(f64, f64)>> {
    let python = std::env::var_os("KILN_TORCH_PYTHON")?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/torch_cnn_ops.py");
    let ImageShape {
        channels,
        height,
        width,
    } = setup.shape;
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(batch.to_string())
        .arg(format!("{channels},{height},{width}"))
        .arg(format!("{},{}", setup.channels[0], setup.channels[1]))
        .arg(repeats.to_string())
        .output()
        .ok()?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let mut times: Vec<(f64, f64)> = report["ops"]
        .as_array()?
        .iter()
        .map(|op| Some((op[2].as_f64()?, op[3].as_f64()?)))
        .collect::<Option<_>>()?;
    // Kiln's table has rows PyTorch does not time: its own kernels.
    for row in KILN_ONLY_ROWS {
        times.insert(row, (f64::NAN, f64::NAN));
    }
    Some(times)
}

/// Where the rows only Kiln times sit among [`profile_setup`]'s rows, in increasing order: its
/// own kernels, each right after burn's op it replaces.
const KILN_ONLY_ROWS: [usize; 8] = [1, 3, 6, 8, 10, 13, 15, 17];
const KILN_NORM: &str = "batch-norm (training), Kiln's CPU kernel (as trained)";
const KILN_CONV: &str = "conv 3×3, Kiln's CPU kernel (as trained)";
const KILN_POOL: &str = "max-pool 2×2, Kiln's CPU kernel (as trained)";
const KILN_DENSE: &str = "dense head, Kiln's CPU kernel (as trained)";
const KILN_LOSS: &str = "cross-entropy, Kiln's CPU kernel (as trained)";
