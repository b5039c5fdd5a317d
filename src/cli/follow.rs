//! Following a training run in the terminal: a progress bar and one line per epoch.

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{TrainArgs, train_request};
use crate::train::{Outcome, TrainEvent, TrainHandle, start};

pub(super) fn train(args: TrainArgs, runs_dir: &Path) -> Result<()> {
    let request = train_request(&args, runs_dir)?;
    if let Some(warning) = crate::train::learning_rate_warning(request.train.learning_rate) {
        eprintln!("warning: {warning}");
    }
    let handle = match &args.from {
        Some(source) => {
            args.refuse_architecture_flags()?;
            let warm =
                crate::export::warm_start(runs_dir, source, args.keep_optimizer, args.refit_stats)?;
            eprintln!(
                "starting from {} (epoch {}){}",
                warm.lineage.parent().map_or("?", |p| p.run_name.as_str()),
                warm.lineage.parent().map_or(0, |p| p.epoch),
                if args.refit_stats {
                    "; input statistics refitted on the new data"
                } else {
                    "; keeping its input statistics"
                }
            );
            crate::train::plan_warm(request, warm)?.execute(None)?
        }
        None => {
            if args.keep_optimizer || args.refit_stats {
                bail!("--keep-optimizer and --refit-stats go with --from");
            }
            start(request, None)?
        }
    };
    follow(handle)
}

/// Prints a run's events until it ends: a progress bar and one line per epoch. Ctrl-C stops it.
pub(super) fn follow(handle: TrainHandle) -> Result<()> {
    let (run_id, outcome) = watch(handle)?;
    match outcome {
        Some(Outcome::Completed | Outcome::EarlyStopped | Outcome::Pruned) => {
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

/// Prints a run's events until it ends (Ctrl-C stops it); returns its id and how it ended.
pub(super) fn watch(handle: TrainHandle) -> Result<(String, Option<Outcome>)> {
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
    Ok((run_id, outcome))
}

/// Prints a line above the progress bar, or plainly when there is no bar (not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
