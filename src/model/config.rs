//! Serializable model configurations, validated before anything is built.

use serde::{Deserialize, Serialize};

use crate::data::{ImageShape, InputShape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
    Tanh,
}

impl Activation {
    pub const ALL: [Activation; 3] = [Activation::Relu, Activation::Gelu, Activation::Tanh];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
        }
    }
}

/// A multi-layer perceptron: dense layers with an activation (and dropout) between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Width of each hidden layer, input side first; empty means a linear model.
    pub hidden: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    /// Probability of zeroing a hidden unit during training.
    #[serde(default)]
    pub dropout: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            activation: Activation::Relu,
            dropout: 0.0,
        }
    }
}

/// One convolution block: a same-size convolution, optional batch-norm, ReLU, optional 2×2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvBlock {
    pub channels: usize,
    /// Odd, so the block keeps the image size (padding `kernel_size / 2`).
    pub kernel_size: usize,
    #[serde(default = "yes")]
    pub pool: bool,
}

fn yes() -> bool {
    true
}

/// A small convolutional network for images: conv blocks, then a dense head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CnnConfig {
    pub blocks: Vec<ConvBlock>,
    #[serde(default)]
    pub batch_norm: bool,
    /// Probability of zeroing a unit of the dense head during training.
    #[serde(default)]
    pub dropout: f64,
    /// Hidden widths of the dense head, between the flattened conv output and the classes.
    #[serde(default)]
    pub dense: Vec<usize>,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            blocks: vec![
                ConvBlock {
                    channels: 16,
                    kernel_size: 3,
                    pool: true,
                },
                ConvBlock {
                    channels: 32,
                    kernel_size: 3,
                    pool: true,
                },
            ],
            batch_norm: true,
            dropout: 0.25,
            dense: vec![64],
        }
    }
}

impl CnnConfig {
    /// Channels, height and width after each block, for an input image.
    pub fn block_shapes(&self, input: ImageShape) -> Vec<ImageShape> {
        let mut shape = input;
        self.blocks
            .iter()
            .map(|block| {
                shape = ImageShape {
                    channels: block.channels,
                    height: if block.pool {
                        shape.height / 2
                    } else {
                        shape.height
                    },
                    width: if block.pool {
                        shape.width / 2
                    } else {
                        shape.width
                    },
                };
                shape
            })
            .collect()
    }

    /// Inputs of the dense head: the last block's output, flattened.
    pub fn flattened_width(&self, input: ImageShape) -> usize {
        self.block_shapes(input)
            .last()
            .map_or(input.pixels(), ImageShape::pixels)
    }
}

