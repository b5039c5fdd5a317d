//! Training on a compute target, end to end with real processes: a private single-node Slurm
//! (munged, slurmctld, slurmd) and an sshd on a loopback port, started for each test and
//! stopped after it (tests/common/cluster.rs). `kiln` reaches the cluster's login host through
//! the system ssh client and submits with sbatch there, exactly as on a real cluster.
//!
//! Skipped, with the reason printed, only where Slurm, munge or OpenSSH are not installed
//! (.ci/run installs them).

mod common;
#[path = "common/cluster.rs"]
mod fixture;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{sample, text};
use fixture::Cluster;

/// Starts the test cluster, or `None` (printing why) where the programs are missing.
macro_rules! cluster_or_skip {
    () => {{
        if let Some(reason) = fixture::missing_programs() {
            eprintln!("{reason}");
            return;
        }
        Cluster::start()
    }};
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// `kiln follow RUN` in the background; its stderr lines go to the returned receiver.
fn follow(cluster: &Cluster, run: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = cluster
        .kiln_command(&["follow", run])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln follow starts");
    let stderr = child.stderr.take().expect("stderr");
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    (child, receive)
}

/// Reads lines from a follower until one satisfies `until` (returning every line read).
fn read_until(
    lines: &std::sync::mpsc::Receiver<String>,
    limit: Duration,
    mut until: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let done = until(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("the follower did not say what was expected; it said {seen:#?}"),
        }
    }
}

