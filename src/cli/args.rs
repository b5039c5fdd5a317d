//! `kiln train`'s flags and the train request they describe.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::data::{Augmentation, ChannelMode, ColumnChoices, DataSpec, ImageOptions, TaskOverride};
use crate::model::{Activation, CnnConfig, ConvBlock, MlpConfig, ModelConfig};
use crate::train::{DeviceChoice, LrSchedule, OptimizerConfig, TrainConfig, TrainRequest};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A CSV file, a folder with one sub-folder of images per class, or an IDX images file.
    #[arg(long)]
    pub data: PathBuf,
    /// mlp or cnn (default: cnn for images, mlp for tables).
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// Column to predict (default: the last one).
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// JSON file with "model" and/or "train" sections (see README); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    #[arg(long)]
    pub name: Option<String>,
    /// Hidden layer widths, e.g. 64,64.
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    #[arg(long)]
    pub activation: Option<String>,
    #[arg(long)]
    pub dropout: Option<f64>,
    /// sgd, adam or adamw.
    #[arg(long)]
    pub optimizer: Option<String>,
    #[arg(long)]
    pub lr: Option<f64>,
    /// constant, cosine or step.
    #[arg(long)]
    pub schedule: Option<String>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long)]
    pub patience: Option<usize>,
    #[arg(long)]
    pub valid_fraction: Option<f64>,
    /// Fill missing cells instead of failing.
    #[arg(long)]
    pub impute: bool,
    /// Leave these columns out of the features (ids, names, free text), e.g. id,name.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub exclude: Vec<String>,
    /// Read these columns as categories (one-hot) even where most cells are numbers.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub categorical: Vec<String>,
    /// In these numeric columns, treat cells that are not numbers (typos, NaN, inf) and blanks
    /// as missing: they are filled with the training mean, here and in `predict`.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub as_missing: Vec<String>,
    #[command(flatten)]
    pub images: ImageArgs,
}

