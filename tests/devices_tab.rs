//! The window's Devices tab on its own: it finds the devices off the UI thread, shows the
//! verdict, runs the bench with a progress bar, stops it when asked and shows the results.

use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use kiln::train::doctor::{BenchLimits, named};
use kiln::ui::{BenchPlan, DevicesPanel};

fn tab(workload: &str, limits: BenchLimits) -> Harness<'static, DevicesPanel> {
    let plan = BenchPlan {
        workloads: named(&[workload.to_string()]).unwrap(),
        limits,
        only: Some("cpu"),
        write_record: false,
    };
    let mut fonts_installed = false;
    Harness::builder().with_size([900.0, 700.0]).build_ui_state(
        move |ui, panel: &mut DevicesPanel| {
            // As the window does: proportional text falls back to the bundled monospace font
            // for → and — (installed before the first frame that draws them).
            if !fonts_installed {
                let mut fonts = egui::FontDefinitions::default();
                if let Some(family) = fonts.families.get_mut(&egui::FontFamily::Proportional) {
                    family.push("Hack".to_owned());
                }
                ui.ctx().set_fonts(fonts);
                ui.ctx().request_repaint();
                fonts_installed = true;
                return;
            }
            panel.ui(ui)
        },
        DevicesPanel::new(plan),
    )
}

fn step_until(
    harness: &mut Harness<'static, DevicesPanel>,
    what: &str,
    done: impl Fn(&Harness<'static, DevicesPanel>) -> bool,
) {
    let start = Instant::now();
    while !done(harness) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.step();
}

#[test]
fn the_devices_tab_shows_the_verdict_and_benches_the_cpu() {
    let mut harness = tab(
        "launch",
        BenchLimits {
            steps: 10,
            budget: Duration::from_secs(5),
        },
    );
    harness.step();
    assert!(
        harness
            .query_by_label_contains("Looking at the GPUs")
            .is_some(),
        "detection runs in the background"
    );
    step_until(&mut harness, "the report", |h| h.state().report().is_some());
    let summary = harness.state().report().unwrap().verdict.summary.clone();
    assert!(harness.query_by_label(&summary).is_some(), "{summary}");
    assert!(
        harness
            .query_by_label_contains("auto trains on: ")
            .is_some()
    );

    harness.get_by_label("Run the bench").click();
    step_until(&mut harness, "the bench", |h| {
        h.state()
            .report()
            .is_some_and(|report| report.bench.is_some())
    });
    let bench = harness.state().report().unwrap().bench.clone().unwrap();
    let cpu = &bench.devices[0];
    assert_eq!(cpu.backend, "cpu");
    let result = cpu.results[0].result.as_ref().expect("the CPU trains");
    assert_eq!(result.steps, 10);
    assert!(harness.query_by_label("samples/s").is_some());
    assert!(
        harness.query_by_label(&result.description).is_some(),
        "the results table names the model"
    );
    assert!(
        harness.query_by_label("Run the bench").is_some(),
        "ready again"
    );
}

#[test]
fn the_bench_shows_its_progress_and_stops_when_asked() {
    let mut harness = tab(
        "mlp",
        BenchLimits {
            steps: 1_000_000,
            budget: Duration::from_secs(100),
        },
    );
    step_until(&mut harness, "the report", |h| h.state().report().is_some());
    harness.get_by_label("Run the bench").click();
    step_until(&mut harness, "the progress bar", |h| {
        h.state()
            .bench_progress()
            .is_some_and(|at| at.workload.starts_with("mlp 64→256→256→10"))
            && h.query_by_role(Role::ProgressIndicator).is_some()
    });
    harness.get_by_label("Stop the bench").click();
    step_until(&mut harness, "the stopped bench", |h| {
        h.state()
            .report()
            .is_some_and(|report| report.bench.is_some())
    });
    let bench = harness.state().report().unwrap().bench.clone().unwrap();
    assert_eq!(
        bench.devices[0].results[0].result,
        Err(kiln::train::doctor::STOPPED.to_string())
    );
    assert!(harness.query_by_role(Role::ProgressIndicator).is_none());
}
