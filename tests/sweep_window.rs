//! Sweeps from the window, through real clicks: a grid and a TPE sweep on iris from the form,
//! their trials as runs in the store and in the plot, and "Promote best" into the export flow.

mod common;

use common::app::{app_on, step_until};
use common::sample;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use kiln::runs::RunStore;
use kiln::sweep::SweepState;
use kiln::ui::KilnApp;
use kiln::ui::dialogs::{DialogKind, ScriptedDialogs};

fn sweep_done(app: &KilnApp) -> bool {
    !app.sweep_running()
        && app
            .shown_sweep()
            .is_some_and(|sweep| sweep.state != SweepState::Running)
}

fn start(harness: &mut Harness<'static, KilnApp>) {
    harness.get_by_label("▶ Start sweep").click();
    harness.run_steps(2);
    step_until(harness, "the sweep", sweep_done);
    harness.run_steps(2);
}

#[test]
fn grid_and_tpe_sweeps_from_the_form_then_promote_the_winner() {
    let store = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs::default();
    let export_to = store.path().join("exports").join("winner.bpk");
    dialogs.answer(DialogKind::SaveBundle, &export_to);
    let mut harness = app_on(store.path(), dialogs, sample("iris.csv"), [1400.0, 900.0]);
    step_until(&mut harness, "the dataset", KilnApp::dataset_loaded);
    harness.state_mut().settings_mut().train.epochs = 5;
    harness.get_by_label("Sweep").click_accesskit();
    harness.run_steps(2);

    // A grid over the learning rate (ticked by default): two points.
    harness.get_by_label("grid").click();
    harness.run_steps(2);
    harness.get_by_label("Grid steps").set_value_accesskit(2.0);
    harness.run_steps(2);
    start(&mut harness);
    let grid = harness.state().shown_sweep().cloned().unwrap();
    assert_eq!(grid.state, SweepState::Completed, "{:?}", grid.message);
    assert_eq!(grid.summaries().len(), 2);
    let runs = RunStore::open(store.path()).unwrap().list().unwrap();
    assert_eq!(runs.len(), 2, "each trial is a run in the store");
    for trial in &grid.trials {
        let id = trial.run_id.clone().unwrap();
        assert!(
            harness.state().selected_runs().contains(&id),
            "the trials' curves are in the plot"
        );
    }

    // A TPE sweep with four trials, two at a time.
    harness.get_by_label("TPE").click();
    harness.run_steps(2);
    harness.get_by_label("Trials").set_value_accesskit(4.0);
    harness.get_by_label("at once").set_value_accesskit(2.0);
    harness.run_steps(2);
    start(&mut harness);
    let tpe = harness.state().shown_sweep().cloned().unwrap();
    assert_ne!(tpe.id, grid.id);
    assert_eq!(tpe.state, SweepState::Completed, "{:?}", tpe.message);
    assert_eq!(tpe.summaries().len(), 4);
    assert_eq!(
        RunStore::open(store.path()).unwrap().list().unwrap().len(),
        6
    );
    // The trial table lists them, best first.
    assert!(harness.query_by_label_contains("4 of 4 trials").is_some());

    harness.get_by_label("Promote best").click();
    harness.run_steps(3);
    let (run, epoch, _) = kiln::export::winner(store.path(), &tpe.id).unwrap();
    assert_eq!(
        harness.state().selected_checkpoint(),
        Some((run.clone(), epoch))
    );
    assert!(
        harness
            .query_by_label_contains("The winner of sweep")
            .is_some()
    );
    harness.get_by_label("Export…").click_accesskit();
    step_until(&mut harness, "the export", |app| {
        !app.is_busy() && app.messages().iter().any(|m| m.starts_with("Exported"))
    });
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(export_to.with_extension("card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["sweep"]["sweep_id"], tpe.id.as_str());
    assert_eq!(card["sweep"]["rank"], 1);
    assert_eq!(card["source_run_id"], run.as_str());
}
