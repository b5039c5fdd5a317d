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
    /// mlp or cnn [default: cnn for images, mlp for tables]
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// Column to predict [default: the last one]
    #[arg(long)]
    pub target: Option<String>,
    /// Classification or regression [default: detected from the target column]
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// JSON file with "model" and/or "train" sections (see docs/training.md); its values replace the
    /// defaults shown here, and flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Passes over the training data, at least 1 [default: 50]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// auto (a hardware GPU through wgpu if there is one, else the CPU), wgpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// The run's name; a name in use gets -2, -3, … [default: the dataset's file name]
    #[arg(long)]
    pub name: Option<String>,
    /// MLP hidden layer widths, each 1 to 16384 [default: 64,64]
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// MLP activation: relu, gelu or tanh (gelu models export without ONNX) [default: relu]
    #[arg(long)]
    pub activation: Option<String>,
    /// Share of units dropped during training, 0 to below 1 [default: 0 for an MLP, 0.25 for
    /// a CNN]
    #[arg(long)]
    pub dropout: Option<f64>,
    /// sgd (momentum 0.9), adam or adamw (weight decay 0.01) [default: adam]
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Base learning rate, above 0; above 1 most models diverge [default: 0.01]
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant, cosine (to 0 over the run) or step (×0.5 every 10
    /// epochs) [default: constant]
    #[arg(long)]
    pub schedule: Option<String>,
    /// Rows per optimisation step, at least 1 [default: 32]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed for the weights, the shuffling and augmentation; the same seed on the same data
    /// gives the same run [default: 42]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this many epochs without a better validation loss, at least 1 [default: off,
    /// train every epoch]
    #[arg(long)]
    pub patience: Option<usize>,
    /// Share of rows held out for validation, above 0 and below 1; stratified by class and
    /// seeded [default: 0.2]
    #[arg(long)]
    pub valid_fraction: Option<f64>,
    /// Fill missing cells instead of failing.
    #[arg(long)]
    pub impute: bool,
    /// Hold out this share of the rows as a test split, at least 0 and below 1 minus
    /// --valid-fraction (seeded, stratified, before the validation split): never trained on or
    /// used to select; `kiln export --test` scores it [default: no test split]
    #[arg(long, conflicts_with = "test_file")]
    pub test_fraction: Option<f64>,
    /// A CSV file with the same columns to serve as the test split instead.
    #[arg(long)]
    pub test_file: Option<PathBuf>,
    /// Start from an earlier model instead of random weights: RUN[@best|@last|@EPOCH] in the
    /// store (RUN: an id, id prefix or name; @best when left out), or an exported bundle. The
    /// architecture is the source's (model flags are an error); the new data must fit its
    /// inputs; the run records it as its parent.
    #[arg(long)]
    pub from: Option<String>,
    /// With --from RUN: continue with the checkpoint's optimizer state too (default: fresh).
    #[arg(long)]
    pub keep_optimizer: bool,
    /// With --from: refit the input standardisation on the new data (default: keep the
    /// source's, so the weights keep their meaning).
    #[arg(long)]
    pub refit_stats: bool,
    /// Leave these columns out of the features (ids, names, free text), e.g. id,name.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub exclude: Vec<String>,
    /// Read these columns as categories (one-hot) even where most cells are numbers.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub categorical: Vec<String>,
    /// In these numeric columns, treat cells that are not numbers (typos, inf) and blanks as
    /// missing: they are filled with the training mean, here and in `predict`.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub as_missing: Vec<String>,
    /// Use these columns as features although Kiln leaves them out on its own: row names (an
    /// empty first header, as pandas and R write them) and row numbers (integers that grow on
    /// every row, or 1…n in some order).
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub keep: Vec<String>,
    /// The CSV's delimiter: , ; | or tab [default: detected from the file's first lines]. With
    /// ; a decimal comma (3,14) reads as a number.
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<crate::data::Delimiter>,
    /// Train on this compute target (a name from the targets file, see `kiln targets list`)
    /// instead of this machine; the run is mirrored into the local store as it trains.
    #[arg(long, value_name = "TARGET")]
    pub on: Option<String>,
    /// With --on: return once the job is submitted instead of following it.
    #[arg(long, requires = "on")]
    pub detach: bool,
    /// With --on: N runs (1 to 1000) of these settings with seeds SEED, SEED+1, …, submitted as
    /// one Slurm job array (N jobs on an ssh target) [default: 1]
    #[arg(long, requires = "on", value_name = "N")]
    pub repeat: Option<usize>,
    /// With --repeat: at most K (at least 1) of the runs train at once (the array's `%K`)
    /// [default: all of them]
    #[arg(long, requires = "repeat", value_name = "K")]
    pub concurrency: Option<usize>,
    #[command(flatten)]
    pub images: ImageArgs,
}

