//! Slurm through its own commands: the batch script Kiln writes (kept in the run folder),
//! `sbatch --parsable` to submit, `scontrol show job` for a job's state (it works without
//! slurmdbd, unlike `sacct`; finished jobs stay visible for a few minutes, after which the
//! run's own files tell how it ended), `scancel` to stop, `sinfo` for the partitions.

use super::ClusterError;
use super::quote::{quote, quote_path};
use super::shell::Shell;
use super::targets::SlurmSettings;

/// What the job script runs: one run, or one of several (a job array).
pub struct JobScript<'a> {
    /// The name jobs are listed under in `squeue` (made of plain characters here).
    pub job_name: &'a str,
    /// Run ids; with more than one the script is a job array, element i trains `runs[i]`.
    pub runs: &'a [String],
    /// The remote kiln binary and store (absolute paths).
    pub kiln: &'a str,
    pub store: &'a str,
    /// `None` for a plain SSH host (no `#SBATCH` lines).
    pub slurm: Option<&'a SlurmSettings>,
    /// A job array's concurrency (`%K`).
    pub concurrency: usize,
    /// A first line saying what this is (run name, who wrote it, when).
    pub description: &'a str,
}

impl JobScript<'_> {
    /// The batch script. It is bash, readable, and complete: `sbatch job.sh` (or `bash job.sh`
    /// on an SSH host) works by hand too.
    pub fn render(&self) -> String {
        let mut lines = vec![
            "#!/bin/bash".to_string(),
            format!("# {}", self.description.replace(['\n', '\r'], " ")),
            "# Written by Kiln. Slurm sends TERM before the time limit (--signal), and scancel"
                .to_string(),
            "# sends TERM: kiln then stops after its current batch, keeping its last checkpoint."
                .to_string(),
            "# A requeued job runs this script again, and `kiln resume` continues from that"
                .to_string(),
            "# checkpoint, so every epoch is trained exactly once.".to_string(),
        ];
        if let Some(slurm) = self.slurm {
            lines.push(format!("#SBATCH --job-name={}", self.job_name));
            lines.push("#SBATCH --requeue".to_string());
            lines.push(format!("#SBATCH --signal=B:TERM@{}", slurm.signal_secs));
            let options = [
                ("partition", &slurm.partition),
                ("gres", &slurm.gres),
                ("mem", &slurm.mem),
                ("time", &slurm.time),
            ];
            for (name, value) in options {
                if let Some(value) = value.as_ref().filter(|v| !v.trim().is_empty()) {
                    lines.push(format!("#SBATCH --{name}={}", value.trim()));
                }
            }
            if let Some(cpus) = slurm.cpus {
                lines.push(format!("#SBATCH --cpus-per-task={cpus}"));
            }
            if self.runs.len() > 1 {
                lines.push(format!(
                    "#SBATCH --array=0-{}%{}",
                    self.runs.len() - 1,
                    self.concurrency.max(1)
                ));
            }
            for extra in &slurm.extra {
                let extra = extra.trim();
                let option = extra.strip_prefix("#SBATCH").map_or(extra, str::trim);
                if !option.is_empty() {
                    lines.push(format!("#SBATCH {option}"));
                }
            }
        }
        lines.push("set -u".to_string());
        lines.push(format!("kiln={}", quote_path(self.kiln)));
        lines.push(format!("store={}", quote_path(self.store)));
        if let [run] = self.runs {
            lines.push(format!("run={}", quote(run)));
        } else {
            let runs: Vec<String> = self.runs.iter().map(|run| quote(run)).collect();
            lines.push(format!("runs=({})", runs.join(" ")));
            lines.push("run=${runs[${SLURM_ARRAY_TASK_ID:-0}]}".to_string());
        }
        lines.extend(
            [
                r#"exec >> "$store/$run/job.out" 2>&1"#,
                r#"echo "kiln job ${SLURM_JOB_ID:-$$} (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)""#,
                r#""$kiln" --runs-dir "$store" resume "$run" &"#,
                "trainer=$!",
                "# Pass TERM on to kiln and wait for it to save and exit.",
                r#"trap 'kill -TERM "$trainer" 2>/dev/null' TERM"#,
                "while :; do",
                r#"    wait "$trainer""#,
                "    status=$?",
                r#"    kill -0 "$trainer" 2>/dev/null || break"#,
                "done",
                r#"echo "kiln exited with status $status""#,
                r#"exit "$status""#,
            ]
            .map(str::to_string),
        );
        lines.join("\n") + "\n"
    }
}

/// Submits `script_path` with `sbatch --parsable`; returns the job id. sbatch's refusal
/// (an unknown partition, more CPUs than a node has) comes back as its own words.
pub fn submit(shell: &Shell, script_path: &str, output_path: &str) -> Result<String, ClusterError> {
    let script = format!(
        "sbatch --parsable --output={} {}",
        quote_path(output_path),
        quote_path(script_path)
    );
    let reply = shell.run_with(&script, None, std::time::Duration::from_secs(120))?;
    if !reply.ok() {
        return Err(ClusterError::Submit(format!(
            "sbatch refused the job: {}",
            super::shell::last_lines(&reply.stderr, 4)
        )));
    }
    // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
    let text = reply.stdout_text();
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(ClusterError::Submit(format!(
            "sbatch gave no job id (it said '{}')",
            super::shell::last_lines(&text, 2)
        )));
    }
    Ok(id)
}

