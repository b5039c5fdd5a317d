//! Following a run on a target: its files are read incrementally over the multiplexed
//! connection — the logs from the byte where the mirror ends, `run.json` and the checkpoint
//! index only when their checksum changed — and mirrored into the local store, with the
//! scheduler's view (pending and why, requeued, cancelled, the job's output when it failed).
//! A dropped link is retried until it comes back; nothing is lost, since the remote files are
//! append-only or whole, and the mirror catches up from where it was. One follower per run
//! (it holds the mirror's lock); a restarted app starts a new one for each unsettled run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::ClusterError;
use super::quote::{join, quote, quote_path};
use super::shell::{Shell, last_lines};
use super::slurm::{self, JobInfo};
use super::submit::target_of;
use super::targets::{Target, TargetsFile};
use crate::runs::untrusted::{MAX_JSON_BYTES, MAX_WEIGHTS_BYTES, plain_name_problem};
use crate::runs::{
    CheckpointIndex, CheckpointSelector, MetricPoint, RemoteLink, RunDir, RunLock, RunRecord,
    RunStatus, RunStore,
};

/// Log bytes fetched per poll at most (a long log catches up over a few polls).
const MAX_LOG_CHUNK: u64 = 8 * 1024 * 1024;
/// Lines of the job's output kept when it failed.
const OUTPUT_TAIL_LINES: usize = 20;

/// What a follower saw.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowEvent {
    /// The run's status or its message changed.
    Status {
        status: RunStatus,
        message: Option<String>,
    },
    /// New metric points arrived (already in the mirror).
    Points(Vec<MetricPoint>),
    /// The target cannot be reached; retrying.
    Disconnected(String),
    Reconnected,
    /// The run ended; its final files and best checkpoint are in the mirror.
    Settled {
        status: RunStatus,
        message: Option<String>,
    },
}

/// The scheduler's view of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobView {
    Slurm(JobInfo),
    /// A process on an SSH host: alive or not.
    Process(bool),
    /// Slurm no longer knows the job (it ended a while ago).
    Gone,
}

impl JobView {
    fn ended(&self) -> bool {
        match self {
            JobView::Slurm(info) => info.is_finished(),
            JobView::Process(alive) => !alive,
            JobView::Gone => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            JobView::Slurm(info) => match &info.reason {
                Some(reason) if info.is_pending() => format!("{} ({reason})", info.state),
                _ => info.state.clone(),
            },
            JobView::Process(true) => "RUNNING".to_string(),
            JobView::Process(false) => "ENDED".to_string(),
            JobView::Gone => "ENDED".to_string(),
        }
    }
}

/// Checksums and sizes of the run's files on the target, as one poll saw them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RemoteFiles {
    record: Option<String>,
    /// `run.json` itself, when its checksum was not the one seen last.
    record_bytes: Option<Vec<u8>>,
    index: Option<String>,
    metrics_len: Option<u64>,
    confusion_len: Option<u64>,
}

pub struct Follower {
    dir: RunDir,
    target: Target,
    link: RemoteLink,
    shell: Option<Shell>,
    /// The target's `run.json` as last read, and the checksums of what was mirrored.
    remote_record: Option<RunRecord>,
    seen: RemoteFiles,
    last_written: Option<RunRecord>,
    problem: Option<String>,
    _lock: RunLock,
}

impl Follower {
    /// Starts following a mirrored run (taking the mirror's lock: one follower per run).
    pub fn open(runs_dir: &Path, run: &str, targets: &TargetsFile) -> Result<Self, ClusterError> {
        let dir = RunStore::open(runs_dir)?.find(run)?;
        let record = dir.read_record()?;
        let Some(link) = record.remote.clone() else {
            return Err(ClusterError::Submit(format!(
                "run {} trains on this machine, not on a target",
                dir.id
            )));
        };
        let target = target_of(targets, &link)?;
        let lock = RunLock::acquire(&dir.path)?;
        Ok(Self {
            dir,
            target,
            link,
            shell: None,
            remote_record: None,
            seen: RemoteFiles::default(),
            last_written: Some(record),
            problem: None,
            _lock: lock,
        })
    }

    pub fn run_id(&self) -> &str {
        &self.dir.id
    }