impl TrainArgs {
    /// With --from the architecture is the source's: flags that would change it are errors.
    pub fn refuse_architecture_flags(&self) -> Result<()> {
        let given: Vec<&str> = [
            ("--model", self.model.is_some()),
            ("--hidden", self.hidden.is_some()),
            ("--activation", self.activation.is_some()),
            ("--dropout", self.dropout.is_some()),
            ("--conv", self.images.conv.is_some()),
            ("--kernel", self.images.kernel.is_some()),
            ("--no-pool", self.images.no_pool),
            ("--no-batch-norm", self.images.no_batch_norm),
            ("--dense", self.images.dense.is_some()),
        ]
        .into_iter()
        .filter(|(_, given)| *given)
        .map(|(flag, _)| flag)
        .collect();
        if !given.is_empty() {
            bail!(
                "--from takes the model's architecture from its source; drop {}",
                given.join(", ")
            );
        }
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file: ConfigFile = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a valid config", path.display()))?;
            if file.model.is_some() {
                bail!(
                    "--from takes the model's architecture from its source; {} has a \"model\" section",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// Image datasets and the CNN.
#[derive(Debug, Default, Args)]
pub struct ImageArgs {
    /// Resize every image to WIDTHxHEIGHT, e.g. 28x28, each side 1 to 1024 [default: the
    /// images' own size, which must be the same for all]
    #[arg(long, value_parser = parse_size)]
    pub size: Option<[u32; 2]>,
    /// auto (gray when every image is gray, else rgb), gray or rgb [default: auto]
    #[arg(long, value_enum)]
    pub channels: Option<ChannelsArg>,
    /// Randomly flip training images left-right.
    #[arg(long)]
    pub flip: bool,
    /// Randomly flip training images upside down.
    #[arg(long)]
    pub vflip: bool,
    /// Randomly shift training images by up to this many pixels [default: 0]
    #[arg(long)]
    pub shift: Option<u32>,
    /// Leave out unreadable images (and say how many) instead of stopping.
    #[arg(long)]
    pub skip_bad_images: bool,
    /// CNN: output channels of each conv block, each 1 to 1024 [default: 16,32]
    #[arg(long, value_delimiter = ',')]
    pub conv: Option<Vec<usize>>,
    /// CNN: kernel size of every conv block, odd, 1 to 11 [default: 3]
    #[arg(long)]
    pub kernel: Option<usize>,
    /// CNN: no 2×2 max-pool after the conv blocks.
    #[arg(long)]
    pub no_pool: bool,
    /// CNN: no batch-norm in the conv blocks.
    #[arg(long)]
    pub no_batch_norm: bool,
    /// CNN: hidden widths of the dense head, each 1 to 16384 [default: 64]
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
    data.test = match (args.test_fraction, &args.test_file) {
        (Some(fraction), _) => Some(crate::data::TestSplit::Fraction(fraction)),
        (None, Some(file)) => Some(crate::data::TestSplit::File(file.clone())),
        (None, None) => None,
    };
    data.columns = ColumnChoices {
        exclude: args.exclude.clone(),
        categorical: args.categorical.clone(),
        as_missing: args.as_missing.clone(),
        keep: args.keep.clone(),
    };
    data.delimiter = args.delimiter;
    if images && (!data.columns.is_empty() || data.delimiter.is_some()) {
        bail!(
            "--exclude, --categorical, --as-missing, --keep and --delimiter are for CSV files, not image data"
        );
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