/// The epoch number at the start of a follower's `epoch N …` line.
fn epoch_of(line: &str) -> Option<u64> {
    line.strip_prefix("epoch")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn every_epoch_once(counts: &BTreeMap<u64, usize>, epochs: u64) -> bool {
    counts.len() as u64 == epochs && counts.values().all(|&n| n == 1)
}

/// Submits a detached run; returns its id.
fn submit(cluster: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["train", "--device", "cpu", "--on", "slurm", "--detach"];
    all.extend_from_slice(args);
    ok(&cluster.kiln(&all), "kiln train --on slurm --detach")
}

fn diabetes_long(epochs: &str) -> Vec<String> {
    vec![
        "--data".to_string(),
        sample("diabetes.csv").display().to_string(),
        "--epochs".to_string(),
        epochs.to_string(),
        "--batch-size".to_string(),
        "1".to_string(),
    ]
}

#[test]
fn iris_on_slurm_through_ssh_pending_running_completed_then_export_and_verify() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    let started = Instant::now();

    let out = cluster.kiln(&["targets", "test", "slurm"]);
    let report = ok(&out, "kiln targets test slurm");
    assert!(
        report.contains("kiln 0.1.0") && report.contains("debug"),
        "{report}"
    );
    let out = cluster.kiln(&["targets", "list"]);
    assert!(ok(&out, "targets list").contains("slurm on 127.0.0.1"));

    // A name and a dataset path with shell metacharacters: data, never code.
    let pwned = cluster.dir.join("pwned");
    let name = format!("it's; $(touch {p}) `touch {p}` a  b", p = pwned.display());
    let data_dir = cluster.dir.join("data 'x'; $(touch pwned)");
    std::fs::create_dir_all(&data_dir).expect("data folder");
    let data = data_dir.join("iris $(id).csv");
    std::fs::copy(sample("iris.csv"), &data).expect("iris copied");

    // The node is busy until the run has been seen waiting in the queue.
    let blocker = cluster.slurm(
        "sbatch",
        &[
            "--parsable",
            "--cpus-per-task=2",
            "--output=/dev/null",
            "--wrap",
            "sleep 600",
        ],
    );
    let blocker = ok(&blocker, "a blocking job");
    let data_arg = data.display().to_string();
    let run = submit(
        &cluster,
        &[
            "--data",
            &data_arg,
            "--epochs",
            "150",
            "--batch-size",
            "1",
            "--name",
            &name,
        ],
    );
    // Submitted, not followed yet: the mirror says pending, with its target.
    let listed = ok(&cluster.kiln(&["runs", "--json"]), "kiln runs --json");
    let rows: serde_json::Value = serde_json::from_str(&listed).expect("runs json");
    let row = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["id"] == run.as_str()))
        .unwrap_or_else(|| panic!("{run} not listed in {listed}"));
    assert_eq!(row["status"], "pending", "{row}");
    assert_eq!(row["target"], "slurm", "{row}");
    assert!(ok(&cluster.kiln(&["runs"]), "kiln runs").contains("slurm"));

    let (mut follower, lines) = follow(&cluster, &run);
    // Pending first, with Slurm's reason.
    let mut said = read_until(&lines, Duration::from_secs(60), |line| {
        line.starts_with("pending") && line.contains("(Resources)")
    });
    ok(
        &cluster.slurm("scancel", &[&blocker]),
        "scancel the blocker",
    );
    said.extend(read_until(&lines, Duration::from_secs(60), |line| {
        line.starts_with("running")
    }));
    said.extend(read_until(&lines, Duration::from_secs(60), |line| {
        epoch_of(line).is_some()
    }));
    // Curves arrive while it trains: the mirror has points and the run is still running.
    assert_eq!(cluster.local_record(&run)["status"], "running", "{said:#?}");
    said.extend(read_until(&lines, Duration::from_secs(120), |line| {
        line.starts_with("completed")
    }));
    let status = follower.wait().expect("follower ends");
    assert!(status.success(), "{said:#?}\n{}", cluster.logs());
    let epochs: Vec<u64> = said.iter().filter_map(|line| epoch_of(line)).collect();
    assert_eq!(epochs, (1..=150).collect::<Vec<_>>(), "{said:#?}");

    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "completed");
    assert_eq!(record["name"], name.as_str());
    assert_eq!(record["remote"]["target"], "slurm");
    assert_eq!(record["data"]["path"], data_arg.as_str());
    let remote: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cluster.remote_store.join(&run).join("run.json")).expect("remote"),
    )
    .expect("remote run.json");
    assert_eq!(remote["name"], name.as_str());
    // The batch script is kept beside the run, here and there.
    assert!(cluster.local_store.join(&run).join("job.sh").is_file());
    let counts = Cluster::epoch_counts(&cluster.local_store.join(&run));
    assert!(every_epoch_once(&counts, 150), "{counts:?}");

    let bundle = cluster.dir.join("bundle");
    let bundle_arg = bundle.display().to_string();
    ok(
        &cluster.kiln(&["export", &run, "--out", &bundle_arg]),
        "kiln export",
    );
    let verified = ok(&cluster.kiln(&["verify", &bundle_arg]), "kiln verify");
    assert!(verified.contains("OK"), "{verified}");
    // Another checkpoint than the best: its weights come from the target when exported.
    let checkpoints = cluster.local_store.join(&run).join("checkpoints");
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(checkpoints.join("index.json")).expect("index"),
    )
    .expect("index json");
    let other = index["checkpoints"]
        .as_array()
        .and_then(|entries| {
            entries.iter().find(|entry| {
                !checkpoints
                    .join(entry["model_file"].as_str().unwrap_or(""))
                    .is_file()
            })
        })
        .unwrap_or_else(|| panic!("every checkpoint is here already: {index}"));
    let epoch = other["epoch"].as_u64().expect("epoch");
    let bundle = cluster.dir.join("bundle-other");
    let bundle_arg = bundle.display().to_string();
    ok(
        &cluster.kiln(&["export", &format!("{run}@{epoch}"), "--out", &bundle_arg]),
        "kiln export of a checkpoint left on the target",
    );
    assert!(ok(&cluster.kiln(&["verify", &bundle_arg]), "kiln verify").contains("OK"));

    assert!(!pwned.exists() && !cluster.dir.join("pwned").exists());
    assert!(!cluster.remote_store.join("pwned").exists());
    eprintln!("iris on slurm: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn scancel_mid_run_leaves_a_stopped_resumable_run_that_resumes_there() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    let args = diabetes_long("150");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = submit(&cluster, &[&args[..], &["--name", "cancel-me"]].concat());
    let (mut follower, lines) = follow(&cluster, &run);
    read_until(&lines, Duration::from_secs(60), |line| {
        epoch_of(line).is_some_and(|epoch| epoch >= 3)
    });
    let job = cluster.job_of(&run);
    ok(&cluster.slurm("scancel", &[&job]), "scancel");
    let status = follower.wait().expect("follower ends");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(status.success(), "{rest:#?}");
    assert!(
        rest.iter().any(|line| line.contains("kiln resume")),
        "{rest:#?}"
    );
    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "stopped", "{record}");
    let done = record["epochs_completed"].as_u64().expect("epochs");
    assert!(
        (3..150).contains(&done),
        "cancelled after {done} epochs: {record}"
    );
    let index = std::fs::read_to_string(
        cluster
            .local_store
            .join(&run)
            .join("checkpoints")
            .join("index.json"),
    )
    .expect("the mirror has the checkpoint index");
    assert!(index.contains(&format!("\"epoch\": {done}")), "{index}");

    // Resuming sends it again (a new job) and it continues from that checkpoint.
    let out = cluster.kiln(&["resume", &run]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}\n{}", cluster.logs());
    assert!(said.contains("resubmitted"), "{said}");
    assert_ne!(cluster.job_of(&run), job);
    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "completed", "{record}");
    let counts = Cluster::epoch_counts(&cluster.local_store.join(&run));
    assert!(every_epoch_once(&counts, 150), "{counts:?}");
    let remote = Cluster::epoch_counts(&cluster.remote_store.join(&run));
    assert_eq!(counts, remote);
}

