//! The engine on the CPU: real training, checkpoints, stop and resume, divergence, export.

mod common;

use common::sample;

use std::path::Path;

use kiln::data::DataSpec;
use kiln::export::{ExportOptions, LoadedModel, export_checkpoint, predict_csv, verify_bundle};
use kiln::model::{MlpConfig, ModelConfig};
use kiln::runs::{RunStatus, RunStore, SplitName};
use kiln::train::{
    DeviceChoice, Outcome, ResumeRequest, TrainConfig, TrainEvent, TrainRequest, resume, start,
};

fn request(data: &str, runs_dir: &Path, epochs: usize) -> TrainRequest {
    TrainRequest {
        data: DataSpec::new(sample(data)),
        model: ModelConfig::Mlp(MlpConfig::default()),
        train: TrainConfig {
            epochs,
            batch_size: 16,
            learning_rate: 0.01,
            ..TrainConfig::default()
        },
        device: DeviceChoice::Cpu,
        name: None,
        runs_dir: runs_dir.to_path_buf(),
    }
}

fn resume_request(
    runs_dir: &Path,
    run: impl Into<String>,
    extra_epochs: Option<usize>,
) -> ResumeRequest {
    ResumeRequest {
        runs_dir: runs_dir.to_path_buf(),
        run: run.into(),
        extra_epochs,
        device: None,
        learning_rate: None,
    }
}

fn finished(events: &[TrainEvent]) -> (Outcome, String) {
    events
        .iter()
        .find_map(|event| match event {
            TrainEvent::Finished {
                outcome, message, ..
            } => Some((*outcome, message.clone())),
            _ => None,
        })
        .expect("a Finished event")
}

