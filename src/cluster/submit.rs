//! Sending planned runs to a target: the dataset to the target's content-addressed cache
//! (copied once per content), each run's `run.json` (status pending) and batch script into the
//! target's store, the job (`sbatch`, or a background process on an SSH host), and last the
//! local mirror. Any failure undoes what was made, so nothing is left half-created.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::ClusterError;
use super::check::{check_kiln, remote_store};
use super::quote::{join, quote, quote_path};
use super::shell::Shell;
use super::slurm::{self, JobScript};
use super::targets::{Target, TargetKind, TargetsFile};
use crate::runs::{RemoteLink, RunRecord, RunStatus, RunStore, new_run_id};
use crate::train::PlannedRun;

/// A run sent to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub run_id: String,
    pub name: String,
    /// The Slurm job id (`ID` or `ARRAY_INDEX` for an array element), or `pid N`.
    pub job: String,
}

/// One run on its way out.
struct Outgoing {
    id: String,
    name: String,
    record: RunRecord,
    local_data: PathBuf,
    remote_dir: String,
}

/// Sends `planned` runs to `target`: as one Slurm job array with at most `concurrency` running
/// at once when there are several (a sweep), or one job. `say` hears what happens, for people.
pub fn submit_runs(
    target: &Target,
    runs_dir: &Path,
    planned: &[PlannedRun],
    concurrency: usize,
    say: &mut dyn FnMut(String),
) -> Result<Vec<Submitted>, ClusterError> {
    if target.kind == TargetKind::Local {
        return Err(ClusterError::Submit(
            "the local target trains here; start the run without a target".to_string(),
        ));
    }
    let shell = Shell::connect(target)?;
    say(format!("connected to {}", target.describe()));
    check_kiln(&shell)?;
    let store = remote_store(&shell)?;
    let local = RunStore::open(runs_dir)?;
    let mut taken = HashSet::new();
    let mut outgoing = Vec::new();
    for plan in planned {
        let wanted = plan.wanted_name().ok_or_else(|| {
            ClusterError::Submit("only new runs can be sent to a target".to_string())
        })?;
        let name = free_name(&local, &wanted, &taken)?;
        taken.insert(name.clone());
        let id = new_run_id(&name);
        let mut record = plan.record_for_elsewhere(&id, &name).ok_or_else(|| {
            ClusterError::Submit(
                "runs that start from another model (--from) cannot be sent to a target yet; train them here".to_string(),
            )
        })?;
        if matches!(record.data.test, Some(crate::data::TestSplit::File(_))) {
            return Err(ClusterError::Submit(
                "a separate test file cannot be sent to a target yet; use a test fraction"
                    .to_string(),
            ));
        }
        let local_data = record.data.path.clone();
        record.data.path = PathBuf::from(upload_dataset(&shell, &store, &record, say)?);
        outgoing.push(Outgoing {
            remote_dir: join(&store, &id),
            id,
            name,
            record,
            local_data,
        });
    }
    let made = make_remote_runs(&shell, &store, &outgoing);
    let submitted = made.and_then(|()| start_jobs(&shell, &store, &outgoing, concurrency));
    let (jobs, script) = match submitted {
        Ok(done) => done,
        Err(error) => {
            remove_remote_runs(&shell, &outgoing);
            return Err(error);
        }
    };
    for (run, job) in outgoing.iter().zip(&jobs) {
        say(format!("{} submitted as job {job}", run.name));
    }
    if let Err(error) = make_mirrors(&local, target, &outgoing, &jobs, &script) {
        for job in &jobs {
            let _ = stop_job(&shell, job);
        }
        remove_remote_runs(&shell, &outgoing);
        for run in &outgoing {
            let _ = std::fs::remove_dir_all(local.root().join(&run.id));
        }
        return Err(error);
    }
    Ok(outgoing
        .iter()
        .zip(jobs)
        .map(|(run, job)| Submitted {
            run_id: run.id.clone(),
            name: run.name.clone(),
            job,
        })
        .collect())
}

/// `wanted`, or `wanted-2`, … : free in the local store and in this submission.
fn free_name(
    local: &RunStore,
    wanted: &str,
    taken: &HashSet<String>,
) -> Result<String, ClusterError> {
    for n in 1.. {
        let candidate = if n == 1 {
            wanted.to_string()
        } else {
            format!("{wanted}-{n}")
        };
        if !taken.contains(&candidate) && local.unused_name(&candidate)? == candidate {
            return Ok(candidate);
        }
    }
    Ok(wanted.to_string())
}