#[test]
fn a_requeued_job_resumes_from_its_checkpoint_and_trains_every_epoch_once() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    let args = diabetes_long("120");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = submit(&cluster, &[&args[..], &["--name", "requeue-me"]].concat());
    let (mut follower, lines) = follow(&cluster, &run);
    read_until(&lines, Duration::from_secs(60), |line| {
        epoch_of(line).is_some_and(|epoch| epoch >= 3)
    });
    let job = cluster.job_of(&run);
    ok(
        &cluster.slurm("scontrol", &["requeue", &job]),
        "scontrol requeue",
    );
    let rest = read_until(&lines, Duration::from_secs(120), |line| {
        line.starts_with("completed")
    });
    let status = follower.wait().expect("follower ends");
    assert!(status.success(), "{rest:#?}");
    assert!(
        rest.iter().any(|line| line.contains("requeued")),
        "the follower saw no requeue: {rest:#?}"
    );
    let job_out =
        std::fs::read_to_string(cluster.remote_store.join(&run).join("job.out")).expect("job.out");
    assert!(job_out.contains("(restart 1)"), "{job_out}");
    assert!(job_out.contains("resuming after epoch"), "{job_out}");
    let counts = Cluster::epoch_counts(&cluster.local_store.join(&run));
    assert!(every_epoch_once(&counts, 120), "{counts:?}");
    assert_eq!(cluster.local_record(&run)["epochs_completed"], 120);
}

#[test]
fn the_ssh_link_dropping_mid_run_loses_no_epoch() {
    let _serial = fixture::serial();
    let mut cluster = cluster_or_skip!();
    let args = diabetes_long("150");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = submit(&cluster, &[&args[..], &["--name", "link-drop"]].concat());
    let (mut follower, lines) = follow(&cluster, &run);
    let mut seen = read_until(&lines, Duration::from_secs(60), |line| {
        epoch_of(line).is_some_and(|epoch| epoch >= 3)
    });
    cluster.stop_sshd();
    seen.extend(read_until(&lines, Duration::from_secs(60), |line| {
        line.contains("disconnected")
    }));
    // The job goes on while the link is down.
    std::thread::sleep(Duration::from_secs(3));
    cluster.start_sshd();
    seen.extend(read_until(&lines, Duration::from_secs(120), |line| {
        line.starts_with("completed")
    }));
    let status = follower.wait().expect("follower ends");
    assert!(status.success(), "{seen:#?}");
    assert!(seen.iter().any(|line| line == "reconnected"), "{seen:#?}");
    let epochs: Vec<u64> = seen.iter().filter_map(|line| epoch_of(line)).collect();
    assert_eq!(epochs, (1..=150).collect::<Vec<_>>());
    let counts = Cluster::epoch_counts(&cluster.local_store.join(&run));
    assert!(every_epoch_once(&counts, 150), "{counts:?}");
    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "completed");
    assert!(record["remote"]["link_problem"].is_null(), "{record}");
}