    /// Polls every `interval` until the run settles or `stop` is raised; connection trouble is
    /// reported and retried. Returns the last status.
    pub fn follow(
        &mut self,
        stop: &AtomicBool,
        interval: Duration,
        on_event: &mut dyn FnMut(FollowEvent),
    ) -> Result<RunStatus, ClusterError> {
        let mut backoff = interval;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(self.status());
            }
            match self.poll() {
                Ok(events) => {
                    backoff = interval;
                    let settled = events
                        .iter()
                        .any(|event| matches!(event, FollowEvent::Settled { .. }));
                    for event in events {
                        on_event(event);
                    }
                    if settled || self.link.settled {
                        return Ok(self.status());
                    }
                }
                Err(error)
                    if error.is_connection() || matches!(error, ClusterError::Remote { .. }) =>
                {
                    let message = error.to_string();
                    if self.problem.as_deref() != Some(message.as_str()) {
                        self.problem = Some(message.clone());
                        self.note_problem(Some(format!(
                            "disconnected at {}, retrying: {message}",
                            chrono::Local::now().format("%H:%M:%S")
                        )));
                        on_event(FollowEvent::Disconnected(message));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error),
            }
            sleep_unless(stop, backoff);
        }
    }

    fn status(&self) -> RunStatus {
        self.last_written
            .as_ref()
            .map_or(RunStatus::Pending, |record| record.status)
    }

    /// One round: the job's state, then whatever files changed. Returns what changed.
    pub fn poll(&mut self) -> Result<Vec<FollowEvent>, ClusterError> {
        if self.link.settled {
            return Ok(Vec::new());
        }
        if self.shell.is_none() {
            self.shell = Some(Shell::connect(&self.target)?);
        }
        let mut events = Vec::new();
        let (mut files, job) = self.look()?;
        if self.problem.take().is_some() {
            self.note_problem(None);
            events.push(FollowEvent::Reconnected);
        }
        let points = self.mirror_log("metrics.jsonl", files.metrics_len)?;
        self.mirror_log("confusion.jsonl", files.confusion_len)?;
        if files.index.is_some() && files.index != self.seen.index {
            self.mirror_index()?;
            self.seen.index = files.index.clone();
        }
        // The record came with the sizes, read before them: it never runs ahead of the logs
        // (a `completed` whose last epoch is not mirrored yet).
        if let Some(bytes) = files.record_bytes.take() {
            // A record that does not parse is skipped this round (it is replaced atomically,
            // so this is a bad file, not a torn one; the next change may fix it).
            if let Ok(record) = serde_json::from_slice::<RunRecord>(&bytes) {
                self.remote_record = Some(record);
                self.seen.record = files.record.clone();
            }
        }
        let Some(local) = self.last_written.clone() else {
            if !points.is_empty() {
                events.push(FollowEvent::Points(points));
            }
            return Ok(events);
        };
        let mut merged = mirror_record(&local, self.remote_record.as_ref(), &job);
        let ended =
            job.ended() && !matches!(merged.status, RunStatus::Running | RunStatus::Pending);
        if ended {
            if merged.status == RunStatus::Failed
                && let Some(link) = merged.remote.as_mut()
            {
                link.output_tail = self.output_tail().ok();
            }
            self.fetch_best()?;
            if let Some(link) = merged.remote.as_mut() {
                link.settled = true;
            }
        }
        let changed_status =
            local.status != merged.status || local.status_message != merged.status_message;
        if Some(&merged) != self.last_written.as_ref() {
            self.dir.write_record(&merged)?;
        }
        // A run that starts says so before its first epochs; one that ends, after its last.
        let status_event = changed_status.then(|| FollowEvent::Status {
            status: merged.status,
            message: merged.status_message.clone(),
        });
        let live = matches!(merged.status, RunStatus::Running | RunStatus::Pending);
        if live {
            events.extend(status_event.clone());
        }
        if !points.is_empty() {
            events.push(FollowEvent::Points(points));
        }
        if !live {
            events.extend(status_event);
        }
        if let Some(link) = &merged.remote {
            self.link = link.clone();
        }
        if ended {
            events.push(FollowEvent::Settled {
                status: merged.status,
                message: merged.status_message.clone(),
            });
        }
        self.last_written = Some(merged);
        Ok(events)
    }

    fn shell(&self) -> Result<&Shell, ClusterError> {
        self.shell.as_ref().ok_or_else(|| ClusterError::Connect {
            target: self.target.name.clone(),
            message: "not connected".to_string(),
        })
    }

    fn remote(&self, file: &str) -> String {
        join(&self.link.path, file)
    }

    /// One command: checksums of the whole files, sizes of the logs, and the job's state.
    fn look(&self) -> Result<(RemoteFiles, JobView), ClusterError> {
        let job_query = match self.link.job.strip_prefix("pid ") {
            Some(pid) => format!(
                "if kill -0 {} 2>/dev/null; then echo alive; else echo dead; fi",
                quote(pid)
            ),
            None => format!(
                "scontrol show job -o {} 2>&1 | head -c 8192",
                quote(&self.link.job)
            ),
        };
        // run.json first (its checksum, and its text when that changed), then the logs' sizes:
        // whatever the record says, the logs hold at least as much.
        let known = self.seen.record.as_deref().unwrap_or("-");
        let script = format!(
            "cd {dir} || exit 3; \
             if [ -f run.json ]; then sum=$(cksum < run.json); else sum=-; fi; \
             echo \"run.json $sum\"; \
             if [ \"$sum\" != - ] && [ \"$sum\" != {known} ]; then \
               record=$(head -c {max} run.json); fi; \
             f=checkpoints/index.json; \
             if [ -f \"$f\" ]; then echo \"$f $(cksum < \"$f\")\"; else echo \"$f -\"; fi; \
             for f in metrics.jsonl confusion.jsonl; do \
               if [ -f \"$f\" ]; then echo \"$f $(wc -c < \"$f\")\"; else echo \"$f -\"; fi; done; \
             echo ==job; {job_query}; \
             if [ -n \"${{record+x}}\" ]; then printf '\\n==record\\n%s' \"$record\"; fi",
            dir = quote_path(&self.link.path),
            known = quote(known),
            max = MAX_JSON_BYTES,
        );
        let reply = self
            .shell()?
            .run_with(&script, None, Duration::from_secs(60))?;
        if reply.code == Some(3) {
            return Err(ClusterError::Submit(format!(
                "the run's folder {} is gone from target '{}'",
                self.link.path, self.target.name
            )));
        }
        if !reply.ok() {
            return Err(self.shell()?.failed("reading the run's state", &reply));
        }
        let (stdout, record_bytes) = match find(&reply.stdout, b"\n==record\n") {
            Some(at) => (&reply.stdout[..at], Some(reply.stdout[at + 10..].to_vec())),
            None => (&reply.stdout[..], None),
        };
        let text = String::from_utf8_lossy(stdout).into_owned();
        let (files_part, job_part) = text.split_once("==job").unwrap_or((&text, ""));
        let mut files = RemoteFiles {
            record_bytes,
            ..RemoteFiles::default()
        };
        for line in files_part.lines() {
            let Some((name, value)) = line.split_once(' ') else {
                continue;
            };
            let value = value.trim();
            let present = (value != "-").then(|| value.to_string());
            match name {
                "run.json" => files.record = present,
                "checkpoints/index.json" => files.index = present,
                "metrics.jsonl" => files.metrics_len = present.and_then(|v| v.parse().ok()),
                "confusion.jsonl" => files.confusion_len = present.and_then(|v| v.parse().ok()),
                _ => {}
            }
        }
        let job_text = job_part.trim();
        let job = if self.link.job.starts_with("pid ") {
            JobView::Process(job_text == "alive")
        } else if job_text.contains("Invalid job id") {
            JobView::Gone
        } else {
            match slurm::parse_job(job_text) {
                Some(info) => JobView::Slurm(info),
                None => {
                    return Err(ClusterError::Remote {
                        target: self.target.name.clone(),
                        what: "asking Slurm for the job".to_string(),
                        message: last_lines(job_text, 2),
                    });
                }
            }
        };
        Ok((files, job))
    }

    /// Appends the log's new complete lines to the mirror; returns the new metric points.
    fn mirror_log(
        &self,
        file: &str,
        remote_len: Option<u64>,
    ) -> Result<Vec<MetricPoint>, ClusterError> {
        let Some(remote_len) = remote_len else {
            return Ok(Vec::new());
        };
        let local_path = self.dir.path.join(file);
        let mut local_len = std::fs::metadata(&local_path).map_or(0, |m| m.len());
        if remote_len < local_len {
            // Never happens to an append-only log, unless it was replaced: start over.
            let _ = std::fs::remove_file(&local_path);
            local_len = 0;
        }
        if remote_len == local_len {
            return Ok(Vec::new());
        }
        let script = format!(
            "tail -c +{} {} | head -c {MAX_LOG_CHUNK}",
            local_len + 1,
            quote_path(&self.remote(file))
        );
        let reply = self
            .shell()?
            .run_with(&script, None, Duration::from_secs(300))?;
        if !reply.ok() {
            return Err(self.shell()?.failed(&format!("reading {file}"), &reply));
        }
        // Only whole lines: the trainer may be writing the next one right now.
        let Some(end) = reply.stdout.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let chunk = &reply.stdout[..=end];
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&local_path)
            .map_err(|error| ClusterError::Io(format!("{}: {error}", local_path.display())))?;
        out.write_all(chunk)
            .and_then(|()| out.sync_data())
            .map_err(|error| ClusterError::Io(format!("{}: {error}", local_path.display())))?;
        if file != "metrics.jsonl" {
            return Ok(Vec::new());
        }
        let text = String::from_utf8_lossy(chunk);
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<MetricPoint>(line).ok())
            .collect())
    }

    fn mirror_index(&self) -> Result<(), ClusterError> {
        let bytes = self
            .shell()?
            .download(&self.remote("checkpoints/index.json"), MAX_JSON_BYTES)?;
        let Ok(index) = serde_json::from_slice::<CheckpointIndex>(&bytes) else {
            return Ok(());
        };
        // The index names files the window may open: only plain names inside checkpoints/.
        let plain = index.checkpoints.iter().all(|entry| {
            plain_name_problem(&entry.model_file).is_none()
                && plain_name_problem(&entry.optimizer_file).is_none()
        });
        if plain {
            self.dir.write_index(&index)?;
        }
        Ok(())
    }

    /// Downloads the best checkpoint's weights if the mirror lacks them.
    fn fetch_best(&self) -> Result<(), ClusterError> {
        let index = self.dir.read_index()?;
        if let Some(entry) = CheckpointSelector::Best.pick(&index) {
            fetch_file(self.shell()?, &self.dir, &self.link, &entry.model_file)?;
        }
        Ok(())
    }

    /// The last lines of the job's output (the run's `job.out` and Slurm's own file).
    fn output_tail(&self) -> Result<String, ClusterError> {
        let slurm_out = match self.link.job.strip_prefix("pid ") {
            Some(_) => String::new(),
            None => {
                let store = Path::new(&self.link.path)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let job = self.link.job.split('_').next().unwrap_or("");
                format!(
                    " {}",
                    quote_path(&join(
                        &join(&store, ".kiln-jobs"),
                        &format!("slurm-{job}.out")
                    ))
                )
            }
        };
        let out = self.shell()?.run(
            "reading the job's output",
            &format!(
                "tail -n {OUTPUT_TAIL_LINES} {}{slurm_out} 2>/dev/null; true",
                quote_path(&self.remote("job.out"))
            ),
        )?;
        Ok(out
            .chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect())
    }

    /// Records (or clears) the link problem in the mirror, for the window and `kiln runs`.
    fn note_problem(&mut self, problem: Option<String>) {
        let Some(mut record) = self.last_written.clone() else {
            return;
        };
        if let Some(link) = record.remote.as_mut() {
            link.link_problem = problem;
        }
        if self.dir.write_record(&record).is_ok() {
            self.last_written = Some(record);
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let tick = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(tick);
        slept += tick;
    }
}