/// Copies the dataset to `STORE/.kiln-data/SHA256/NAME` unless it is there already; returns
/// that path. The target's `kiln resume` checks the fingerprint again before training.
fn upload_dataset(
    shell: &Shell,
    store: &str,
    record: &RunRecord,
    say: &mut dyn FnMut(String),
) -> Result<String, ClusterError> {
    let local = &record.data.path;
    let content = &record.fingerprint.content_sha256;
    if content.is_empty() || !content.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ClusterError::Submit(
            "the dataset has no content fingerprint".to_string(),
        ));
    }
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "data".to_string());
    let cache = join(&join(store, ".kiln-data"), content);
    let remote = join(&cache, &name);
    let cached = shell.run(
        "looking for the dataset in the cache",
        &format!("if [ -e {} ]; then echo cached; fi", quote_path(&remote)),
    )?;
    if cached.trim() == "cached" {
        say(format!("dataset {name} is on the target already"));
        return Ok(remote);
    }
    shell.run(
        "making the dataset cache",
        &format!("mkdir -p {}", quote_path(&cache)),
    )?;
    if local.is_dir() {
        shell.upload_dir(local, &remote)?;
    } else if record.data.is_image_data() {
        return Err(ClusterError::Submit(format!(
            "{}: for a target, give the folder that holds the IDX pair",
            local.display()
        )));
    } else {
        shell.upload_file(local, &remote)?;
    }
    say(format!("dataset {name} copied to the target"));
    Ok(remote)
}

/// The single-run batch script (what a requeue or a resubmission runs).
fn single_script(target: &Target, store: &str, run: &Outgoing) -> String {
    JobScript {
        job_name: &job_name(&run.name),
        runs: std::slice::from_ref(&run.id),
        kiln: &target.kiln,
        store,
        slurm: slurm_settings(target).as_ref(),
        concurrency: 1,
        description: &format!("Kiln run {} ('{}')", run.id, run.name),
    }
    .render()
}

fn slurm_settings(target: &Target) -> Option<super::targets::SlurmSettings> {
    (target.kind == TargetKind::Slurm).then(|| target.slurm.clone().unwrap_or_default())
}

/// `kiln-NAME` with only plain characters (it shows in `squeue`).
fn job_name(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("kiln-{slug}")
}

fn make_remote_runs(shell: &Shell, store: &str, runs: &[Outgoing]) -> Result<(), ClusterError> {
    let target = shell.target();
    for run in runs {
        shell.run(
            "making the run folder",
            &format!(
                "mkdir -p {}",
                quote_path(&join(&run.remote_dir, "checkpoints"))
            ),
        )?;
        let json = serde_json::to_vec_pretty(&run.record)
            .map_err(|error| ClusterError::Io(error.to_string()))?;
        shell.upload_bytes(&json, &join(&run.remote_dir, "run.json"))?;
        shell.upload_bytes(
            single_script(target, store, run).as_bytes(),
            &join(&run.remote_dir, "job.sh"),
        )?;
    }
    Ok(())
}

fn remove_remote_runs(shell: &Shell, runs: &[Outgoing]) {
    for run in runs {
        let _ = shell.run(
            "removing the run folder",
            &format!("rm -rf {}", quote_path(&run.remote_dir)),
        );
    }
}

/// Starts the job(s); returns each run's job and the script that was submitted.
fn start_jobs(
    shell: &Shell,
    store: &str,
    runs: &[Outgoing],
    concurrency: usize,
) -> Result<(Vec<String>, String), ClusterError> {
    let target = shell.target();
    let output = join(&join(store, ".kiln-jobs"), "slurm-%j.out");
    match (target.kind, runs) {
        (TargetKind::Slurm, [run]) => {
            let job = slurm::submit(shell, &join(&run.remote_dir, "job.sh"), &output)?;
            Ok((vec![job], single_script(target, store, run)))
        }
        (TargetKind::Slurm, _) => {
            let ids: Vec<String> = runs.iter().map(|run| run.id.clone()).collect();
            let settings = slurm_settings(target);
            let script = JobScript {
                job_name: &job_name(&runs[0].name),
                runs: &ids,
                kiln: &target.kiln,
                store,
                slurm: settings.as_ref(),
                concurrency,
                description: &format!("Kiln job array of {} runs", runs.len()),
            }
            .render();
            let path = join(&join(store, ".kiln-jobs"), &format!("{}-array.sh", ids[0]));
            shell.upload_bytes(script.as_bytes(), &path)?;
            let job = slurm::submit(shell, &path, &output)?;
            let jobs = (0..runs.len()).map(|i| format!("{job}_{i}")).collect();
            Ok((jobs, script))
        }
        _ => {
            let mut jobs = Vec::new();
            for run in runs {
                jobs.push(start_process(shell, &run.remote_dir)?);
            }
            let script = runs
                .first()
                .map(|run| single_script(target, store, run))
                .unwrap_or_default();
            Ok((jobs, script))
        }
    }
}