#[test]
fn bad_targets_fail_clearly_before_anything_is_created() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    let wrong_key = cluster.dir.join("wrong_key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&wrong_key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success());
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let wrong_port = cluster.target_entry("wrong-port", "slurm", closed_port, &cluster.client_key);
    let wrong_key_entry = cluster.target_entry("wrong-key", "slurm", cluster.ssh_port, &wrong_key);
    let no_kiln = cluster
        .target_entry("no-kiln", "slurm", cluster.ssh_port, &cluster.client_key)
        .replace(
            &format!("kiln = {:?}", cluster.kiln.display().to_string()),
            "kiln = \"/nowhere/kiln\"",
        );
    let no_partition = format!(
        "{}[target.slurm]\npartition = \"nonexistent\"\n",
        cluster.target_entry(
            "no-partition",
            "slurm",
            cluster.ssh_port,
            &cluster.client_key
        )
    );
    let many_cpus = format!(
        "{}[target.slurm]\ncpus = 4096\n",
        cluster.target_entry("many-cpus", "slurm", cluster.ssh_port, &cluster.client_key)
    );
    cluster.write_targets(&[
        &wrong_port,
        &wrong_key_entry,
        &no_kiln,
        &no_partition,
        &many_cpus,
    ]);
    let data = sample("iris.csv").display().to_string();
    let cases: [(&str, &[&str]); 6] = [
        (
            "wrong-port",
            &["cannot reach target 'wrong-port'", "refused"],
        ),
        (
            "wrong-key",
            &["cannot reach target 'wrong-key'", "Permission denied"],
        ),
        (
            "no-kiln",
            &[
                "no working kiln at '/nowhere/kiln'",
                "--no-default-features",
            ],
        ),
        ("no-partition", &["sbatch refused the job", "partition"]),
        ("many-cpus", &["sbatch refused the job", "processors"]),
        ("nobody", &["no target named 'nobody'"]),
    ];
    for (target, expected) in cases {
        let started = Instant::now();
        let out = cluster.kiln(&[
            "train", "--data", &data, "--epochs", "2", "--device", "cpu", "--on", target,
        ]);
        let said = text(&out.stderr);
        assert!(!out.status.success(), "{target}: {said}");
        for words in expected {
            assert!(
                said.contains(words),
                "{target}: expected '{words}' in: {said}"
            );
        }
        assert!(!said.contains("panicked"), "{target}: {said}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{target} took {:?}",
            started.elapsed()
        );
        assert_eq!(cluster.local_runs(), Vec::<String>::new(), "{target}");
        assert_eq!(cluster.remote_runs(), Vec::<String>::new(), "{target}");
        let out = cluster.kiln(&["targets", "test", target]);
        assert!(
            !out.status.success() || target.starts_with("no-partition") || target == "many-cpus",
            "{target}: test connection passed"
        );
    }
    // Host keys are checked: a login host whose key is not known is refused.
    std::fs::write(&cluster.known_hosts, "").expect("known_hosts emptied");
    let out = cluster.kiln(&["targets", "test", "slurm"]);
    let said = text(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("Host key verification failed"), "{said}");
}