/// Image datasets and the CNN.
#[derive(Debug, Default, Args)]
pub struct ImageArgs {
    /// Resize every image to WIDTHxHEIGHT, e.g. 28x28 (default: the images' own size).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<[u32; 2]>,
    /// auto, gray or rgb.
    #[arg(long, value_enum)]
    pub channels: Option<ChannelsArg>,
    /// Randomly flip training images left-right.
    #[arg(long)]
    pub flip: bool,
    /// Randomly flip training images upside down.
    #[arg(long)]
    pub vflip: bool,
    /// Randomly shift training images by up to this many pixels.
    #[arg(long)]
    pub shift: Option<u32>,
    /// Leave out unreadable images (and say how many) instead of stopping.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// CNN: output channels of each conv block, e.g. 16,32.
    #[arg(long, value_delimiter = ',')]
    pub conv: Option<Vec<usize>>,
    /// CNN: kernel size of every conv block (odd).
    #[arg(long)]
    pub kernel: Option<usize>,
    /// CNN: no 2×2 max-pool after the conv blocks.
    #[arg(long)]
    pub no_pool: bool,
    /// CNN: no batch-norm in the conv blocks.
    #[arg(long)]
    pub no_batch_norm: bool,
    /// CNN: hidden widths of the dense head, e.g. 64.
    #[arg(long, value_delimiter = ',')]
    pub dense: Option<Vec<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    Mlp,
    Cnn,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ChannelsArg {
    Auto,
    Gray,
    Rgb,
}

fn parse_size(text: &str) -> Result<[u32; 2], String> {
    let (width, height) = text.split_once(['x', 'X', '×']).unwrap_or((text, text));
    let parse = |part: &str| {
        part.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{text}' is not a size; write WIDTHxHEIGHT, e.g. 28x28"))
    };
    Ok([parse(width)?, parse(height)?])
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TaskArg {
    Classification,
    Regression,
}

/// The `--config` file: either section may be left out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub model: Option<ModelConfig>,
    #[serde(default)]
    pub train: Option<TrainConfig>,
}

fn parse_activation(text: &str) -> Result<Activation> {
    Activation::ALL
        .into_iter()
        .find(|a| a.name() == text)
        .with_context(|| format!("unknown activation '{text}': use relu, gelu or tanh"))
}

/// The train request described by the flags (and the optional config file).
pub fn train_request(args: &TrainArgs, runs_dir: &Path) -> Result<TrainRequest> {
    let file: ConfigFile = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a valid config", path.display()))?
        }
        None => ConfigFile::default(),
    };
    let mut data = DataSpec::new(&args.data);
    let images = data.is_image_data();
    let kind = match (args.model, &file.model) {
        (Some(kind), _) => kind,
        (None, Some(ModelConfig::Cnn(_))) => ModelArg::Cnn,
        (None, Some(ModelConfig::Mlp(_))) => ModelArg::Mlp,
        (None, None) if images => ModelArg::Cnn,
        (None, None) => ModelArg::Mlp,
    };
    let model = match kind {
        ModelArg::Mlp => {
            let mut mlp = match file.model {
                Some(ModelConfig::Mlp(mlp)) => mlp,
                _ => MlpConfig::default(),
            };
            if let Some(hidden) = &args.hidden {
                mlp.hidden = hidden.clone();
            }
            if let Some(activation) = &args.activation {
                mlp.activation = parse_activation(activation)?;
            }
            if let Some(dropout) = args.dropout {
                mlp.dropout = dropout;
            }
            ModelConfig::Mlp(mlp)
        }
        ModelArg::Cnn => ModelConfig::Cnn(cnn_config(args, file.model)?),
    };
    let mut train = file.train.unwrap_or_default();
    if let Some(optimizer) = &args.optimizer {
        train.optimizer = match optimizer.as_str() {
            "sgd" => OptimizerConfig::Sgd { momentum: 0.9 },
            "adam" => OptimizerConfig::Adam,
            "adamw" => OptimizerConfig::AdamW { weight_decay: 0.01 },
            other => bail!("unknown optimizer '{other}': use sgd, adam or adamw"),
        };
    }
    if let Some(schedule) = &args.schedule {
        train.schedule = match schedule.as_str() {
            "constant" => LrSchedule::Constant,
            "cosine" => LrSchedule::Cosine { min_factor: 0.0 },
            "step" => LrSchedule::Step {
                every_epochs: 10,
                gamma: 0.5,
            },
            other => bail!("unknown schedule '{other}': use constant, cosine or step"),
        };
    }
    train.learning_rate = args.lr.unwrap_or(train.learning_rate);
    train.batch_size = args.batch_size.unwrap_or(train.batch_size);
    train.epochs = args.epochs.unwrap_or(train.epochs);
    train.seed = args.seed.unwrap_or(train.seed);
    if args.patience.is_some() {
        train.early_stopping_patience = args.patience;
    }
    data.target = args.target.clone();
    data.task = match args.task {
        None => TaskOverride::Auto,
        Some(TaskArg::Classification) => TaskOverride::Classification,
        Some(TaskArg::Regression) => TaskOverride::Regression,
    };
    if let Some(fraction) = args.valid_fraction {
        data.valid_fraction = fraction;
    }
    data.impute_missing = args.impute;
    data.columns = ColumnChoices {
        exclude: args.exclude.clone(),
        categorical: args.categorical.clone(),
        as_missing: args.as_missing.clone(),
    };
    if images && !data.columns.is_empty() {
        bail!("--exclude, --categorical and --as-missing are for CSV columns, not image data");
    }
    if images {
        data.images = Some(image_options(&args.images));
    }
    Ok(TrainRequest {
        data,
        model,
        train,
        device: args.device,
        name: args.name.clone(),
        runs_dir: runs_dir.to_path_buf(),
    })
}

fn cnn_config(args: &TrainArgs, from_file: Option<ModelConfig>) -> Result<CnnConfig> {
    let mut cnn = match from_file {
        Some(ModelConfig::Cnn(cnn)) => cnn,
        _ => CnnConfig::default(),
    };
    let flags = &args.images;
    if let Some(channels) = &flags.conv {
        let kernel = cnn.blocks.first().map_or(3, |block| block.kernel_size);
        cnn.blocks = channels
            .iter()
            .map(|&channels| ConvBlock {
                channels,
                kernel_size: kernel,
                pool: true,
            })
            .collect();
    }
    for block in &mut cnn.blocks {
        if let Some(kernel) = flags.kernel {
            block.kernel_size = kernel;
        }
        if flags.no_pool {
            block.pool = false;
        }
    }
    if flags.no_batch_norm {
        cnn.batch_norm = false;
    }
    if let Some(dense) = &flags.dense {
        cnn.dense = dense.clone();
    }
    if let Some(dropout) = args.dropout {
        cnn.dropout = dropout;
    }
    if args.hidden.is_some() || args.activation.is_some() {
        bail!(
            "--hidden and --activation are MLP options; for a CNN use --conv, --kernel and --dense"
        );
    }
    Ok(cnn)
}

fn image_options(flags: &ImageArgs) -> ImageOptions {
    ImageOptions {
        size: flags.size,
        channels: match flags.channels {
            None | Some(ChannelsArg::Auto) => ChannelMode::Auto,
            Some(ChannelsArg::Gray) => ChannelMode::Gray,
            Some(ChannelsArg::Rgb) => ChannelMode::Rgb,
        },
        augment: Augmentation {
            flip_horizontal: flags.flip,
            flip_vertical: flags.vflip,
            max_shift_px: flags.shift.unwrap_or(0),
        },
        skip_bad_files: flags.skip_bad_images,
    }
}
