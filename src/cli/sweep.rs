//! `kiln sweep …`: run a sweep with a live view (a line per running trial and a total), list and
//! show sweeps, resume, stop and promote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use clap::Subcommand;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::export::promote;
use crate::runs::format_number;
use crate::sweep::{
    SweepEvent, SweepHandle, SweepRecord, SweepSpec, SweepState, SweepStore, TrialStatus,
    request_stop, resume_sweep, start_sweep,
};

#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Run the sweep a spec file (JSON, see docs/sweeps.md) describes.
    Run {
        /// The sweep's spec, e.g. examples/sweeps/iris-tpe.json.
        spec: PathBuf,
        /// Train the trials on this compute target, as one Slurm job array running
        /// `concurrency` at once (grid and random sweeps).
        #[arg(long, value_name = "TARGET")]
        on: Option<String>,
        /// With --on: return once the trials are submitted instead of following them.
        #[arg(long, requires = "on")]
        detach: bool,
    },
    /// List the sweeps in the store.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a sweep's trials: status, settings, best metric and its epoch, time.
    Show {
        /// The sweep: its id, an id prefix or its name.
        sweep: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Continue a stopped or killed sweep until its budget is spent.
    Resume {
        /// The sweep: its id, an id prefix or its name.
        sweep: String,
    },
    /// Ask a running sweep (in this or another terminal) to stop; it stays resumable.
    Stop {
        /// The sweep: its id, an id prefix or its name.
        sweep: String,
    },
    /// Export the best trial's best checkpoint (scored once on the test split, if any).
    Promote {
        /// The sweep: its id, an id prefix or its name.
        sweep: String,
        /// A folder for the bundle, or a path ending in .bpk [default: SWEEPNAME-best]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

pub(super) fn run(command: SweepCommand, runs_dir: &Path, targets_file: &Path) -> Result<()> {
    match command {
        SweepCommand::Run { spec, on, detach } => {
            let spec = SweepSpec::read(&spec)?;
            match on {
                Some(target) if target != crate::cluster::LOCAL => {
                    super::cluster::sweep_on(spec, &target, runs_dir, targets_file, detach)
                }
                _ => follow(start_sweep(spec, runs_dir, None)?, runs_dir),
            }
        }
        SweepCommand::Resume { sweep } => follow(resume_sweep(runs_dir, &sweep, None)?, runs_dir),
        SweepCommand::Stop { sweep } => {
            let record = request_stop(runs_dir, &sweep)?;
            println!("asked sweep {} to stop", record.id);
            Ok(())
        }
        SweepCommand::List { json } => list(runs_dir, json),
        SweepCommand::Show { sweep, json } => show(runs_dir, &sweep, json),
        SweepCommand::Promote { sweep, out, force } => {
            let record = SweepStore::open(runs_dir).find(&sweep)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{}-best", record.name)));
            let promoted = promote(runs_dir, &record.id, &out, force)?;
            println!(
                "trial {} (rank 1 of {}, {} {}), run {} at epoch {}",
                promoted.sweep.trial,
                promoted.sweep.trials,
                promoted.sweep.metric,
                format_number(promoted.sweep.value),
                promoted.run_id,
                promoted.epoch
            );
            println!("model card:  {}", promoted.paths.card.display());
            if let Some(test) = &promoted.test {
                println!("test split:  {}", super::views::test_line(test));
            }
            Ok(())
        }
    }
}

/// Prints a sweep's events until it ends: a line per running trial, a total, one line per
/// finished trial. Ctrl-C stops it (resumable).
fn follow(handle: SweepHandle, runs_dir: &Path) -> Result<()> {
    let stop = handle.stop_flag();
    // A second handler cannot be installed in one process; that only matters in tests.
    let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:24}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let total = bars.add(ProgressBar::new(0));
    total.set_style(style.clone());
    total.set_prefix("trials");
    let mut trial_bars: BTreeMap<(usize, usize), ProgressBar> = BTreeMap::new();
    let mut final_state = None;
    let say = |line: String| {
        if bars.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = bars.println(line);
        }
    };
    for event in handle.events().iter() {
        match event {
            SweepEvent::Started {
                sweep_id,
                name,
                max_trials,
                concurrency,
            } => {
                say(format!(
                    "sweep {sweep_id} ({name}): up to {max_trials} trials, {concurrency} at a time"
                ));
                total.set_length(max_trials as u64);
            }
            SweepEvent::TrialStarted {
                trial,
                repeat,
                run_id,
                params,
                resumed,
            } => {
                let bar = bars.insert_before(&total, ProgressBar::new(1));
                bar.set_style(style.clone());
                bar.set_prefix(format!("trial {trial}"));
                bar.set_message(params_text(&params));
                trial_bars.insert((trial, repeat), bar);
                say(format!(
                    "trial {trial}{} {}: {} ({run_id})",
                    if repeat > 0 {
                        format!(" repeat {}", repeat + 1)
                    } else {
                        String::new()
                    },
                    if resumed { "continues" } else { "starts" },
                    params_text(&params)
                ));
            }
            SweepEvent::TrialProgress {
                trial,
                repeat,
                epoch,
                total_epochs,
                ..
            } => {
                if let Some(bar) = trial_bars.get(&(trial, repeat)) {
                    bar.set_length(total_epochs as u64);
                    bar.set_position(epoch.saturating_sub(1) as u64);
                }
            }
            SweepEvent::TrialEpoch { .. } => {}
            SweepEvent::TrialEnded {
                trial,
                repeat,
                status,
                best,
                best_epoch,
                message,
                ..
            } => {
                if let Some(bar) = trial_bars.remove(&(trial, repeat)) {
                    bar.finish_and_clear();
                    bars.remove(&bar);
                }
                total.inc(if repeat == 0 { 1 } else { 0 });
                let best = match (best, best_epoch) {
                    (Some(value), Some(epoch)) => {
                        format!("best {} at epoch {epoch}", format_number(value))
                    }
                    _ => "no result".to_string(),
                };
                say(format!(
                    "trial {trial} {}: {best}. {message}",
                    status.name()
                ));
            }
            SweepEvent::Warning { message } => say(format!("warning: {message}")),
            SweepEvent::Finished { state, message } => {
                total.finish_and_clear();
                eprintln!("sweep {}: {message}", state.name());
                final_state = Some(state);
            }
        }
    }
    let id = handle.sweep_id.clone();
    handle.wait();
    println!("{id}");
    match final_state {
        Some(SweepState::Completed) => {
            show(runs_dir, &id, false)?;
            Ok(())
        }
        Some(SweepState::Stopped) => {
            eprintln!("resume with: kiln sweep resume {id}");
            Ok(())
        }
        _ => bail!("sweep {id} failed"),
    }
}