#[test]
fn several_runs_go_out_as_one_job_array_running_two_at_a_time() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    let args = diabetes_long("25");
    let data = Path::new(&args[1]).to_path_buf();
    let mut command = vec!["train", "--device", "cpu", "--on", "slurm", "--detach"];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    command.extend_from_slice(&args);
    command.extend_from_slice(&["--name", "array", "--repeat", "4", "--concurrency", "2"]);
    let out = cluster.kiln(&command);
    let ids = ok(&out, "kiln train --repeat 4 --on slurm");
    let runs: Vec<&str> = ids.lines().collect();
    assert_eq!(runs.len(), 4, "{ids}");
    assert!(data.is_file());
    let jobs: Vec<String> = runs.iter().map(|run| cluster.job_of(run)).collect();
    let array = jobs[0].split('_').next().expect("array id").to_string();
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(job, &format!("{array}_{i}"));
    }
    let script =
        std::fs::read_to_string(cluster.local_store.join(runs[0]).join("job.sh")).expect("job.sh");
    assert!(script.contains("#SBATCH --array=0-3%2"), "{script}");
    // The dataset went once into the target's content-addressed cache.
    let cached: Vec<_> = std::fs::read_dir(cluster.remote_store.join(".kiln-data"))
        .expect("the data cache")
        .flatten()
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // Never more than two elements at once.
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = cluster.slurm("squeue", &["-h", "-t", "RUNNING", "-o", "%i"]);
        let running = text(&out.stdout).lines().count();
        most = most.max(running);
        let out = cluster.slurm("squeue", &["-h", "-o", "%i"]);
        if text(&out.stdout).trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the array did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(most <= 2, "{most} array elements ran at once");
    for run in &runs {
        let out = cluster.kiln(&["follow", run]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let record = cluster.local_record(run);
        assert_eq!(record["status"], "completed", "{record}");
        let counts = Cluster::epoch_counts(&cluster.local_store.join(run));
        assert!(every_epoch_once(&counts, 25), "{counts:?}");
    }
    let seeds: std::collections::BTreeSet<u64> = runs
        .iter()
        .map(|run| {
            cluster.local_record(run)["train"]["seed"]
                .as_u64()
                .expect("seed")
        })
        .collect();
    assert_eq!(seeds.len(), 4, "repeats differ by seed");
}

