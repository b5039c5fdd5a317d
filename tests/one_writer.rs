//! One writer per run: the run lock (holder, heartbeat, stale detection), renames that the
//! trainer never undoes, unique temp files, and exports that leave nothing half-written.

mod common;

use common::{sample, text};

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kiln::data::DataSpec;
use kiln::model::{MlpConfig, ModelConfig};
use kiln::runs::lock::{LOCK_FILE, LockHolder, this_host};
use kiln::runs::{RunListing, RunLock, RunStatus, RunStore, StoreError};
use kiln::train::{DeviceChoice, TrainConfig, TrainEvent, TrainRequest, start};

fn request(runs: &Path, epochs: usize, batch_size: usize) -> TrainRequest {
    TrainRequest {
        data: DataSpec::new(sample("iris.csv")),
        model: ModelConfig::Mlp(MlpConfig::default()),
        train: TrainConfig {
            epochs,
            batch_size,
            ..TrainConfig::default()
        },
        device: DeviceChoice::Cpu,
        name: Some("original".to_string()),
        runs_dir: runs.to_path_buf(),
    }
}

fn train(runs: &Path, epochs: usize) -> String {
    let handle = start(request(runs, epochs, 16), None).unwrap();
    let id = handle.run_id.clone();
    handle.wait();
    id
}

fn write_lock(run_dir: &Path, holder: &LockHolder) {
    std::fs::write(run_dir.join(LOCK_FILE), serde_json::to_vec(holder).unwrap()).unwrap();
}

fn holder(host: &str, pid: u32, heartbeat_secs_ago: i64) -> LockHolder {
    let beat = chrono::Utc::now() - chrono::Duration::seconds(heartbeat_secs_ago);
    LockHolder {
        host: host.to_string(),
        pid,
        since: beat.to_rfc3339(),
        heartbeat: beat.to_rfc3339(),
        token: "someone-else".to_string(),
    }
}

#[test]
fn two_resumes_started_together_train_once_and_log_every_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let run = train(&runs, 2);
    // Long enough (small batches, many epochs) that the two surely overlap.
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["resume", &run, "--epochs", "150", "--runs-dir"])
            .arg(&runs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let succeeded: Vec<_> = outputs.iter().filter(|out| out.status.success()).collect();
    let refused: Vec<_> = outputs.iter().filter(|out| !out.status.success()).collect();
    assert_eq!(
        succeeded.len(),
        1,
        "exactly one trains: {:?}",
        outputs.iter().map(|o| text(&o.stderr)).collect::<Vec<_>>()
    );
    let message = text(&refused[0].stderr);
    assert!(
        message.contains("is being trained by process") && message.contains(&this_host()),
        "{message}"
    );

    // Every epoch's validation loss appears exactly once in the raw log, one resume marker.
    let log = std::fs::read_to_string(runs.join(&run).join("metrics.jsonl")).unwrap();
    let mut per_epoch = std::collections::BTreeMap::<u64, usize>::new();
    let mut markers = 0;
    for line in log.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        if value.get("resume_from_epoch").is_some() {
            markers += 1;
        } else if value["split"] == "valid" && value["metric"] == "loss" {
            *per_epoch
                .entry(value["epoch"].as_u64().unwrap())
                .or_default() += 1;
        }
    }
    assert_eq!(markers, 1);
    assert_eq!(per_epoch.len(), 152);
    assert!(per_epoch.values().all(|&count| count == 1), "{per_epoch:?}");
    assert!(
        !runs.join(&run).join(LOCK_FILE).exists(),
        "the lock goes with its holder"
    );
}

#[test]
fn a_held_lock_refuses_a_second_writer_and_goes_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let lock = RunLock::acquire(&run_dir).unwrap();
    let error = RunLock::acquire(&run_dir).err().expect("refused");
    let StoreError::Busy { holder, .. } = &error else {
        panic!("{error}");
    };
    assert!(holder.contains(&std::process::id().to_string()) && holder.contains(&this_host()));
    drop(lock);
    assert!(!run_dir.join(LOCK_FILE).exists());
    RunLock::acquire(&run_dir).expect("free again");
}