/// On an SSH host: the batch script as a background process that outlives the connection.
fn start_process(shell: &Shell, remote_dir: &str) -> Result<String, ClusterError> {
    let out = shell.run(
        "starting kiln",
        &format!(
            "cd {} && nohup bash job.sh </dev/null >/dev/null 2>&1 & echo $!",
            quote_path(remote_dir)
        ),
    )?;
    let pid = out.trim();
    if pid.is_empty() || !pid.chars().all(|c| c.is_ascii_digit()) {
        return Err(ClusterError::Submit(format!(
            "the target gave no process id ('{pid}')"
        )));
    }
    Ok(format!("pid {pid}"))
}

/// Stops a job: `scancel`, or TERM to the process on an SSH host (the trainer checkpoints).
pub(crate) fn stop_job(shell: &Shell, job: &str) -> Result<(), ClusterError> {
    match job.strip_prefix("pid ") {
        Some(pid) => {
            shell.run("stopping kiln", &format!("kill -TERM {}", quote(pid)))?;
            Ok(())
        }
        None => slurm::cancel(shell, job),
    }
}

fn make_mirrors(
    local: &RunStore,
    target: &Target,
    runs: &[Outgoing],
    jobs: &[String],
    script: &str,
) -> Result<(), ClusterError> {
    for (run, job) in runs.iter().zip(jobs) {
        let dir = local.create_run_dir_with_id(&run.id)?;
        let mut record = run.record.clone();
        record.data.path = run.local_data.clone();
        record.status = RunStatus::Pending;
        record.status_message = Some(format!("submitted to {} as job {job}", target.name));
        record.remote = Some(RemoteLink {
            target: target.name.clone(),
            path: run.remote_dir.clone(),
            job: job.clone(),
            job_state: Some("SUBMITTED".to_string()),
            local_data: run.local_data.clone(),
            link_problem: None,
            output_tail: None,
            settled: false,
        });
        dir.write_record(&record)?;
        crate::runs::atomic::write_atomic(&dir.path.join("job.sh"), script.as_bytes())
            .map_err(|error| ClusterError::Io(format!("{}: {error}", dir.path.display())))?;
    }
    Ok(())
}

/// The target named in a mirrored run, from the targets file.
pub(crate) fn target_of(targets: &TargetsFile, link: &RemoteLink) -> Result<Target, ClusterError> {
    targets.get(&link.target)
}

/// Asks the target to stop a mirrored run (`scancel`, or TERM on an SSH host).
pub fn stop(runs_dir: &Path, run: &str, targets: &TargetsFile) -> Result<String, ClusterError> {
    let dir = RunStore::open(runs_dir)?.find(run)?;
    let record = dir.read_record()?;
    let Some(link) = record.remote else {
        return Err(ClusterError::Submit(format!(
            "run {} trains on this machine; stop it where it runs (Ctrl-C, the window's Stop)",
            dir.id
        )));
    };
    let shell = Shell::connect(&target_of(targets, &link)?)?;
    stop_job(&shell, &link.job)?;
    Ok(link.job)
}

/// Sends a stopped, cancelled or failed mirrored run to its target again: the same run folder,
/// a new job; the trainer continues from its last checkpoint.
pub fn resubmit(
    runs_dir: &Path,
    run: &str,
    targets: &TargetsFile,
) -> Result<Submitted, ClusterError> {
    let dir = RunStore::open(runs_dir)?.find(run)?;
    let mut record = dir.read_record()?;
    let Some(mut link) = record.remote.clone() else {
        return Err(ClusterError::Submit(format!(
            "run {} is not a remote run",
            dir.id
        )));
    };
    if !link.settled || !record.status.is_resumable() {
        return Err(ClusterError::Submit(format!(
            "run {} is {} on '{}'{}; only a stopped, cancelled or failed run goes again",
            dir.id,
            record.status,
            link.target,
            if link.settled {
                ""
            } else {
                " (not ended yet: see `kiln follow`)"
            }
        )));
    }
    let target = target_of(targets, &link)?;
    let shell = Shell::connect(&target)?;
    check_kiln(&shell)?;
    let store = remote_store(&shell)?;
    let script = join(&link.path, "job.sh");
    let job = match target.kind {
        TargetKind::Slurm => slurm::submit(
            &shell,
            &script,
            &join(&join(&store, ".kiln-jobs"), "slurm-%j.out"),
        )?,
        _ => start_process(&shell, &link.path)?,
    };
    link.job = job.clone();
    link.job_state = Some("SUBMITTED".to_string());
    link.settled = false;
    link.output_tail = None;
    record.remote = Some(link);
    record.status = RunStatus::Pending;
    record.status_message = Some(format!("resubmitted to {} as job {job}", target.name));
    dir.write_record(&record)?;
    Ok(Submitted {
        run_id: dir.id.clone(),
        name: record.name,
        job,
    })
}
