//! The command line: the same engine and run store as the window, headless.

mod args;
mod cluster;
mod doctor;
mod follow;
mod predict;
mod sweep;
mod update;
mod views;

pub use args::{ChannelsArg, ConfigFile, ImageArgs, ModelArg, TaskArg, TrainArgs, train_request};
pub use doctor::{DoctorArgs, StepCheckArgs, exit_meaning};
use follow::{follow, train};
use predict::image_predictions;
use views::{list_runs, show_run};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::export::{
    ExportOptions, LoadedModel, export_checkpoint, predict_csv_with, predictions_to_csv,
    verify_bundle,
};
use crate::runs::{RunStore, default_runs_dir};
use crate::train::{DeviceChoice, ResumeRequest, resume};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Train, compare and export small deep-learning models (run without a command to open the app)"
)]
pub struct Cli {
    /// The run store [default: the platform data folder, e.g. ~/.local/share/kiln/runs]
    #[arg(long, global = true, env = "KILN_RUNS_DIR")]
    pub runs_dir: Option<PathBuf>,
    /// The compute targets file [default: $XDG_CONFIG_HOME/kiln/targets.toml, e.g.
    /// ~/.config/kiln/targets.toml]
    #[arg(long, global = true, env = "KILN_TARGETS")]
    pub targets: Option<PathBuf>,
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
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Only runs matching this expression, e.g. 'valid_accuracy >= 0.9 && lr < 0.001 &&
        /// status != pruned' (columns: name, status, dataset, duration, epochs, sweep, parent,
        /// any metric — valid_loss.last for the last value —, any setting or its last part).
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one run: config, dataset fingerprint, checkpoints, and per-class validation metrics
    /// of the best checkpoint (RUN@last, or RUN@EPOCH for any epoch).
    Show {
        /// RUN[@best|@last|@EPOCH]: the run (its id, an id prefix or its name) and the epoch
        /// whose per-class metrics to show [default: @best]
        run: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Continue a stopped or interrupted run, or extend a finished one with --epochs.
    Resume {
        /// The run: its id, an id prefix or its name.
        run: String,
        /// Train this many more epochs, at least 1 (extends a finished run) [default: finish the
        /// run's planned epochs]
        #[arg(long)]
        epochs: Option<usize>,
        /// The device to continue on: auto, wgpu or cpu [default: the run's own]
        #[arg(long)]
        device: Option<DeviceChoice>,
        /// Continue with this base learning rate, above 0, from the resumed epoch on (e.g.
        /// lower, after the run diverged); the change is recorded in the run [default: the
        /// run's own]
        #[arg(long)]
        lr: Option<f64>,
        /// A run on a compute target: return once the new job is submitted.
        #[arg(long)]
        detach: bool,
    },
    /// Export a checkpoint (RUN, RUN@best, RUN@last or RUN@EPOCH) as a model bundle.
    Export {
        /// RUN[@best|@last|@EPOCH]: the run (its id, an id prefix or its name) and its
        /// checkpoint [default: @best]
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
        /// Score the checkpoint on the run's held-out test split (once) and record the result in
        /// the card and the run.
        #[arg(long)]
        test: bool,
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
        /// Write the predictions here [default: standard output]
        #[arg(long)]
        out: Option<PathBuf>,
        /// The CSV's delimiter: , ; | or tab [default: detected from the file's first lines].
        #[arg(long, value_name = "CHAR")]
        delimiter: Option<crate::data::Delimiter>,
    },
    /// Check an exported bundle: file hashes and golden outputs.
    Verify {
        /// The bundle folder, its card, or its .bpk file.
        bundle: PathBuf,
    },
    /// Rename a run.
    Rename {
        /// The run: its id, an id prefix or its name.
        run: String,
        /// The new name (not empty, and not one another run has).
        name: String,
    },
    /// Train a new version of an exported model on new data; write it only if it beats the
    /// current one on the new data (champion/challenger).
    Update(Box<update::UpdateArgs>),
    /// Train a new run with exactly a run's settings, seed and data (refused if the data changed).
    Rerun {
        /// The run: its id, an id prefix or its name.
        run: String,
    },
    /// Search hyperparameters: run, follow, resume, stop and promote sweeps.
    #[command(subcommand)]
    Sweep(sweep::SweepCommand),
    /// Compute targets: list them, test a connection.
    #[command(subcommand)]
    Targets(cluster::TargetsCommand),
    /// Stream a run that trains on a compute target (its curves and status) until it ends.
    Follow {
        /// The run: its id, an id prefix or its name.
        run: String,
    },
    /// Stop a run: cancel its job on a compute target, or signal the process training it here;
    /// it stays resumable from its last checkpoint.
    Stop {
        /// The run: its id, an id prefix or its name.
        run: String,
    },
    /// The devices training would use on this machine.
    Devices,
    /// Delete a run and its checkpoints.
    Delete {
        /// The run: its id, an id prefix or its name.
        run: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Check the devices: wgpu adapters, the Vulkan loader and drivers, what `auto` picks and
    /// why, and a fix when no GPU is usable; --bench times training on each device. Exit code 0:
    /// a GPU is usable; 3: no usable GPU (CPU training); 4: a GPU failed to start; 5: a bench
    /// model failed.
    Doctor(DoctorArgs),
    /// One training step on wgpu and on the CPU from the same weights, compared (the GPU check).
    #[command(hide = true)]
    StepCheck(StepCheckArgs),
}

/// Runs a command; most succeed with exit code 0, `doctor` reports its verdict in its code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let runs_dir = cli.runs_dir.unwrap_or_else(default_runs_dir);
    let targets_file = cluster::targets_path(cli.targets);
    let Some(command) = cli.command else {
        bail!("no command given (see kiln --help)");
    };
    match command {
        Command::Doctor(args) => return doctor::doctor(&args),
        Command::StepCheck(args) => doctor::step_check(&args),
        Command::Train(args) => match args.on.clone() {
            Some(target) if target != crate::cluster::LOCAL => {
                cluster::train_on(&args, &target, &runs_dir, &targets_file)
            }
            _ => train(*args, &runs_dir),
        },
        Command::Targets(command) => cluster::targets(command, &targets_file),
        Command::Follow { run } => {
            let targets = crate::cluster::TargetsFile::read(&targets_file)?;
            cluster::follow_remote(&runs_dir, &run, &targets)
        }
        Command::Stop { run } => cluster::stop(&runs_dir, &run, &targets_file),
        Command::Devices => {
            cluster::devices();
            Ok(())
        }
        Command::Sweep(command) => sweep::run(command, &runs_dir, &targets_file),
        Command::Update(args) => update::update(*args, &runs_dir),
        Command::Rerun { run } => follow(crate::train::plan_rerun(&runs_dir, &run)?.execute(None)?),
        Command::Runs { json, filter } => list_runs(&runs_dir, json, filter.as_deref()),
        Command::Show { run, json } => show_run(&runs_dir, &run, json),
        Command::Resume {
            run,
            epochs,
            device,
            lr,
            detach,
        } => {
            if cluster::is_remote(&runs_dir, &run) {
                if epochs.is_some() || device.is_some() || lr.is_some() {
                    bail!(
                        "a run on a compute target resumes as it was: leave out --epochs, --device and --lr"
                    );
                }
                return cluster::resume_remote(&runs_dir, &run, &targets_file, detach)
                    .map(|()| ExitCode::SUCCESS);
            }
            let handle = resume(
                ResumeRequest {
                    runs_dir: runs_dir.clone(),
                    run,
                    extra_epochs: epochs,
                    device,
                    learning_rate: lr,
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
            test,
        } => {
            if cluster::is_remote(&runs_dir, &run) {
                let targets = crate::cluster::TargetsFile::read(&targets_file)?;
                crate::cluster::fetch_checkpoint(&runs_dir, &run, &targets)?;
            }
            let options = ExportOptions {
                burnpack: true,
                safetensors: !no_safetensors,
                onnx: !no_onnx,
                force,
                evaluate_test: test,
                sweep: None,
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
            if test {
                let card = crate::export::ModelCard::locate(&paths.card)?.1;
                if let Some(result) = card.test {
                    println!("test split:  {}", views::test_line(&result));
                }
            }
            Ok(())
        }
        Command::Predict {
            model,
            data,
            out,
            delimiter,
        } => {
            let model = LoadedModel::open(&model)?;
            let csv = if model.takes_images() {
                image_predictions(&model, &data)?
            } else {
                let report = predict_csv_with(&model, &data, delimiter)?;
                for warning in &report.drift {
                    eprintln!("warning: drift: {warning}");
                }
                if let Some(score) = &report.score {
                    eprintln!("{score}");
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
            for check in &report.formats {
                match (&check.problem, check.max_error) {
                    (Some(problem), _) => println!("FAIL {}: {problem}", check.format),
                    (None, Some(error)) => println!(
                        "{:<12} largest difference {error:.3e}{}",
                        check.format,
                        if error <= report.tolerance {
                            ""
                        } else {
                            "  (over the tolerance)"
                        }
                    ),
                    (None, None) => {}
                }
            }
            println!(
                "{} file(s) checked, {} golden row(s): largest difference {:.3e} (tolerance {:.0e})",
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
            let dir = RunStore::open(&runs_dir)?.rename(&run, &name)?;
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
    }?;
    Ok(ExitCode::SUCCESS)
}