/// A job as `scontrol show job` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`, `FAILED`, `TIMEOUT`, …
    pub state: String,
    /// Why it waits (`Priority`, `Resources`, `BeginTime`…), `None` when there is no reason.
    pub reason: Option<String>,
    /// How often it was requeued.
    pub restarts: u32,
    pub exit_code: Option<String>,
}

impl JobInfo {
    pub fn is_pending(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "CONFIGURING" | "SUSPENDED"
        )
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "RUNNING" | "COMPLETING" | "STAGE_OUT")
    }

    /// Every other state is an end.
    pub fn is_finished(&self) -> bool {
        !self.is_pending() && !self.is_running()
    }
}

/// Parses `scontrol show job -o` output (one line of `Key=Value` words). Untrusted: anything
/// odd gives `None`.
pub fn parse_job(text: &str) -> Option<JobInfo> {
    let mut state = None;
    let mut reason = None;
    let mut restarts = 0;
    let mut exit_code = None;
    for word in text.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "JobState" => state = Some(value.to_string()),
            "Reason" => {
                reason = Some(value.to_string()).filter(|r| r != "None" && r != "(null)");
            }
            "Restarts" => restarts = value.parse().unwrap_or(0),
            "ExitCode" => exit_code = Some(value.to_string()),
            _ => {}
        }
    }
    let state = state.filter(|s| {
        !s.is_empty() && s.len() < 40 && s.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    })?;
    Some(JobInfo {
        state,
        reason: reason.map(|r| r.chars().take(120).collect()),
        restarts,
        exit_code,
    })
}

/// The job's state; `Ok(None)` when Slurm no longer knows it (finished a while ago).
pub fn job_info(shell: &Shell, job: &str) -> Result<Option<JobInfo>, ClusterError> {
    let reply = shell.run_with(
        &format!("scontrol show job -o {}", quote(job)),
        None,
        std::time::Duration::from_secs(60),
    )?;
    if !reply.ok() {
        if reply.stderr.contains("Invalid job id") {
            return Ok(None);
        }
        return Err(shell.failed("asking Slurm for the job", &reply));
    }
    Ok(parse_job(&reply.stdout_text()))
}

/// `scancel`: Slurm sends TERM (kiln checkpoints and exits), then KILL after KillWait.
pub fn cancel(shell: &Shell, job: &str) -> Result<(), ClusterError> {
    shell.run("cancelling the job", &format!("scancel {}", quote(job)))?;
    Ok(())
}

/// `sinfo`'s partitions: name, availability, nodes, CPUs and memory per node, GRES.
pub fn partitions(shell: &Shell) -> Result<String, ClusterError> {
    shell.run(
        "listing partitions",
        "sinfo -h -o '%P %a nodes=%D cpus=%c mem=%mMB gres=%G'",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_lines_parse_and_junk_does_not() {
        let line = "JobId=12 JobName=kiln-iris UserId=root(0) JobState=PENDING Reason=Priority Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 ExitCode=0:0";
        let job = parse_job(line).expect("parses");
        assert_eq!(job.state, "PENDING");
        assert_eq!(job.reason.as_deref(), Some("Priority"));
        assert_eq!(job.restarts, 2);
        assert!(job.is_pending());
        assert_eq!(parse_job("JobState=$(rm -rf /)"), None);
        assert_eq!(parse_job(""), None);
        let done = parse_job("JobState=COMPLETED Reason=None ExitCode=0:0").expect("parses");
        assert!(done.is_finished() && done.reason.is_none());
    }

    #[test]
    fn scripts_quote_what_they_name() {
        let slurm = SlurmSettings {
            partition: Some("debug".to_string()),
            cpus: Some(2),
            extra: vec!["--account=lab".to_string(), "#SBATCH --qos=low".to_string()],
            ..SlurmSettings::default()
        };
        let runs = vec!["20260101-000000-a-b-0001".to_string()];
        let script = JobScript {
            job_name: "kiln-a-b",
            runs: &runs,
            kiln: "/opt/kiln dir/kiln",
            store: "~/runs",
            slurm: Some(&slurm),
            concurrency: 1,
            description: "run 'a; b'",
        }
        .render();
        assert!(script.contains("#SBATCH --partition=debug\n"), "{script}");
        assert!(script.contains("#SBATCH --signal=B:TERM@120\n"));
        assert!(script.contains("#SBATCH --requeue\n"));
        assert!(script.contains("#SBATCH --cpus-per-task=2\n"));
        assert!(script.contains("#SBATCH --account=lab\n#SBATCH --qos=low\n"));
        assert!(script.contains("kiln='/opt/kiln dir/kiln'\n"));
        assert!(script.contains("store=\"$HOME\"/runs\n"));
        assert!(!script.contains("--array"));
    }

    #[test]
    fn several_runs_make_an_array() {
        let runs: Vec<String> = (0..5).map(|i| format!("run-{i}")).collect();
        let slurm = SlurmSettings::default();
        let script = JobScript {
            job_name: "kiln-sweep",
            runs: &runs,
            kiln: "kiln",
            store: "/s",
            slurm: Some(&slurm),
            concurrency: 2,
            description: "sweep",
        }
        .render();
        assert!(script.contains("#SBATCH --array=0-4%2\n"), "{script}");
        assert!(script.contains("runs=(run-0 run-1 run-2 run-3 run-4)\n"));
    }
}