#[test]
fn a_grid_sweep_goes_out_as_a_job_array_and_its_record_fills_from_the_mirrors() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    let spec = serde_json::json!({
        "name": "remote-sweep",
        "data": { "path": sample("iris.csv") },
        "model": { "kind": "mlp", "hidden": [16], "activation": "relu", "dropout": 0.0 },
        "train": {
            "optimizer": { "kind": "adam" },
            "learning_rate": 0.01,
            "schedule": { "kind": "constant" },
            "batch_size": 16,
            "epochs": 10,
            "seed": 42
        },
        "device": "cpu",
        "parameters": { "train.learning_rate": [0.001, 0.01, 0.05] },
        "method": "grid",
        "metric": "valid_loss",
        "max_trials": 10,
        "concurrency": 2
    });
    let path = cluster.dir.join("sweep.json");
    std::fs::write(&path, serde_json::to_string_pretty(&spec).expect("json")).expect("spec");
    let path_arg = path.display().to_string();
    let out = cluster.kiln(&["sweep", "run", &path_arg, "--on", "slurm"]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}\n{}", cluster.logs());
    let sweep = text(&out.stdout).trim().to_string();
    assert!(
        said.contains("sweep") && said.contains("completed"),
        "{said}"
    );
    let out = cluster.kiln(&["sweep", "show", &sweep, "--json"]);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&out, "kiln sweep show")).expect("sweep json");
    let trials = shown["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 3, "{shown}");
    for trial in trials {
        assert_eq!(trial["status"], "completed", "{shown}");
        assert!(trial["value"].is_number(), "{shown}");
    }
    let runs = cluster.local_runs();
    assert_eq!(runs.len(), 3, "{runs:?}");
    let script =
        std::fs::read_to_string(cluster.local_store.join(&runs[0]).join("job.sh")).expect("job.sh");
    assert!(script.contains("#SBATCH --array=0-2%2"), "{script}");
    // TPE needs finished trials to choose the next: refused, nothing created.
    let mut tpe = spec.clone();
    tpe["method"] = serde_json::json!("tpe");
    tpe["parameters"] = serde_json::json!({ "train.learning_rate": { "float": [0.001, 0.1] } });
    std::fs::write(&path, serde_json::to_string_pretty(&tpe).expect("json")).expect("spec");
    let out = cluster.kiln(&["sweep", "run", &path_arg, "--on", "slurm"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("TPE"), "{}", text(&out.stderr));
    assert_eq!(cluster.local_runs().len(), 3);
    let out = cluster.kiln(&["sweep", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&ok(&out, "sweep list")).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}

#[test]
fn a_plain_ssh_host_trains_a_run_in_the_background_and_kiln_stop_stops_it() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    let data = sample("iris.csv").display().to_string();
    let out = cluster.kiln(&[
        "train", "--data", &data, "--epochs", "12", "--device", "cpu", "--on", "gpu-box",
    ]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    let run = text(&out.stdout).trim().to_string();
    let epochs: Vec<u64> = said.lines().filter_map(epoch_of).collect();
    assert_eq!(epochs, (1..=12).collect::<Vec<_>>(), "{said}");
    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "completed", "{record}");
    assert!(
        record["remote"]["job"]
            .as_str()
            .is_some_and(|job| job.starts_with("pid ")),
        "{record}"
    );

    // A long one, stopped with kiln stop: TERM to the trainer there, which checkpoints.
    let args = diabetes_long("100000");
    let mut all: Vec<&str> = vec!["train", "--device", "cpu", "--on", "gpu-box", "--detach"];
    all.extend(args.iter().map(String::as_str));
    let run = ok(&cluster.kiln(&all), "kiln train --on gpu-box --detach");
    let remote = cluster.remote_store.join(&run);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Cluster::epoch_counts(&remote).len() < 2 {
        assert!(Instant::now() < deadline, "no epochs on the ssh host");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = cluster.kiln(&["stop", &run]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "stopped", "{record}");
    assert!(record["epochs_completed"].as_u64().is_some_and(|n| n >= 2));
}

#[test]
fn the_window_sends_iris_to_slurm_and_draws_its_curves_as_it_trains() {
    use common::app::{app_on, step_until};
    use egui_kittest::kittest::Queryable;
    use kiln::ui::KilnApp;
    use kiln::ui::dialogs::ScriptedDialogs;

    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    std::fs::create_dir_all(&cluster.local_store).expect("store");
    std::fs::copy(
        &cluster.targets_file,
        cluster.local_store.join(".targets.toml"),
    )
    .expect("targets for the window");
    let mut harness = app_on(
        &cluster.local_store,
        ScriptedDialogs::default(),
        sample("iris.csv"),
        [1280.0, 900.0],
    );
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    {
        let settings = harness.state_mut().settings_mut();
        settings.train.epochs = 300;
        settings.train.batch_size = 1;
    }
    harness.step();
    // "Run on" beside Train, and Test connection in the Targets section.
    harness
        .get_by_role_and_label(egui::accesskit::Role::ComboBox, "Run on")
        .click();
    harness.run_steps(3);
    harness.get_by_label("slurm").click();
    harness.step();
    assert_eq!(harness.state().targets().run_on, "slurm");
    // Below the form: clicked through accesskit, not at a position (it may be scrolled away).
    harness.get_by_label("Targets").click_accesskit();
    harness.run_steps(5);
    harness
        .get_all_by_label("Test connection")
        .next()
        .expect("a test button")
        .click_accesskit();
    step_until(&mut harness, "the connection test", |app| {
        app.targets().report("slurm").is_some()
    });
    let report = harness.state().targets().report("slurm").cloned();
    assert!(
        report
            .as_ref()
            .is_some_and(|r| r.as_ref().is_ok_and(|text| text.contains("kiln 0.1.0"))),
        "{report:?}"
    );

    harness.get_by_label("▶ Train").click();
    step_until(&mut harness, "the run on slurm to train", |app| {
        app.targets()
            .followed()
            .iter()
            .any(|(_, status)| status.starts_with("running"))
            && app.last_plot().points_drawn >= 10
    });
    let (run, _) = harness.state().targets().followed()[0].clone();
    // Curves while it trains: the mirror is not finished yet.
    assert_ne!(cluster.local_record(&run)["status"], "completed");
    step_until(&mut harness, "the run to complete", |app| {
        app.targets().followed().is_empty()
    });
    step_until(&mut harness, "all its curves", |app| {
        app.last_plot().points_drawn >= 600
    });
    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["remote"]["target"], "slurm");
    assert!(harness.state().selected_runs().contains(&run));
    let counts = Cluster::epoch_counts(&cluster.local_store.join(&run));
    assert!(every_epoch_once(&counts, 300), "{counts:?}");
    // The run table says where it trained.
    step_until(&mut harness, "the table to show the run's target", |app| {
        app.run_summaries()
            .iter()
            .any(|summary| summary.id == run && summary.target.as_deref() == Some("slurm"))
    });
    harness.run_steps(2);
    assert!(harness.query_by_label("completed on slurm").is_some());
    drop(harness);

    // Closed while a run trains on the cluster, opened again later: the run is picked up, and
    // its Stop in the Targets section cancels the job (the trainer saves first).
    let args = diabetes_long("100000");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let later = submit(&cluster, &[&args[..], &["--name", "while-closed"]].concat());
    let mut harness = app_on(
        &cluster.local_store,
        ScriptedDialogs::default(),
        sample("iris.csv"),
        [1280.0, 900.0],
    );
    step_until(
        &mut harness,
        "the reopened window to follow the run",
        |app| {
            app.targets()
                .followed()
                .iter()
                .any(|(id, status)| *id == later && status.starts_with("running"))
        },
    );
    harness.get_by_label("Targets").click_accesskit();
    harness.run_steps(5);
    harness.get_by_label("Stop").click_accesskit();
    step_until(&mut harness, "the stopped run to settle", |app| {
        app.targets().followed().is_empty()
    });
    let record = cluster.local_record(&later);
    assert_eq!(record["status"], "stopped", "{record}");
    assert!(
        record["epochs_completed"].as_u64().is_some_and(|n| n >= 1),
        "{record}"
    );
}

#[test]
fn a_job_that_fails_on_the_cluster_is_shown_failed_with_the_tail_of_its_output() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    // A kiln that answers the version check but fails to train (as a broken node would).
    let broken = cluster.dir.join("bin").join("broken-kiln");
    std::fs::write(
        &broken,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version|devices) exec {:?} \"$@\";; esac\n\
             echo 'boom: CUDA_ERROR_OUT_OF_MEMORY on this node' >&2\nexit 3\n",
            cluster.kiln.display().to_string()
        ),
    )
    .expect("script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let entry = cluster
        .target_entry("broken", "slurm", cluster.ssh_port, &cluster.client_key)
        .replace(
            &format!("kiln = {:?}", cluster.kiln.display().to_string()),
            &format!("kiln = {:?}", broken.display().to_string()),
        );
    cluster.write_targets(&[&entry]);
    let data = sample("iris.csv").display().to_string();
    let out = cluster.kiln(&[
        "train", "--data", &data, "--epochs", "5", "--device", "cpu", "--on", "broken",
    ]);
    let said = text(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("CUDA_ERROR_OUT_OF_MEMORY"), "{said}");
    assert!(said.contains("failed"), "{said}");
    let run = text(&out.stdout).trim().to_string();
    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "failed", "{record}");
    assert!(
        record["remote"]["output_tail"]
            .as_str()
            .is_some_and(|tail| tail.contains("CUDA_ERROR_OUT_OF_MEMORY")),
        "{record}"
    );
    assert_eq!(record["remote"]["settled"], true);
}