fn fetch_file(
    shell: &Shell,
    dir: &RunDir,
    link: &RemoteLink,
    file: &str,
) -> Result<PathBuf, ClusterError> {
    if let Some(problem) = plain_name_problem(file) {
        return Err(ClusterError::Submit(format!(
            "checkpoint file '{file}': {problem}"
        )));
    }
    let local = dir.checkpoints_dir().join(file);
    if local.is_file() {
        return Ok(local);
    }
    let bytes = shell.download(
        &join(&join(&link.path, "checkpoints"), file),
        MAX_WEIGHTS_BYTES,
    )?;
    crate::runs::atomic::write_atomic(&local, &bytes)
        .map_err(|error| ClusterError::Io(format!("{}: {error}", local.display())))?;
    Ok(local)
}

/// Makes sure the weights of a mirrored run's checkpoint (`RUN`, `RUN@best`, `RUN@EPOCH`) are
/// in the local store, downloading them from the target when needed. Local runs: nothing to do.
pub fn fetch_checkpoint(
    runs_dir: &Path,
    run: &str,
    targets: &TargetsFile,
) -> Result<(), ClusterError> {
    let (query, selector) = CheckpointSelector::parse(run).map_err(ClusterError::Submit)?;
    let dir = RunStore::open(runs_dir)?.find(&query)?;
    let record = dir.read_record()?;
    let Some(link) = record.remote else {
        return Ok(());
    };
    let entry = dir.checkpoint(&selector)?;
    if dir.checkpoints_dir().join(&entry.model_file).is_file() {
        return Ok(());
    }
    let shell = Shell::connect(&target_of(targets, &link)?)?;
    fetch_file(&shell, &dir, &link, &entry.model_file)?;
    Ok(())
}

