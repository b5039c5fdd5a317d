//! What differs between the ticked runs, any number of them: the settings that vary among them
//! side by side (a column per run), and the data each used (fingerprints), flagged when they
//! differ.

use crate::analysis::varying_keys;
use crate::runs::RunSummary;
use crate::ui::app::KilnApp;

pub fn compare_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let runs: Vec<&RunSummary> = app
        .settings
        .selected_runs
        .iter()
        .filter_map(|id| app.cache.summary(id))
        .collect();
    if runs.len() < 2 {
        ui.label(format!(
            "Tick two or more runs in the Runs tab to see what differs between them ({} ticked).",
            runs.len()
        ));
        return;
    }
    let fingerprints: std::collections::BTreeSet<&str> =
        runs.iter().map(|run| run.fingerprint.as_str()).collect();
    if fingerprints.len() == 1 {
        ui.label(format!(
            "Same dataset for all {} runs ({}, fingerprint {}).",
            runs.len(),
            runs[0].dataset,
            &runs[0].fingerprint[..runs[0].fingerprint.len().min(12)]
        ));
    } else {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "Different data: {} datasets among these runs (see the dataset rows).",
                fingerprints.len()
            ),
        );
    }
    let keys = varying_keys(runs.iter().copied());
    if keys.is_empty() && fingerprints.len() == 1 {
        ui.label("The runs have the same configuration (they differ in nothing but their time).");
        return;
    }
    egui::Grid::new("compare_grid")
        .striped(true)
        .num_columns(runs.len() + 1)
        .show(ui, |ui| {
            ui.strong("Field");
            for run in &runs {
                ui.strong(app.identity_name(&run.id));
            }
            ui.end_row();
            if fingerprints.len() > 1 {
                ui.monospace("dataset");
                for run in &runs {
                    ui.label(format!(
                        "{} [{}]",
                        run.dataset,
                        &run.fingerprint[..run.fingerprint.len().min(12)]
                    ));
                }
                ui.end_row();
            }
            for key in &keys {
                ui.monospace(key);
                for run in &runs {
                    ui.label(
                        run.config
                            .get(key)
                            .map_or("—".to_string(), |v| v.to_string()),
                    );
                }
                ui.end_row();
            }
            for metric in ["valid_loss", "valid_accuracy", "valid_rmse"] {
                if runs.iter().all(|run| !run.metrics.contains_key(metric)) {
                    continue;
                }
                ui.monospace(format!("{metric} (best)"));
                for run in &runs {
                    ui.label(run.metrics.get(metric).map_or("—".to_string(), |m| {
                        format!("{:.4} @{}", m.best, m.best_epoch)
                    }));
                }
                ui.end_row();
            }
        });
}