fn epochs(events: &[TrainEvent]) -> Vec<kiln::train::EpochMetrics> {
    events
        .iter()
        .filter_map(|event| match event {
            TrainEvent::Epoch(metrics) => Some(metrics.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn iris_reaches_ninety_percent_and_exports_a_model_that_predicts_the_same() {
    let store_dir = tempfile::tempdir().unwrap();
    let handle = start(request("iris.csv", store_dir.path(), 60), None).expect("starts");
    let run_id = handle.run_id.clone();
    let events = handle.wait();
    let (outcome, message) = finished(&events);
    assert_eq!(outcome, Outcome::Completed, "{message}");
    let metrics = epochs(&events);
    assert_eq!(metrics.len(), 60);
    let best_accuracy = metrics
        .iter()
        .filter_map(|m| m.valid_accuracy)
        .fold(0.0, f64::max);
    assert!(
        best_accuracy >= 0.9,
        "best validation accuracy {best_accuracy}"
    );

    let store = RunStore::open(store_dir.path()).unwrap();
    let dir = store.find(&run_id).unwrap();
    let record = dir.read_record().unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.epochs_completed, 60);
    assert_eq!(record.device.backend, "cpu");
    let index = dir.read_index().unwrap();
    let best = index.best().expect("a best checkpoint");
    // The confusion matrix covers every validation row and agrees with the accuracy.
    let confusion = best
        .confusion
        .as_ref()
        .expect("classification checkpoints keep a confusion matrix");
    let total: u64 = confusion.iter().flatten().sum();
    let diagonal: u64 = (0..3).map(|c| confusion[c][c]).sum();
    assert_eq!(total, 30);
    assert!((diagonal as f64 / 30.0 - best.metrics["valid_accuracy"]).abs() < 1e-9);
    let report = best.class_report().unwrap();
    assert_eq!(report.iter().map(|m| m.support).sum::<u64>(), 30);
    assert!(index.checkpoints.len() <= 4, "best + last 3 kept");
    let log = dir.read_metrics().unwrap();
    assert_eq!(log.series(SplitName::Valid, "accuracy").count(), 60);

    // Export the best checkpoint, load it back and compare with the card's golden outputs
    // (computed from the checkpoint before export).
    let out = tempfile::tempdir().unwrap();
    let paths = export_checkpoint(
        store_dir.path(),
        &format!("{run_id}@best"),
        out.path(),
        &ExportOptions::default(),
    )
    .expect("exports");
    assert!(paths.burnpack.is_file() && paths.safetensors.is_file() && paths.card.is_file());
    let model = LoadedModel::open(out.path()).expect("loads");
    // Five typical validation rows and the three extreme ones with the largest logits.
    assert_eq!(model.card.golden.inputs.len(), 8);
    let flat: Vec<f32> = model.card.golden.inputs.iter().flatten().copied().collect();
    let predictions = model.predict_encoded(&flat).unwrap();
    for (prediction, golden) in predictions.iter().zip(&model.card.golden.outputs) {
        for (a, b) in prediction.probabilities.iter().zip(golden) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
    let report = verify_bundle(out.path()).unwrap();
    assert!(report.ok(), "{report:?}");

    // Predicting on the CSV itself works and is mostly right.
    let report = predict_csv(&model, &sample("iris.csv")).unwrap();
    assert_eq!(report.predictions.len(), 150);
    let table = kiln::data::load_csv(&sample("iris.csv")).unwrap();
    let correct = report
        .predictions
        .iter()
        .zip(table.rows())
        .filter(|(p, row)| p.class.as_deref() == Some(row.get(4).as_ref()))
        .count();
    assert!(correct >= 135, "{correct}/150 correct");

    // Exporting again to the same place is refused without force.
    let again = export_checkpoint(
        store_dir.path(),
        &run_id,
        out.path(),
        &ExportOptions::default(),
    );
    assert!(again.unwrap_err().to_string().contains("exists already"));
}

#[test]
fn diabetes_validation_loss_falls() {
    let store_dir = tempfile::tempdir().unwrap();
    let handle = start(request("diabetes.csv", store_dir.path(), 30), None).unwrap();
    let events = handle.wait();
    assert_eq!(finished(&events).0, Outcome::Completed);
    let metrics = epochs(&events);
    let first = metrics.first().unwrap().valid_loss;
    let best = metrics
        .iter()
        .map(|m| m.valid_loss)
        .fold(f64::INFINITY, f64::min);
    assert!(best < 0.85 * first, "valid loss {first} → best {best}");
    assert!(
        metrics
            .iter()
            .all(|m| m.valid_rmse.is_some() && m.valid_accuracy.is_none())
    );
}

#[test]
fn stop_mid_epoch_then_resume_gives_one_continuous_curve() {
    let store_dir = tempfile::tempdir().unwrap();
    let mut req = request("diabetes.csv", store_dir.path(), 12);
    req.train.batch_size = 4;
    let handle = start(req, None).unwrap();
    // Stop once epoch 4 is under way (events lag the worker a little, so it may be further on).
    let mut seen = Vec::new();
    for event in handle.events().iter() {
        let in_epoch_four =
            matches!(event, TrainEvent::Batch { epoch, batch, .. } if epoch >= 4 && batch > 1);
        seen.push(event);
        if in_epoch_four {
            handle.stop();
            break;
        }
    }
    let run_id = handle.run_id.clone();
    seen.extend(handle.wait());
    let (outcome, _) = finished(&seen);
    assert_eq!(outcome, Outcome::Stopped);
    let done = epochs(&seen).last().map_or(0, |m| m.epoch);
    assert!(
        (3..12).contains(&done),
        "stopped mid-run, after epoch {done}"
    );
    let store = RunStore::open(store_dir.path()).unwrap();
    let dir = store.find(&run_id).unwrap();
    let record = dir.read_record().unwrap();
    assert_eq!(record.status, RunStatus::Stopped);
    assert_eq!(record.epochs_completed, done);

    let resumed =
        resume(resume_request(store_dir.path(), run_id.clone(), None), None).expect("resumes");
    let events = resumed.wait();
    assert_eq!(finished(&events).0, Outcome::Completed);
    let resumed_epochs: Vec<usize> = epochs(&events).iter().map(|m| m.epoch).collect();
    assert_eq!(resumed_epochs, (done + 1..=12).collect::<Vec<_>>());

    let log = dir.read_metrics().unwrap();
    let curve: Vec<(usize, u64)> = log
        .series(SplitName::Valid, "loss")
        .map(|p| (p.epoch, p.step))
        .collect();
    assert_eq!(
        curve.iter().map(|c| c.0).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    assert!(
        curve.windows(2).all(|w| w[0].1 < w[1].1),
        "steps increase: {curve:?}"
    );
    let wall: Vec<f64> = log
        .series(SplitName::Valid, "loss")
        .map(|p| p.wall_secs)
        .collect();
    assert!(
        wall.windows(2).all(|w| w[0] <= w[1]),
        "wall time continues: {wall:?}"
    );
    let record = dir.read_record().unwrap();
    assert_eq!(record.epochs_completed, 12);
    assert_eq!(record.status, RunStatus::Completed);

    // A finished run can be extended, and its curve continues.
    let extended = resume(
        resume_request(store_dir.path(), run_id.clone(), Some(3)),
        None,
    )
    .unwrap();
    let events = extended.wait();
    assert_eq!(
        epochs(&events).iter().map(|m| m.epoch).collect::<Vec<_>>(),
        vec![13, 14, 15]
    );
    let log = dir.read_metrics().unwrap();
    assert_eq!(log.series(SplitName::Valid, "loss").count(), 15);

    // Without more epochs, a finished run is not resumable and says why.
    let error = resume(resume_request(store_dir.path(), run_id, None), None)
        .err()
        .expect("refused");
    assert!(error.to_string().contains("more epochs"), "{error}");
}

#[test]
fn a_huge_learning_rate_diverges_and_is_reported_not_panicked() {
    let store_dir = tempfile::tempdir().unwrap();
    let mut req = request("diabetes.csv", store_dir.path(), 20);
    req.train.optimizer = kiln::train::OptimizerConfig::Sgd { momentum: 0.9 };
    req.train.learning_rate = 1.0e3;
    req.model = ModelConfig::Mlp(MlpConfig {
        hidden: vec![256, 256],
        ..MlpConfig::default()
    });
    let handle = start(req, None).unwrap();
    let run_id = handle.run_id.clone();
    let events = handle.wait();
    let (outcome, message) = finished(&events);
    assert_eq!(outcome, Outcome::Diverged, "{message}");
    assert!(
        message.contains("NaN") || message.contains("infinite"),
        "{message}"
    );
    let dir = RunStore::open(store_dir.path())
        .unwrap()
        .find(&run_id)
        .unwrap();
    assert_eq!(dir.read_record().unwrap().status, RunStatus::Diverged);
    // The non-finite point is kept in the log (the UI marks it), not dropped.
    let log = dir.read_metrics().unwrap();
    assert!(
        log.series(SplitName::Train, "loss")
            .any(|p| !p.value.is_finite())
    );
}

#[test]
fn early_stopping_ends_the_run_with_patience() {
    let store_dir = tempfile::tempdir().unwrap();
    let mut req = request("iris.csv", store_dir.path(), 400);
    req.train.early_stopping_patience = Some(5);
    req.train.learning_rate = 0.05;
    let events = start(req, None).unwrap().wait();
    let (outcome, message) = finished(&events);
    assert_eq!(outcome, Outcome::EarlyStopped, "{message}");
    assert!(epochs(&events).len() < 400);
}

#[test]
fn bad_requests_fail_before_training() {
    let store_dir = tempfile::tempdir().unwrap();
    let mut req = request("iris.csv", store_dir.path(), 5);
    req.train.learning_rate = -1.0;
    let error = start(req, None).err().expect("refused");
    assert!(error.to_string().contains("learning rate"), "{error}");
    let mut req = request("iris.csv", store_dir.path(), 5);
    req.model = ModelConfig::Mlp(MlpConfig {
        hidden: vec![0],
        ..MlpConfig::default()
    });
    let error = start(req, None).err().expect("refused");
    assert!(error.to_string().contains("width 0"), "{error}");
    let mut req = request("iris.csv", store_dir.path(), 5);
    req.data = DataSpec::new("/no/such/file.csv");
    assert!(
        start(req, None)
            .err()
            .expect("refused")
            .to_string()
            .contains("/no/such/file.csv")
    );
}

#[test]
fn same_seed_gives_the_same_run() {
    let store_dir = tempfile::tempdir().unwrap();
    let a = epochs(
        &start(request("iris.csv", store_dir.path(), 3), None)
            .unwrap()
            .wait(),
    );
    let b = epochs(
        &start(request("iris.csv", store_dir.path(), 3), None)
            .unwrap()
            .wait(),
    );
    let losses =
        |m: &[kiln::train::EpochMetrics]| m.iter().map(|m| m.valid_loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
    // Runs side by side in one process (a sweep's trials) share the device's generator: each
    // run's initial weights are still drawn from its own seed alone.
    let side_by_side: Vec<_> = (0..6)
        .map(|_| start(request("iris.csv", store_dir.path(), 3), None).unwrap())
        .collect();
    for handle in side_by_side {
        assert_eq!(losses(&epochs(&handle.wait())), losses(&a));
    }
}

#[test]
fn a_running_run_whose_process_died_is_interrupted_and_resumable() {
    let store_dir = tempfile::tempdir().unwrap();
    let handle = start(request("iris.csv", store_dir.path(), 6), None).unwrap();
    let run_id = handle.run_id.clone();
    handle.wait();
    let store = RunStore::open(store_dir.path()).unwrap();
    let dir = store.find(&run_id).unwrap();
    // Simulate a crash after epoch 6 of 10: the file still says running, the process is gone.
    let mut record = dir.read_record().unwrap();
    record.status = RunStatus::Running;
    record.train.epochs = 10;
    record.pid = Some(u32::MAX - 7);
    dir.write_record(&record).unwrap();
    let listing = store.list().unwrap();
    assert!(matches!(
        &listing[0],
        kiln::runs::RunListing::Run {
            status: RunStatus::Interrupted,
            ..
        }
    ));
    let events = resume(resume_request(store_dir.path(), run_id.clone(), None), None)
        .expect("an interrupted run resumes")
        .wait();
    assert_eq!(
        epochs(&events).iter().map(|m| m.epoch).collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
    assert_eq!(dir.read_record().unwrap().status, RunStatus::Completed);
}

#[test]
fn a_changed_dataset_refuses_to_resume() {
    let store_dir = tempfile::tempdir().unwrap();
    let data = store_dir.path().join("iris-copy.csv");
    std::fs::copy(sample("iris.csv"), &data).unwrap();
    let mut req = request("iris.csv", store_dir.path(), 3);
    req.data = DataSpec::new(&data);
    let handle = start(req, None).unwrap();
    let run_id = handle.run_id.clone();
    handle.wait();
    let mut text = std::fs::read_to_string(&data).unwrap();
    text.push_str("5.0,3.0,1.5,0.2,setosa\n");
    std::fs::write(&data, text).unwrap();
    let error = resume(resume_request(store_dir.path(), run_id, Some(2)), None)
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .contains("changed since the run was trained"),
        "{error}"
    );
}

#[test]
fn a_checkpoint_that_cannot_be_written_fails_the_run_and_keeps_the_record_true() {
    let store_dir = tempfile::tempdir().unwrap();
    let handle = start(request("iris.csv", store_dir.path(), 500), None).unwrap();
    let mut run_id = None;
    // After the first checkpoint, the checkpoints folder becomes a plain file: every later
    // checkpoint fails to write (as on a full disk), even for root.
    for event in handle.events().iter() {
        match event {
            TrainEvent::Started { run_id: id, .. } => run_id = Some(id),
            TrainEvent::Checkpoint { .. } => break,
            _ => {}
        }
    }
    let run_id = run_id.expect("a Started event");
    let dir = RunStore::open(store_dir.path())
        .unwrap()
        .find(&run_id)
        .unwrap();
    let checkpoints = dir.checkpoints_dir();
    let moved = store_dir.path().join("moved-checkpoints");
    std::fs::rename(&checkpoints, &moved).unwrap();
    std::fs::write(&checkpoints, b"not a folder").unwrap();

    let events = handle.wait();
    let (outcome, message) = finished(&events);
    assert_eq!(outcome, Outcome::Failed, "{message}");
    assert!(message.contains("saving checkpoint"), "{message}");
    // The record names only checkpoints that were written, and the index agrees with it.
    std::fs::remove_file(&checkpoints).unwrap();
    std::fs::rename(&moved, &checkpoints).unwrap();
    let record = dir.read_record().unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let index = dir.read_index().unwrap();
    let last = index.last().expect("the checkpoints written before");
    assert_eq!(record.epochs_completed, last.epoch);
    assert!(checkpoints.join(&last.model_file).is_file());
    assert!(epochs(&events).len() < 500);
}

#[test]
fn short_epochs_are_written_in_groups_and_each_checkpoint_is_announced_once_on_disk() {
    let store_dir = tempfile::tempdir().unwrap();
    let mut train = request("iris.csv", store_dir.path(), 300);
    train.train.keep_last_checkpoints = 2;
    let handle = start(train, None).unwrap();
    let mut run_dir = None;
    let mut events = Vec::new();
    let mut announced = Vec::new();
    for event in handle.events().iter() {
        match &event {
            TrainEvent::Started { run_id, .. } => {
                run_dir = Some(
                    RunStore::open(store_dir.path())
                        .unwrap()
                        .find(run_id)
                        .unwrap(),
                );
            }
            // Announced only once the index on disk names it (or a later checkpoint).
            TrainEvent::Checkpoint { epoch, .. } => {
                let dir = run_dir.as_ref().expect("Started comes first");
                let on_disk = dir
                    .read_index()
                    .unwrap()
                    .last()
                    .map_or(0, |last| last.epoch);
                assert!(
                    on_disk >= *epoch,
                    "epoch {epoch} announced, index at {on_disk}"
                );
                announced.push(*epoch);
            }
            _ => {}
        }
        let finished = matches!(event, TrainEvent::Finished { .. });
        events.push(event);
        if finished {
            break;
        }
    }
    let (outcome, message) = finished(&events);
    assert_eq!(outcome, Outcome::Completed, "{message}");
    assert_eq!(announced, (1..=300).collect::<Vec<_>>());
    // Grouped: writing each epoch as it ends keeps the writer within two epochs of the loop
    // (its queue holds one), so some checkpoint announced after three more epochs ended shows
    // epochs waiting to be written together.
    let position = |wanted: &dyn Fn(&TrainEvent) -> bool| events.iter().position(wanted);
    let grouped = (1..=297).any(|epoch| {
        let announced =
            position(&|e| matches!(e, TrainEvent::Checkpoint { epoch: at, .. } if *at == epoch));
        let later_epoch = position(&|e| matches!(e, TrainEvent::Epoch(m) if m.epoch == epoch + 3));
        announced > later_epoch
    });
    assert!(grouped, "every checkpoint was written within three epochs");
    // The folder is what writing every epoch would have left: the last two and the best, their
    // files and nothing else, and every epoch's metrics.
    let dir = run_dir.unwrap();
    let index = dir.read_index().unwrap();
    let last: Vec<usize> = index.checkpoints.iter().map(|entry| entry.epoch).collect();
    assert!(last.ends_with(&[299, 300]), "{last:?}");
    assert!(index.best().is_some());
    let mut expected: Vec<String> = index
        .checkpoints
        .iter()
        .flat_map(|entry| [entry.model_file.clone(), entry.optimizer_file.clone()])
        .chain(["index.json".to_string()])
        .collect();
    expected.sort();
    let mut files: Vec<String> = std::fs::read_dir(dir.checkpoints_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, expected);
    let logged = dir.read_metrics().unwrap();
    assert_eq!(logged.series(SplitName::Valid, "loss").count(), 300);
    assert_eq!(dir.read_record().unwrap().epochs_completed, 300);
}
