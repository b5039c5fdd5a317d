//! Compute targets from the terminal: `kiln train … --on NAME`, `kiln targets list|test`,
//! `kiln follow RUN`, `kiln stop RUN`, `kiln devices`, and resuming or exporting a run that
//! trains on a target.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;

use super::args::{TrainArgs, train_request};
use crate::cluster::{
    FollowEvent, Follower, LOCAL, TargetKind, TargetsFile, default_targets_path, submit_runs,
    test_connection,
};
use crate::runs::{MetricPoint, RunStatus, RunStore, SplitName};

#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// The targets in the targets file (and where that file is).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a target and show its kiln version, devices and (Slurm) partitions.
    Test {
        /// The target's name in the targets file.
        name: String,
    },
}

/// The targets file: `--targets`, `$KILN_TARGETS`, or the config folder's `targets.toml`.
pub(super) fn targets_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(default_targets_path)
}

pub(super) fn targets(command: TargetsCommand, path: &Path) -> Result<()> {
    let file = TargetsFile::read(path)?;
    match command {
        TargetsCommand::List { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&file.targets)?);
                return Ok(());
            }
            println!("targets file: {}", path.display());
            println!("{:<16} {:<6} WHERE", "NAME", "KIND");
            println!("{:<16} {:<6} this machine", LOCAL, "local");
            for target in &file.targets {
                println!(
                    "{:<16} {:<6} {}",
                    target.name,
                    target.kind.name(),
                    target.describe()
                );
            }
            Ok(())
        }
        TargetsCommand::Test { name } => {
            let target = file.get(&name)?;
            let report = test_connection(&target)?;
            print!("{report}");
            println!("OK");
            Ok(())
        }
    }
}

/// `kiln train … --on NAME`: plan here (the data is checked before anything is sent), submit,
/// then follow unless `--detach`.
pub(super) fn train_on(
    args: &TrainArgs,
    target_name: &str,
    runs_dir: &Path,
    targets_file: &Path,
) -> Result<()> {
    if args.from.is_some() {
        bail!("--from cannot be combined with --on yet: train warm starts on this machine");
    }
    let file = TargetsFile::read(targets_file)?;
    let target = file.get(target_name)?;
    if target.kind == TargetKind::Local {
        bail!("target '{target_name}' is this machine: leave out --on");
    }
    let repeat = args.repeat.unwrap_or(1);
    if !(1..=MAX_REPEAT).contains(&repeat) {
        bail!("--repeat must be between 1 and {MAX_REPEAT}");
    }
    let concurrency = args.concurrency.unwrap_or(repeat);
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let mut planned = Vec::with_capacity(repeat);
    for i in 0..repeat {
        let mut request = train_request(args, runs_dir)?;
        request.train.seed = request.train.seed.wrapping_add(i as u64);
        planned.push(crate::train::plan(request)?);
    }
    let submitted = submit_runs(&target, runs_dir, &planned, concurrency, &mut |line| {
        eprintln!("{line}")
    })?;
    if submitted.is_empty() {
        bail!("nothing was submitted");
    }
    for run in &submitted {
        println!("{}", run.run_id);
    }
    if args.detach {
        let first = &submitted[0].run_id;
        eprintln!("follow it with: kiln follow {first}    stop it with: kiln stop {first}");
        return Ok(());
    }
    // Several runs: followed one after another (each is mirrored whole when its turn comes).
    let mut failed = Vec::new();
    for run in &submitted {
        if interrupted().load(Ordering::SeqCst) {
            break;
        }
        if submitted.len() > 1 {
            eprintln!("following {} ({})", run.name, run.run_id);
        }
        if let Err(error) = follow_remote(runs_dir, &run.run_id, &file) {
            eprintln!("error: {error:#}");
            failed.push(run.run_id.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} runs did not complete: {}",
            failed.len(),
            submitted.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Runs one `--repeat` may send at once.
const MAX_REPEAT: usize = 1000;

/// `kiln follow RUN`: streams a run on a target until it ends. Ctrl-C stops following only.
pub(super) fn follow_remote(runs_dir: &Path, run: &str, targets: &TargetsFile) -> Result<()> {
    let mut follower = Follower::open(runs_dir, run, targets)?;
    let run_id = follower.run_id().to_string();
    let stop = interrupted();
    let mut last_message = None;
    let status = follower.follow(&stop, Duration::from_secs(1), &mut |event| {
        print_event(&event, &mut last_message)
    })?;
    if stop.load(Ordering::SeqCst) {
        eprintln!(
            "stopped following; the job goes on. kiln follow {run_id} to watch again, kiln stop {run_id} to stop it"
        );
        return Ok(());
    }
    let record = RunStore::open(runs_dir)?.find(&run_id)?.read_record()?;
    if let Some(tail) = record.remote.as_ref().and_then(|r| r.output_tail.as_ref()) {
        eprintln!("the job's output ends with:\n{tail}");
    }
    match status {
        RunStatus::Completed | RunStatus::EarlyStopped | RunStatus::Pruned => Ok(()),
        RunStatus::Stopped => {
            eprintln!("resume with: kiln resume {run_id}");
            Ok(())
        }
        other => bail!("run {run_id} {other}"),
    }
}

/// Raised by Ctrl-C (or SIGTERM) for the rest of this process: following stops, the jobs go on.
fn interrupted() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let raised = flag.clone();
        // A second handler cannot be installed in one process; that only matters in tests.
        let _ = ctrlc::set_handler(move || raised.store(true, Ordering::SeqCst));
        flag
    })
    .clone()
}

