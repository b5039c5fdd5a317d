//! The run store: listing, broken runs, torn logs, interrupted runs, checkpoint policy.

use std::collections::BTreeMap;

use kiln::runs::{
    CheckpointEntry, CheckpointIndex, CheckpointSelector, MetricsLog, RunListing, RunStore,
};

fn entry(epoch: usize, valid_loss: f64) -> CheckpointEntry {
    CheckpointEntry {
        epoch,
        step: epoch as u64 * 10,
        model_file: format!("model-{epoch:04}.bpk"),
        optimizer_file: format!("optim-{epoch:04}.bpk"),
        metrics: BTreeMap::from([("valid_loss".to_string(), valid_loss)]),
        confusion: None,
        best: false,
        wall_secs: epoch as f64,
    }
}

#[test]
fn keeps_the_best_and_the_last_n_checkpoints() {
    let mut index = CheckpointIndex::default();
    let losses = [1.0, 0.5, 0.2, 0.4, 0.45, 0.6, 0.7];
    let mut dropped = Vec::new();
    for (i, loss) in losses.iter().enumerate() {
        dropped.extend(index.insert(entry(i + 1, *loss), 2));
    }
    let kept: Vec<usize> = index.checkpoints.iter().map(|e| e.epoch).collect();
    assert_eq!(kept, vec![3, 6, 7]);
    assert_eq!(index.best().map(|e| e.epoch), Some(3));
    assert_eq!(
        dropped.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        vec![1, 2, 4, 5]
    );
    assert_eq!(
        CheckpointSelector::Best.pick(&index).map(|e| e.epoch),
        Some(3)
    );
    assert_eq!(
        CheckpointSelector::Last.pick(&index).map(|e| e.epoch),
        Some(7)
    );
    assert_eq!(
        CheckpointSelector::Epoch(6).pick(&index).map(|e| e.epoch),
        Some(6)
    );
    assert!(CheckpointSelector::Epoch(4).pick(&index).is_none());
}

#[test]
fn class_report_from_a_confusion_matrix() {
    // rows: actual, columns: predicted
    let report = kiln::runs::class_report(&[vec![8, 2, 0], vec![1, 9, 0], vec![0, 0, 0]]);
    assert_eq!(report[0].precision, Some(8.0 / 9.0));
    assert_eq!(report[0].recall, Some(0.8));
    assert_eq!(report[1].precision, Some(9.0 / 11.0));
    assert_eq!(report[1].support, 10);
    assert_eq!(report[2].precision, None, "never predicted");
    assert_eq!(report[2].recall, None, "no rows");
}

#[test]
fn a_nan_loss_is_never_the_best() {
    let mut index = CheckpointIndex::default();
    index.insert(entry(1, 0.9), 3);
    index.insert(entry(2, f64::NAN), 3);
    assert_eq!(index.best().map(|e| e.epoch), Some(1));
}

#[test]
fn selectors_parse() {
    assert_eq!(
        CheckpointSelector::parse("abc").unwrap(),
        ("abc".to_string(), CheckpointSelector::Best)
    );
    assert_eq!(
        CheckpointSelector::parse("abc@last").unwrap().1,
        CheckpointSelector::Last
    );
    assert_eq!(
        CheckpointSelector::parse("abc@12").unwrap().1,
        CheckpointSelector::Epoch(12)
    );
    assert!(
        CheckpointSelector::parse("abc@twelve")
            .unwrap_err()
            .contains("'twelve'")
    );
}

#[test]
fn a_torn_last_line_is_ignored_and_reported() {
    let text = concat!(
        r#"{"epoch":1,"step":5,"split":"train","metric":"loss","value":1.5,"wall_secs":0.1}"#,
        "\n",
        r#"{"epoch":1,"step":5,"split":"valid","metric":"loss","value":"NaN","wall_secs":0.1}"#,
        "\n",
        r#"{"epoch":2,"step":10,"split":"tr"#,
    );
    let log = MetricsLog::parse(text);
    assert_eq!(log.points.len(), 2);
    assert!(log.points[1].value.is_nan(), "NaN survives the round trip");
    assert_eq!(log.bad_lines, vec![3]);
}

#[test]
fn resume_markers_supersede_later_points() {
    let text = concat!(
        r#"{"epoch":1,"step":5,"split":"valid","metric":"loss","value":1.0,"wall_secs":1}"#,
        "\n",
        r#"{"epoch":2,"step":10,"split":"valid","metric":"loss","value":0.9,"wall_secs":2}"#,
        "\n",
        r#"{"epoch":3,"step":12,"split":"train","metric":"batch_loss","value":0.8,"wall_secs":3}"#,
        "\n",
        r#"{"resume_from_epoch":2}"#,
        "\n",
        r#"{"epoch":3,"step":15,"split":"valid","metric":"loss","value":0.7,"wall_secs":4}"#,
        "\n",
    );
    let log = MetricsLog::parse(text);
    let epochs: Vec<usize> = log.points.iter().map(|p| p.epoch).collect();
    assert_eq!(epochs, vec![1, 2, 3]);
    assert_eq!(log.points[2].value, 0.7);
}

#[test]
fn broken_runs_are_listed_not_fatal_and_dead_running_runs_are_interrupted() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path()).unwrap();
    let broken = store.create_run_dir("broken").unwrap();
    std::fs::write(broken.record_path(), b"{ not json").unwrap();
    let empty = store.create_run_dir("empty").unwrap();
    let listings = store.list().unwrap();
    assert_eq!(listings.len(), 2);
    assert!(
        listings
            .iter()
            .all(|l| matches!(l, RunListing::Broken { .. }))
    );
    assert!(matches!(&listings[0], RunListing::Broken { error, .. } if error.contains("run.json")));
    assert!(
        store
            .find("nothing-like-this")
            .unwrap_err()
            .to_string()
            .contains("no run matches")
    );
    assert_eq!(store.find(&empty.id).unwrap(), empty);
    store.delete(&broken).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn a_new_run_folder_appears_only_with_its_record() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path()).unwrap();
    // Whatever the filling finds, the store does not list the folder yet.
    let seen_while_filling = std::cell::Cell::new(usize::MAX);
    let failed = store.create_run_dir_complete("half", |staged| {
        seen_while_filling.set(store.list().unwrap().len());
        std::fs::write(staged.record_path(), b"{}").unwrap();
        Err(kiln::runs::StoreError::Corrupt {
            path: staged.path.clone(),
            message: "stopped halfway".into(),
        })
    });
    assert!(failed.is_err());
    assert_eq!(seen_while_filling.get(), 0);
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "a failed creation leaves nothing behind"
    );
    let made = store
        .create_run_dir_complete("whole", |staged| {
            std::fs::write(staged.record_path(), b"{ not json").map_err(|source| {
                kiln::runs::StoreError::Io {
                    path: staged.record_path(),
                    source,
                }
            })
        })
        .unwrap();
    assert!(made.path.join("checkpoints").is_dir());
    assert!(made.record_path().is_file());
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.find(&made.id).unwrap(), made);
}

#[test]
fn run_ids_are_unique_and_sortable() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path()).unwrap();
    let a = store.create_run_dir("Iris test!").unwrap();
    let b = store.create_run_dir("Iris test!").unwrap();
    assert_ne!(a.id, b.id);
    assert!(a.id.contains("-iris-test-"), "{}", a.id);
    assert!(a.path.join("checkpoints").is_dir());
}
