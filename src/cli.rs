//! The command line: the same engine and run store as the window, headless.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{Augmentation, ChannelMode, DataSpec, ImageOptions, TaskOverride};
use crate::export::{
    ExportOptions, LoadedModel, export_checkpoint, predict_csv, predict_images, predictions_to_csv,
    verify_bundle,
};
use crate::model::{Activation, CnnConfig, ConvBlock, MlpConfig, ModelConfig};
use crate::runs::{CheckpointSelector, RunListing, RunStore, default_runs_dir};
use crate::train::{
    DeviceChoice, LrSchedule, OptimizerConfig, Outcome, ResumeRequest, TrainConfig, TrainEvent,
    TrainHandle, TrainRequest, resume, start,
};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Train, compare and export small deep-learning models (run without a command to open the app)"
)]
pub struct Cli {
    /// The run store (default: the platform data folder, e.g. ~/.local/share/kiln/runs).
    #[arg(long, global = true, env = "KILN_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,
    /// The app only: a dataset (CSV, image folder or IDX file) to load when the window opens.
    #[arg(long)]
    pub open: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a new run on a CSV file or an image dataset (class folders or an IDX pair).
    Train(Box<TrainArgs>),
    /// List the runs in the store.
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// Show one run: config, dataset fingerprint, checkpoints.
    Show {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Continue a stopped or interrupted run, or extend a finished one with --epochs.
    Resume {
        run: String,
        /// Train this many more epochs (extends a finished run).
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        device: Option<DeviceChoice>,
    },
    /// Export a checkpoint (RUN, RUN@best, RUN@last or RUN@EPOCH) as a model bundle.
    Export {
        run: String,
        /// A folder for the bundle, or a path ending in .bpk.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Skip the safetensors file.
        #[arg(long)]
        no_safetensors: bool,
        /// Skip the ONNX file.
        #[arg(long)]
        no_onnx: bool,
    },
    /// Predict with an exported model on a CSV file, or (image models) an image file or folder;
    /// prints CSV.
    Predict {
        /// The bundle folder, its card, or its .bpk file.
        #[arg(long)]
        model: PathBuf,
        /// A CSV file, or for image models an image or a folder of images.
        #[arg(long)]
        data: PathBuf,
        /// Write the predictions here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check an exported bundle: file hashes and golden outputs.
    Verify { bundle: PathBuf },
    /// Rename a run.
    Rename { run: String, name: String },
    /// Delete a run and its checkpoints.
    Delete {
        run: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

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

pub fn run(cli: Cli) -> Result<()> {
    let runs_dir = cli.runs_dir.unwrap_or_else(default_runs_dir);
    let Some(command) = cli.command else {
        bail!("no command given (see kiln --help)");
    };
    match command {
        Command::Train(args) => train(*args, &runs_dir),
        Command::Runs { json } => list_runs(&runs_dir, json),
        Command::Show { run, json } => show_run(&runs_dir, &run, json),
        Command::Resume {
            run,
            epochs,
            device,
        } => {
            let handle = resume(
                ResumeRequest {
                    runs_dir: runs_dir.clone(),
                    run,
                    extra_epochs: epochs,
                    device,
                },
                None,
            )?;
            follow(handle)
        }
        Command::Export {
            run,
            out,
            force,
            no_safetensors,
            no_onnx,
        } => {
            let options = ExportOptions {
                burnpack: true,
                safetensors: !no_safetensors,
                onnx: !no_onnx,
                force,
            };
            let paths = export_checkpoint(&runs_dir, &run, &out, &options)?;
            println!("model card:  {}", paths.card.display());
            println!("burnpack:    {}", paths.burnpack.display());
            if options.safetensors {
                println!("safetensors: {}", paths.safetensors.display());
            }
            if options.onnx {
                println!("onnx:        {}", paths.onnx.display());
            }
            Ok(())
        }
        Command::Predict { model, data, out } => {
            let model = LoadedModel::open(&model)?;
            let csv = if model.takes_images() {
                image_predictions(&model, &data)?
            } else {
                let report = predict_csv(&model, &data)?;
                for warning in &report.drift {
                    eprintln!("warning: drift: {warning}");
                }
                predictions_to_csv(&model.card, &report.predictions)
            };
            match out {
                Some(path) => crate::runs::atomic::write_atomic(&path, csv.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{csv}"),
            }
            Ok(())
        }
        Command::Verify { bundle } => {
            let report = verify_bundle(&bundle)?;
            for (file, problem) in &report.bad_files {
                println!("FAIL {file}: {problem}");
            }
            println!(
                "{} weight file(s) checked, {} golden row(s): largest difference {:.3e} (tolerance {:.0e})",
                report.files_checked, report.golden_rows, report.golden_max_error, report.tolerance
            );
            if report.ok() {
                println!("OK");
                Ok(())
            } else {
                bail!("the bundle does not verify")
            }
        }
        Command::Rename { run, name } => {
            let store = RunStore::open(&runs_dir)?;
            let dir = store.find(&run)?;
            dir.rename(&name)?;
            println!("{} is now named '{}'", dir.id, name.trim());
            Ok(())
        }
        Command::Delete { run, yes } => {
            let store = RunStore::open(&runs_dir)?;
            let dir = store.find(&run)?;
            if !yes {
                eprint!("delete run {} and all its checkpoints? [y/N] ", dir.id);
                std::io::stderr().flush().ok();
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).ok();
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    bail!("not deleted");
                }
            }
            store.delete(&dir)?;
            println!("deleted {}", dir.id);
            Ok(())
        }
    }
}

/// Predicts images; CSV out (`file`, `actual` when folders name classes, `prediction`, one
/// probability per class); unreadable files and the accuracy go to standard error.
fn image_predictions(model: &LoadedModel, data: &Path) -> Result<String> {
    let report = predict_images(model, data)?;
    for warning in &report.drift {
        eprintln!("warning: drift: {warning}");
    }
    let labelled = report.images.iter().any(|image| image.actual.is_some());
    let mut csv = String::from("file");
    if labelled {
        csv.push_str(",actual");
    }
    csv.push_str(",prediction");
    for class in &model.card.schema.target.classes {
        csv.push_str(&format!(",p_{class}"));
    }
    csv.push('\n');
    for image in &report.images {
        match &image.result {
            Ok(prediction) => {
                csv.push_str(&csv_cell(&image.file.display().to_string()));
                if labelled {
                    csv.push_str(&format!(",{}", image.actual.as_deref().unwrap_or("")));
                }
                csv.push_str(&format!(",{}", prediction.class.as_deref().unwrap_or("")));
                for p in &prediction.probabilities {
                    csv.push_str(&format!(",{p:.6}"));
                }
                csv.push('\n');
            }
            Err(reason) => eprintln!("error: {}: {reason}", image.file.display()),
        }
    }
    let unreadable = report.unreadable();
    if unreadable == report.images.len() {
        bail!("none of the {unreadable} image(s) could be read");
    }
    if unreadable > 0 {
        eprintln!(
            "warning: {unreadable} of {} image(s) could not be read",
            report.images.len()
        );
    }
    if let Some((accuracy, count)) = report.accuracy() {
        eprintln!(
            "accuracy on {count} image(s) in class-named folders: {:.2}%",
            accuracy * 100.0
        );
    }
    Ok(csv)
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
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

fn train(args: TrainArgs, runs_dir: &Path) -> Result<()> {
    let request = train_request(&args, runs_dir)?;
    let handle = start(request, None)?;
    follow(handle)
}

/// Prints a run's events until it ends: a progress bar and one line per epoch. Ctrl-C stops it.
fn follow(handle: TrainHandle) -> Result<()> {
    let stop = handle.stop_flag();
    // A second handler cannot be installed in one process; that only matters in tests.
    let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut outcome = None;
    for event in handle.events().iter() {
        match event {
            TrainEvent::Started {
                run_id,
                device,
                model,
                start_epoch,
                total_epochs,
                batches_per_epoch,
                train_rows,
                valid_rows,
                ..
            } => {
                eprintln!("run {run_id}: {model}");
                eprintln!("device: {} ({})", device.adapter, device.reason);
                eprintln!("data: {train_rows} training rows, {valid_rows} validation rows");
                if start_epoch > 0 {
                    eprintln!("resuming after epoch {start_epoch} of {total_epochs}");
                }
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(batches_per_epoch as u64);
            }
            TrainEvent::Batch {
                epoch,
                batch,
                samples_per_sec,
                eta_secs,
                ..
            } => {
                bar.set_prefix(format!("epoch {epoch}"));
                bar.set_position(batch as u64);
                bar.set_message(format!(
                    "{samples_per_sec:.0} samples/s, ETA {eta_secs:.0}s"
                ));
            }
            TrainEvent::Epoch(m) => {
                let mut line = format!(
                    "epoch {:>4}  train loss {:.4}  valid loss {:.4}",
                    m.epoch, m.train_loss, m.valid_loss
                );
                if let Some(accuracy) = m.valid_accuracy {
                    line.push_str(&format!("  valid acc {:.2}%", accuracy * 100.0));
                }
                if let Some(rmse) = m.valid_rmse {
                    line.push_str(&format!("  valid rmse {rmse:.4}"));
                }
                line.push_str(&format!("  {:.0} samples/s", m.samples_per_sec));
                say(&bar, line);
            }
            TrainEvent::Checkpoint { .. } => {}
            TrainEvent::Warning { message } => say(&bar, format!("warning: {message}")),
            TrainEvent::Finished {
                outcome: o,
                message,
                ..
            } => {
                bar.finish_and_clear();
                eprintln!("{message}");
                outcome = Some(o);
            }
        }
    }
    let run_id = handle.run_id.clone();
    handle.wait();
    match outcome {
        Some(Outcome::Completed | Outcome::EarlyStopped) => {
            println!("{run_id}");
            Ok(())
        }
        Some(Outcome::Stopped) => {
            println!("{run_id}");
            eprintln!("resume with: kiln resume {run_id}");
            Ok(())
        }
        Some(Outcome::Diverged) => bail!("run {run_id} diverged"),
        Some(Outcome::Failed) | None => bail!("run {run_id} failed"),
    }
}

/// Prints a line above the progress bar, or plainly when there is no bar (not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

#[derive(Debug, Serialize)]
struct RunRow {
    id: String,
    name: String,
    dataset: String,
    status: String,
    epochs: usize,
    planned_epochs: usize,
    best_epoch: Option<usize>,
    best_valid_loss: Option<f64>,
    best_valid_accuracy: Option<f64>,
    error: Option<String>,
}

fn list_runs(runs_dir: &Path, json: bool) -> Result<()> {
    let store = RunStore::open(runs_dir)?;
    let rows: Vec<RunRow> = store
        .list()?
        .into_iter()
        .map(|listing| match listing {
            RunListing::Run {
                dir,
                record,
                status,
            } => RunRow {
                id: dir.id,
                name: record.name.clone(),
                dataset: record.fingerprint.file_name.clone(),
                status: status.name().to_string(),
                epochs: record.epochs_completed,
                planned_epochs: record.train.epochs,
                best_epoch: record.best.as_ref().map(|b| b.epoch),
                best_valid_loss: record.best.as_ref().map(|b| b.valid_loss),
                best_valid_accuracy: record.best.as_ref().and_then(|b| b.valid_accuracy),
                error: None,
            },
            RunListing::Broken { id, error, .. } => RunRow {
                id,
                name: String::new(),
                dataset: String::new(),
                status: "broken".to_string(),
                epochs: 0,
                planned_epochs: 0,
                best_epoch: None,
                best_valid_loss: None,
                best_valid_accuracy: None,
                error: Some(error),
            },
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no runs in {}", runs_dir.display());
        return Ok(());
    }
    println!(
        "{:<40} {:<16} {:<14} {:<13} {:>9} {:>10} {:>9}",
        "ID", "NAME", "DATASET", "STATUS", "EPOCHS", "BEST LOSS", "BEST ACC"
    );
    for row in &rows {
        println!(
            "{:<40} {:<16} {:<14} {:<13} {:>9} {:>10} {:>9}",
            row.id,
            truncate(&row.name, 16),
            truncate(&row.dataset, 14),
            row.status,
            format!("{}/{}", row.epochs, row.planned_epochs),
            row.best_valid_loss
                .map_or("-".to_string(), |v| format!("{v:.4}")),
            row.best_valid_accuracy
                .map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0)),
        );
        if let Some(error) = &row.error {
            println!("    {error}");
        }
    }
    Ok(())
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

fn show_run(runs_dir: &Path, run: &str, json: bool) -> Result<()> {
    let store = RunStore::open(runs_dir)?;
    let (query, _) = CheckpointSelector::parse(run).map_err(anyhow::Error::msg)?;
    let dir = store.find(&query)?;
    let record = dir.read_record()?;
    let status = dir.status()?;
    let index = dir.read_index()?;
    let log = dir.read_metrics()?;
    if json {
        let document = serde_json::json!({
            "id": dir.id,
            "status": status.name(),
            "record": record,
            "checkpoints": index.checkpoints,
            "metrics_points": log.points.len(),
            "metrics_bad_lines": log.bad_lines,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    println!("run:         {} ({})", dir.id, record.name);
    println!(
        "status:      {status}{}",
        record
            .status_message
            .as_ref()
            .map_or(String::new(), |m| format!(" — {m}"))
    );
    println!("created:     {}", record.created);
    println!("model:       {}", record.model_summary());
    println!("training:    {}", serde_json::to_string(&record.train)?);
    println!(
        "device:      {} ({})",
        record.device.adapter, record.device.reason
    );
    println!("data:        {}", record.data.path.display());
    match &record.preprocessor.image {
        Some(image) => println!(
            "fingerprint: {} ({} images, {}, {} classes)",
            record.fingerprint.short_id(),
            record.fingerprint.rows,
            image.shape,
            record.schema.target.classes.len()
        ),
        None => println!(
            "fingerprint: {} ({} rows, {} columns, target '{}', {})",
            record.fingerprint.short_id(),
            record.fingerprint.rows,
            record.fingerprint.columns,
            record.schema.target.name,
            record.schema.task()
        ),
    }
    if let Some(images) = &record.data.images {
        println!("image options: {}", serde_json::to_string(images)?);
    }
    if !record.fingerprint.class_counts.is_empty() {
        let counts: Vec<String> = record
            .fingerprint
            .class_counts
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        println!("classes:     {}", counts.join(", "));
    }
    println!(
        "epochs:      {}/{} ({} steps, {:.1}s)",
        record.epochs_completed, record.train.epochs, record.steps_completed, record.train_secs
    );
    if !log.bad_lines.is_empty() {
        println!(
            "warning:     metrics.jsonl has unreadable line(s) {:?} (ignored)",
            log.bad_lines
        );
    }
    println!("checkpoints:");
    for entry in &index.checkpoints {
        let metrics: Vec<String> = entry
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        println!(
            "  epoch {:>4}{}  {}",
            entry.epoch,
            if entry.best { " (best)" } else { "       " },
            metrics.join("  ")
        );
    }
    if let Some(best) = index.best()
        && let Some(report) = best.class_report()
    {
        println!(
            "best checkpoint (epoch {}), validation per class:",
            best.epoch
        );
        let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        for metrics in report {
            let class = record
                .schema
                .target
                .classes
                .get(metrics.class)
                .map_or("?", String::as_str);
            println!(
                "  {class:<16} precision {:>7}  recall {:>7}  rows {}",
                percent(metrics.precision),
                percent(metrics.recall),
                metrics.support
            );
        }
    }
    Ok(())
}