#[test]
fn stale_locks_are_taken_over_here_and_across_machines() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    // A process of this machine that is gone.
    write_lock(&run_dir, &holder(&this_host(), u32::MAX - 3, 0));
    drop(RunLock::acquire(&run_dir).expect("a dead local holder is stale"));
    // Another machine, silent for two minutes.
    write_lock(&run_dir, &holder("cluster-node-7", 4242, 120));
    drop(RunLock::acquire(&run_dir).expect("a silent remote holder is stale"));
    // Another machine with a fresh heartbeat: its process id means nothing here, it is alive.
    write_lock(&run_dir, &holder("cluster-node-7", u32::MAX - 3, 2));
    let error = RunLock::acquire(&run_dir)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("process 4294967292 on cluster-node-7"),
        "{error}"
    );
}

#[test]
fn a_run_trained_elsewhere_is_listed_busy_and_cannot_be_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let run = train(&runs, 2);
    let store = RunStore::open(&runs).unwrap();
    let found = store.find(&run).unwrap();
    let mut record = found.read_record().unwrap();
    record.status = RunStatus::Running;
    found.write_record(&record).unwrap();
    write_lock(&found.path, &holder("cluster-node-7", 99, 1));
    let listing = store.list().unwrap();
    let RunListing::Run { status, busy, .. } = &listing[0] else {
        panic!("a run");
    };
    assert_eq!(*status, RunStatus::Running);
    assert_eq!(
        busy.as_ref().map(|h| h.host.as_str()),
        Some("cluster-node-7")
    );
    let out = common::kiln(&runs, &["resume", &run, "--epochs", "2"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cluster-node-7"),
        "{}",
        text(&out.stderr)
    );
    let out = common::kiln(&runs, &["runs", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["trained_by"], "pid 99 on cluster-node-7");
    // Once its heartbeat is old, the run shows as interrupted and resumes here.
    write_lock(&found.path, &holder("cluster-node-7", 99, 300));
    assert_eq!(found.status().unwrap(), RunStatus::Interrupted);
    let out = common::kiln(&runs, &["resume", &run, "--epochs", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_holder_whose_lock_was_taken_over_notices_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let lock = RunLock::acquire(&run_dir).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    lock.raise_when_lost(stop.clone());
    write_lock(&run_dir, &holder("cluster-node-7", 1, 0));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(12);
    while !lock.is_lost() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(lock.is_lost() && stop.load(std::sync::atomic::Ordering::SeqCst));
    drop(lock);
    // The successor's lock stays.
    assert!(run_dir.join(LOCK_FILE).exists());
}

#[test]
fn a_rename_while_training_is_not_undone_by_the_trainer() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let handle = start(request(&runs, 40, 4), None).unwrap();
    let store = RunStore::open(&runs).unwrap();
    let found = store.find(&handle.run_id).unwrap();
    // Rename once the trainer has rewritten run.json at least once.
    for event in handle.events().iter() {
        if matches!(event, TrainEvent::Checkpoint { .. }) {
            break;
        }
    }
    found.rename("renamed while training").unwrap();
    let events = handle.wait();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TrainEvent::Finished { .. }))
    );
    assert_eq!(found.read_record().unwrap().name, "renamed while training");
    assert_eq!(store.find("renamed while training").unwrap().id, found.id);
    // The trainer's own file keeps the name the run started with.
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(found.record_path()).unwrap()).unwrap();
    assert_eq!(raw["name"], "original");
    assert_eq!(raw["epochs_completed"], 40);
}

#[test]
fn concurrent_atomic_writes_of_one_file_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("shared.json"));
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let path = path.clone();
            std::thread::spawn(move || {
                for write in 0..50 {
                    kiln::runs::atomic::write_json_atomic(&path, &(thread, write))
                        .expect("every write succeeds");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let last: (u32, u32) = serde_json::from_slice(&std::fs::read(&*path).unwrap()).unwrap();
    assert_eq!(last.1, 49);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temp files left behind");
}