/// A running job: the trainer's word once it has started.
fn running(trainer: RunStatus, job: &str) -> (RunStatus, Option<String>) {
    match trainer {
        RunStatus::Running => (RunStatus::Running, None),
        // Not started yet, or a requeued job whose trainer has not resumed yet.
        RunStatus::Pending | RunStatus::Stopped | RunStatus::Interrupted | RunStatus::Failed => (
            RunStatus::Running,
            Some(format!("job {job} started; kiln is loading the data")),
        ),
        // The trainer is done; the job is finishing.
        status => (status, None),
    }
}

/// The mirror's `run.json`: the target's record (or the local one before the trainer wrote
/// any), with the local dataset path, the link, and the status the job's state implies.
pub fn mirror_record(local: &RunRecord, remote: Option<&RunRecord>, job: &JobView) -> RunRecord {
    let mut record = remote.cloned().unwrap_or_else(|| local.clone());
    let mut link = local.remote.clone().unwrap_or_else(|| RemoteLink {
        target: String::new(),
        path: String::new(),
        job: String::new(),
        job_state: None,
        local_data: local.data.path.clone(),
        link_problem: None,
        output_tail: None,
        settled: false,
    });
    record.data.path = link.local_data.clone();
    // The trainer's process id means nothing here.
    record.pid = None;
    let trainer = remote.map_or(RunStatus::Pending, |r| r.status);
    let job_name = &link.job;
    let (status, message) = match job {
        JobView::Slurm(info) if info.is_pending() => {
            let waiting = match &info.reason {
                Some(reason) => format!("waiting in the queue ({reason})"),
                None => "waiting in the queue".to_string(),
            };
            let message = if info.restarts > 0 {
                format!("requeued (restart {}), {waiting}", info.restarts)
            } else {
                waiting
            };
            (
                RunStatus::Pending,
                Some(format!("job {job_name}: {message}")),
            )
        }
        JobView::Slurm(info) if info.is_running() => running(trainer, job_name),
        JobView::Process(true) => running(trainer, job_name),
        JobView::Slurm(_) | JobView::Process(false) | JobView::Gone => {
            let cancelled = matches!(job, JobView::Slurm(info) if info.state == "CANCELLED");
            match trainer {
                RunStatus::Running | RunStatus::Pending if cancelled => (
                    RunStatus::Stopped,
                    Some(format!(
                        "job {job_name} was cancelled before kiln saved; resumable from its last checkpoint"
                    )),
                ),
                RunStatus::Running | RunStatus::Pending => (
                    RunStatus::Failed,
                    Some(format!(
                        "job {job_name} ended ({}) while kiln was training; see its output",
                        job.describe()
                    )),
                ),
                RunStatus::Stopped if cancelled => (
                    RunStatus::Stopped,
                    Some(format!(
                        "job {job_name} was cancelled; `kiln resume {}` sends it again from epoch {}",
                        record.id, record.epochs_completed
                    )),
                ),
                status => (status, record.status_message.clone()),
            }
        }
    };
    link.job_state = Some(job.describe());
    record.status = status;
    record.status_message = message;
    record.remote = Some(link);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_views_describe_themselves() {
        let pending = JobView::Slurm(JobInfo {
            state: "PENDING".to_string(),
            reason: Some("Priority".to_string()),
            restarts: 1,
            exit_code: None,
        });
        assert_eq!(pending.describe(), "PENDING (Priority)");
        assert!(!pending.ended());
        assert!(JobView::Gone.ended());
    }
}