/// The model of a run; the input and output widths come from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    Mlp(MlpConfig),
    Cnn(CnnConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mlp(MlpConfig::default())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelConfigError {
    #[error("hidden layer {index} has width 0; every layer needs at least one unit")]
    ZeroWidth { index: usize },
    #[error("hidden layer {index} has width {width}; the limit is {max}")]
    TooWide {
        index: usize,
        width: usize,
        max: usize,
    },
    #[error("dropout must be at least 0 and below 1, not {0}")]
    Dropout(f64),
    #[error("a CNN needs at least one conv block")]
    NoBlocks,
    #[error("conv block {index}: {message}")]
    Block { index: usize, message: String },
    #[error("a CNN needs image data; use the MLP for tables")]
    NotImages,
}

/// Wider layers than this are almost certainly a typo for a tool aimed at small models.
pub const MAX_LAYER_WIDTH: usize = 16_384;
/// Conv kernels larger than this make no sense for the small images Kiln trains on.
pub const MAX_KERNEL_SIZE: usize = 11;
pub const MAX_CONV_CHANNELS: usize = 1024;

fn check_widths(widths: &[usize]) -> Result<(), ModelConfigError> {
    for (index, &width) in widths.iter().enumerate() {
        if width == 0 {
            return Err(ModelConfigError::ZeroWidth { index: index + 1 });
        }
        if width > MAX_LAYER_WIDTH {
            return Err(ModelConfigError::TooWide {
                index: index + 1,
                width,
                max: MAX_LAYER_WIDTH,
            });
        }
    }
    Ok(())
}

fn check_dropout(dropout: f64) -> Result<(), ModelConfigError> {
    if !(0.0..1.0).contains(&dropout) || !dropout.is_finite() {
        return Err(ModelConfigError::Dropout(dropout));
    }
    Ok(())
}

fn dense_parameters(widths: &[usize]) -> usize {
    widths
        .windows(2)
        .map(|pair| pair[0] * pair[1] + pair[1])
        .sum()
}

impl ModelConfig {
    pub fn name(&self) -> &'static str {
        match self {
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::Cnn(_) => "cnn",
        }
    }

    /// Checks what can be checked without the data.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        match self {
            ModelConfig::Mlp(config) => {
                check_widths(&config.hidden)?;
                check_dropout(config.dropout)
            }
            ModelConfig::Cnn(config) => {
                if config.blocks.is_empty() {
                    return Err(ModelConfigError::NoBlocks);
                }
                for (index, block) in config.blocks.iter().enumerate() {
                    let block_error = |message: String| ModelConfigError::Block {
                        index: index + 1,
                        message,
                    };
                    if block.channels == 0 || block.channels > MAX_CONV_CHANNELS {
                        return Err(block_error(format!(
                            "{} channels; choose 1 to {MAX_CONV_CHANNELS}",
                            block.channels
                        )));
                    }
                    if block.kernel_size % 2 == 0 || block.kernel_size > MAX_KERNEL_SIZE {
                        return Err(block_error(format!(
                            "kernel size {}; choose an odd size from 1 to {MAX_KERNEL_SIZE}",
                            block.kernel_size
                        )));
                    }
                }
                check_widths(&config.dense)?;
                check_dropout(config.dropout)
            }
        }
    }

    /// Checks the model against the data's input shape.
    pub fn validate_for(&self, input: &InputShape) -> Result<(), ModelConfigError> {
        self.validate()?;
        let ModelConfig::Cnn(config) = self else {
            return Ok(());
        };
        let InputShape::Image(image) = input else {
            return Err(ModelConfigError::NotImages);
        };
        let mut shape = *image;
        for (index, (block, after)) in config
            .blocks
            .iter()
            .zip(config.block_shapes(*image))
            .enumerate()
        {
            if block.pool && (shape.height < 2 || shape.width < 2) {
                return Err(ModelConfigError::Block {
                    index: index + 1,
                    message: format!(
                        "pools a {}×{} map down to nothing; turn pooling off for this block or use larger images",
                        shape.width, shape.height
                    ),
                });
            }
            shape = after;
        }
        Ok(())
    }

    /// A one-line description, e.g. `mlp 4→64→64→3 relu` or `cnn 1×8×8 [16k3p 32k3p] bn →64→10`.
    pub fn describe(&self, input: &InputShape, outputs: usize) -> String {
        match self {
            ModelConfig::Mlp(config) => {
                let mut widths = vec![input.width().to_string()];
                widths.extend(config.hidden.iter().map(usize::to_string));
                widths.push(outputs.to_string());
                let mut text = format!("mlp {} {}", widths.join("→"), config.activation.name());
                if config.dropout > 0.0 {
                    text.push_str(&format!(" dropout {}", config.dropout));
                }
                text
            }
            ModelConfig::Cnn(config) => {
                let input_text = match input {
                    InputShape::Image(shape) => {
                        format!("{}×{}×{}", shape.channels, shape.height, shape.width)
                    }
                    InputShape::Flat(width) => width.to_string(),
                };
                let blocks: Vec<String> = config
                    .blocks
                    .iter()
                    .map(|b| {
                        format!(
                            "{}k{}{}",
                            b.channels,
                            b.kernel_size,
                            if b.pool { "p" } else { "" }
                        )
                    })
                    .collect();
                let mut text = format!("cnn {input_text} [{}]", blocks.join(" "));
                if config.batch_norm {
                    text.push_str(" bn");
                }
                for width in config.dense.iter().chain([&outputs]) {
                    text.push_str(&format!(" →{width}"));
                }
                if config.dropout > 0.0 {
                    text.push_str(&format!(" dropout {}", config.dropout));
                }
                text
            }
        }
    }

    /// Number of trainable parameters for the given input and output widths.
    pub fn parameter_count(&self, input: &InputShape, outputs: usize) -> usize {
        match self {
            ModelConfig::Mlp(config) => {
                let mut widths = vec![input.width()];
                widths.extend(&config.hidden);
                widths.push(outputs);
                dense_parameters(&widths)
            }
            ModelConfig::Cnn(config) => {
                let InputShape::Image(image) = input else {
                    return 0;
                };
                let mut channels = image.channels;
                let mut total = 0;
                for block in &config.blocks {
                    total += channels * block.channels * block.kernel_size.pow(2) + block.channels;
                    if config.batch_norm {
                        total += 2 * block.channels;
                    }
                    channels = block.channels;
                }
                let mut widths = vec![config.flattened_width(*image)];
                widths.extend(&config.dense);
                widths.push(outputs);
                total + dense_parameters(&widths)
            }
        }
    }
}