#[test]
fn near_its_time_limit_the_job_gets_sigterm_and_the_run_stops_resumable() {
    let _serial = fixture::serial();
    let cluster = cluster_or_skip!();
    // A one-minute limit with TERM asked for 50 s before it: kiln saves and exits in time.
    let short = format!(
        "{}[target.slurm]\ntime = \"1\"\nsignal_secs = 50\n",
        cluster.target_entry("short", "slurm", cluster.ssh_port, &cluster.client_key)
    );
    cluster.write_targets(&[&short]);
    let args = diabetes_long("100000");
    let mut all: Vec<&str> = vec!["train", "--device", "cpu", "--on", "short"];
    all.extend(args.iter().map(String::as_str));
    let started = Instant::now();
    let out = cluster.kiln(&all);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}\n{}", cluster.logs());
    assert!(said.contains("resume with: kiln resume"), "{said}");
    let run = text(&out.stdout).trim().to_string();
    let record = cluster.local_record(&run);
    assert_eq!(record["status"], "stopped", "{record}");
    assert!(record["epochs_completed"].as_u64().is_some_and(|n| n >= 1));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stopped by the signal, not the limit: {:?}",
        started.elapsed()
    );
    let script =
        std::fs::read_to_string(cluster.local_store.join(&run).join("job.sh")).expect("job.sh");
    assert!(script.contains("#SBATCH --signal=B:TERM@50"), "{script}");
    assert!(script.contains("#SBATCH --time=1"), "{script}");
}