fn print_event(event: &FollowEvent, last_message: &mut Option<String>) {
    match event {
        FollowEvent::Status { status, message } | FollowEvent::Settled { status, message } => {
            let line = match message {
                Some(message) => format!("{status}: {message}"),
                None => status.to_string(),
            };
            if last_message.as_deref() != Some(line.as_str()) {
                eprintln!("{line}");
                *last_message = Some(line);
            }
        }
        FollowEvent::Points(points) => {
            for line in epoch_lines(points) {
                eprintln!("{line}");
            }
        }
        FollowEvent::Disconnected(message) => eprintln!("disconnected, retrying: {message}"),
        FollowEvent::Reconnected => eprintln!("reconnected"),
    }
}

/// One line per epoch of newly arrived points, as `kiln train` prints them.
fn epoch_lines(points: &[MetricPoint]) -> Vec<String> {
    let mut epochs: Vec<usize> = points
        .iter()
        .filter(|p| p.metric == "loss" && p.split == SplitName::Valid)
        .map(|p| p.epoch)
        .collect();
    epochs.dedup();
    epochs
        .into_iter()
        .map(|epoch| {
            let value = |split: SplitName, metric: &str| {
                points
                    .iter()
                    .rev()
                    .find(|p| p.epoch == epoch && p.split == split && p.metric == metric)
                    .map(|p| p.value)
            };
            let mut line = format!(
                "epoch {epoch:>4}  train loss {:.4}  valid loss {:.4}",
                value(SplitName::Train, "loss").unwrap_or(f64::NAN),
                value(SplitName::Valid, "loss").unwrap_or(f64::NAN)
            );
            if let Some(accuracy) = value(SplitName::Valid, "accuracy") {
                line.push_str(&format!("  valid acc {:.2}%", accuracy * 100.0));
            }
            line
        })
        .collect()
}