fn params_text(params: &crate::sweep::Assignment) -> String {
    params
        .iter()
        .map(|(path, value)| {
            let short = path.rsplit('.').next().unwrap_or(path);
            format!("{short}={}", short_value(value))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn short_value(value: &serde_json::Value) -> String {
    match value.as_f64() {
        Some(number) if value.is_f64() => format!("{number:.4e}")
            .parse::<f64>()
            .map_or_else(|_| value.to_string(), |n| format!("{n}")),
        _ => value.to_string(),
    }
}

fn list(runs_dir: &Path, json: bool) -> Result<()> {
    let sweeps = SweepStore::open(runs_dir).list();
    if json {
        let records: Vec<&SweepRecord> = sweeps.iter().flatten().collect();
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(());
    }
    if sweeps.is_empty() {
        println!("no sweeps in {}", runs_dir.display());
        return Ok(());
    }
    println!(
        "{:<44} {:<10} {:>7} {:<16} {:>10}",
        "ID", "STATE", "TRIALS", "METRIC", "BEST"
    );
    for sweep in sweeps {
        match sweep {
            Ok(record) => {
                let best = record
                    .best()
                    .and_then(|best| best.value)
                    .map_or("-".to_string(), format_number);
                println!(
                    "{:<44} {:<10} {:>7} {:<16} {:>10}",
                    record.id,
                    state_of(&record),
                    format!("{}/{}", record.summaries().len(), record.spec.max_trials),
                    format!("{} {}", record.spec.metric, record.spec.goal()),
                    best
                );
            }
            Err((id, error)) => println!("{id:<44} broken: {error}"),
        }
    }
    Ok(())
}

/// `running` only while its process lives; a killed sweep shows as interrupted.
fn state_of(record: &SweepRecord) -> &'static str {
    if record.state == SweepState::Running && !crate::sweep::runner_alive(record) {
        "interrupted"
    } else {
        record.state.name()
    }
}

fn show(runs_dir: &Path, query: &str, json: bool) -> Result<()> {
    let mut record = SweepStore::open(runs_dir).find(query)?;
    // A sweep on a compute target has no runner here: its trials' mirrors tell how it goes.
    if record.pid.is_none() && record.state == SweepState::Running {
        record = crate::sweep::refresh_from_runs(runs_dir, &record.id)?;
    }
    let summaries = record.summaries();
    if json {
        let trials: Vec<serde_json::Value> = summaries
            .iter()
            .map(|summary| {
                serde_json::json!({
                    "trial": summary.trial,
                    "status": summary.status().name(),
                    "rank": summary.rank,
                    "params": summary.params,
                    "value": summary.value,
                    "runs": summary.runs,
                })
            })
            .collect();
        let document = serde_json::json!({
            "id": record.id,
            "name": record.name,
            "state": state_of(&record),
            "message": record.message,
            "metric": record.spec.metric,
            "goal": record.spec.goal(),
            "spec": record.spec,
            "trials": trials,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    println!("sweep:   {} ({})", record.id, record.name);
    println!(
        "state:   {}{}",
        state_of(&record),
        record
            .message
            .as_ref()
            .map_or(String::new(), |m| format!(" — {m}"))
    );
    println!(
        "search:  {} over {} parameter(s), {} trials at most, {} at a time, metric {} ({})",
        record.spec.method.name(),
        record.spec.parameters.len(),
        record.spec.max_trials,
        record.spec.concurrency,
        record.spec.metric,
        record.spec.goal()
    );
    println!(
        "{:>5} {:>4} {:<13} {:>10} {:>6} {:>7}  PARAMETERS",
        "TRIAL", "RANK", "STATUS", "BEST", "EPOCH", "SECS"
    );
    for summary in &summaries {
        let best_run = summary.best_run(record.spec.goal());
        println!(
            "{:>5} {:>4} {:<13} {:>10} {:>6} {:>7.1}  {}",
            summary.trial,
            summary
                .rank
                .map_or("-".to_string(), |rank| rank.to_string()),
            summary.status().name(),
            summary.value.map_or("-".to_string(), format_number),
            best_run
                .and_then(|run| run.best_epoch)
                .map_or("-".to_string(), |e| e.to_string()),
            summary.runs.iter().map(|run| run.secs).sum::<f64>(),
            params_text(&summary.params)
        );
    }
    let pruned = summaries
        .iter()
        .filter(|summary| summary.status() == TrialStatus::Pruned)
        .count();
    if pruned > 0 {
        println!("{pruned} trial(s) pruned");
    }
    Ok(())
}
