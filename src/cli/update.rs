//! `kiln update`: train a new version of an exported model on new data, compare it with the
//! current one on the new data, and write the new bundle only when it is better.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use super::follow::watch;
use crate::data::{DataSpec, TestSplit};
use crate::export::{
    ExportOptions, compare_with_parent, export_checkpoint, onnx_support, warm_start,
};
use crate::runs::RunStore;
use crate::train::{DeviceChoice, Outcome, TrainConfig, TrainRequest, plan_warm};

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The current model: an exported bundle (folder, card or .bpk).
    pub bundle: PathBuf,
    /// The new data (it must fit the model's inputs).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the new bundle (only if it is better, or with --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Write the new bundle even if it is not better (and over existing files).
    #[arg(long)]
    pub force: bool,
    /// Epochs of training on the new data, at least 1.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Learning rate of the fine-tuning, above 0 (the default is lower than a fresh run's 0.01).
    #[arg(long, default_value_t = 0.001)]
    pub lr: f64,
    /// Rows per step, at least 1.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Refit the input standardisation on the new data (default: keep the model's).
    #[arg(long)]
    pub refit_stats: bool,
    /// Share of the new data held out for the comparison, above 0 and below 1.
    #[arg(long, default_value_t = 0.2)]
    pub valid_fraction: f64,
    /// Also hold out a test share of the new data (compared too, never trained on), at least 0
    /// and below 1 minus --valid-fraction [default: no test split]
    #[arg(long)]
    pub test_fraction: Option<f64>,
    /// auto (a hardware GPU through wgpu if there is one, else the CPU), wgpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Seed for the fine-tuning's randomness, such as the order rows are shuffled in.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub(super) fn update(args: UpdateArgs, runs_dir: &Path) -> Result<()> {
    let bundle = args.bundle.display().to_string();
    let warm = warm_start(runs_dir, &bundle, false, args.refit_stats)?;
    let parent_name = warm
        .lineage
        .parent()
        .map_or("the current model".to_string(), |p| p.run_name.clone());
    let mut data = DataSpec::new(&args.data);
    data.valid_fraction = args.valid_fraction;
    data.test = args.test_fraction.map(TestSplit::Fraction);
    if data.is_image_data() {
        data.images = Some(crate::data::ImageOptions::default());
    }
    let request = TrainRequest {
        data,
        model: warm.model.clone(),
        train: TrainConfig {
            epochs: args.epochs,
            learning_rate: args.lr,
            batch_size: args.batch_size,
            seed: args.seed,
            ..TrainConfig::default()
        },
        device: args.device,
        name: Some(format!("{parent_name}-update")),
        runs_dir: runs_dir.to_path_buf(),
    };
    let handle = plan_warm(request, warm)?.execute(None)?;
    let (run_id, outcome) = watch(handle)?;
    let dir = RunStore::open(runs_dir)?.find(&run_id)?;
    // A run that diverged or stopped may still have a good checkpoint; it competes with it.
    let Ok(best) = dir.checkpoint(&crate::runs::CheckpointSelector::Best) else {
        bail!("the new version ({run_id}) saved no checkpoint; nothing written");
    };
    if !matches!(outcome, Some(Outcome::Completed | Outcome::EarlyStopped)) {
        eprintln!(
            "the new version did not finish training; its best checkpoint (epoch {}) competes",
            best.epoch
        );
    }
    let comparison = compare_with_parent(runs_dir, &run_id, best.epoch)?;
    eprintln!(
        "on the new data's validation split ({} rows): current {}, new {}",
        comparison.rows, comparison.old, comparison.new
    );
    if let Some((old, new)) = &comparison.test {
        eprintln!("on its test split: current {old}, new {new}");
    }
    if !comparison.new_is_better() && !args.force {
        let (metric, old) = comparison.old.headline();
        let (_, new) = comparison.new.headline();
        bail!(
            "the new version is not better ({metric} {new:.4} against the current {old:.4}); nothing written (run {run_id} is kept; --force writes it anyway)"
        );
    }
    let record = dir.read_record()?;
    let options = ExportOptions {
        onnx: onnx_support(&record.model).is_ok(),
        force: args.force,
        evaluate_test: record.data.test.is_some(),
        ..ExportOptions::default()
    };
    let paths = export_checkpoint(
        runs_dir,
        &format!("{run_id}@{}", best.epoch),
        &args.out,
        &options,
    )?;
    println!("{}", paths.card.display());
    Ok(())
}