/// `kiln stop RUN`: a run on a target is cancelled there (the trainer saves first); a run
/// trained by a process of this machine gets SIGTERM, as Ctrl-C would stop it.
pub(super) fn stop(runs_dir: &Path, run: &str, targets_file: &Path) -> Result<()> {
    let dir = RunStore::open(runs_dir)?.find(run)?;
    let record = dir.read_record()?;
    if record.remote.is_some() {
        let targets = TargetsFile::read(targets_file)?;
        let job = crate::cluster::stop(runs_dir, &dir.id, &targets)?;
        eprintln!("asked the target to stop job {job}; kiln there saves its checkpoint and exits");
        // Wait for the end when nobody else follows the run (else that follower records it).
        if let Ok(mut follower) = Follower::open(runs_dir, &dir.id, &targets) {
            let stop = interrupted();
            let deadline = std::time::Instant::now() + Duration::from_secs(90);
            while std::time::Instant::now() < deadline {
                if let Ok(events) = follower.poll()
                    && let Some(FollowEvent::Settled { status, .. }) = events
                        .into_iter()
                        .find(|e| matches!(e, FollowEvent::Settled { .. }))
                {
                    println!("{} {status}", dir.id);
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(500));
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
        println!("{}", dir.id);
        return Ok(());
    }
    match dir.busy() {
        Some(holder) if holder.host == crate::runs::lock::this_host() => {
            terminate(holder.pid)?;
            eprintln!(
                "asked process {} to stop; the run stays resumable",
                holder.pid
            );
            println!("{}", dir.id);
            Ok(())
        }
        Some(holder) => bail!("run {} is trained by {holder}: stop it there", dir.id),
        None => bail!("run {} is not training ({})", dir.id, dir.status()?),
    }
}

fn terminate(pid: u32) -> Result<()> {
    #[cfg(unix)]
    {
        let pid = libc::pid_t::try_from(pid)?;
        // SAFETY: kill only sends a signal; the pid comes from the run's live lock.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!(
                "could not signal process {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        bail!("stopping process {pid} from here needs a Unix-like system")
    }
}

/// `kiln resume RUN` for a run on a target: a new job continues it from its last checkpoint.
pub(super) fn resume_remote(
    runs_dir: &Path,
    run: &str,
    targets_file: &Path,
    detach: bool,
) -> Result<()> {
    let targets = TargetsFile::read(targets_file)?;
    let submitted = crate::cluster::resubmit(runs_dir, run, &targets)?;
    eprintln!("{} resubmitted as job {}", submitted.name, submitted.job);
    println!("{}", submitted.run_id);
    if detach {
        return Ok(());
    }
    follow_remote(runs_dir, &submitted.run_id, &targets)
}

/// Whether `run` is mirrored from a target.
pub(super) fn is_remote(runs_dir: &Path, run: &str) -> bool {
    let query =
        crate::runs::CheckpointSelector::parse(run).map_or_else(|_| run.to_string(), |(q, _)| q);
    RunStore::open(runs_dir)
        .and_then(|store| store.find(&query))
        .and_then(|dir| dir.read_record())
        .is_ok_and(|record| record.remote.is_some())
}

/// `kiln devices`: what training here would use.
pub(super) fn devices() {
    let adapters = crate::train::wgpu_adapters();
    for adapter in adapters {
        println!(
            "wgpu: {} ({}){}",
            adapter.name,
            adapter.backend,
            if adapter.software {
                ", software: auto does not use it"
            } else {
                ""
            }
        );
    }
    println!("cpu:  burn flex, always available");
    match crate::train::hardware_gpu() {
        Some(gpu) => println!("auto: wgpu on {}", gpu.name),
        None => println!("auto: cpu (no hardware GPU)"),
    }
}

/// `kiln sweep run SPEC --on NAME`: every trial planned here, sent as one job array running
/// the spec's `concurrency` at once, then followed (unless `--detach`); the sweep record is
/// refreshed from the trials' mirrors.
pub(super) fn sweep_on(
    spec: crate::sweep::SweepSpec,
    target_name: &str,
    runs_dir: &Path,
    targets_file: &Path,
    detach: bool,
) -> Result<()> {
    let file = TargetsFile::read(targets_file)?;
    let target = file.get(target_name)?;
    if target.kind == TargetKind::Local {
        bail!("target '{target_name}' is this machine: leave out --on");
    }
    let concurrency = spec.concurrency;
    let mut planned = crate::sweep::plan_sweep_elsewhere(spec, runs_dir)?;
    let sweep_id = planned.record.id.clone();
    let submitted = match submit_runs(&target, runs_dir, &planned.runs, concurrency, &mut |line| {
        eprintln!("{line}")
    }) {
        Ok(submitted) => submitted,
        Err(error) => {
            crate::sweep::discard_sweep(runs_dir, &sweep_id);
            return Err(error.into());
        }
    };
    let run_ids: Vec<String> = submitted.iter().map(|run| run.run_id.clone()).collect();
    let job = submitted
        .first()
        .map(|run| run.job.split('_').next().unwrap_or(&run.job).to_string())
        .unwrap_or_default();
    crate::sweep::record_submitted(
        runs_dir,
        &mut planned.record,
        &run_ids,
        format!(
            "{} trial runs on target '{}' (job {job})",
            run_ids.len(),
            target.name
        ),
    )?;
    println!("{sweep_id}");
    if detach {
        eprintln!(
            "follow a trial with: kiln follow RUN; the sweep with: kiln sweep show {sweep_id}"
        );
        return Ok(());
    }
    for run in &submitted {
        if interrupted().load(Ordering::SeqCst) {
            break;
        }
        eprintln!("following {} ({})", run.name, run.run_id);
        if let Err(error) = follow_remote(runs_dir, &run.run_id, &file) {
            eprintln!("error: {error:#}");
        }
    }
    let record = crate::sweep::refresh_from_runs(runs_dir, &sweep_id)?;
    eprintln!("sweep {sweep_id} {}", record.state.name());
    Ok(())
}
