//! Versions of a model in the window: "Train on new data…" from a checkpoint or an opened
//! model (the form then starts from it), the chain of versions a run descends from, and the
//! comparison of a fine-tuned checkpoint with its parent before it is exported.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::export::{Comparison, compare_with_parent};
use crate::runs::Ancestor;
use crate::ui::app::KilnApp;
use crate::ui::promise::Task;

/// The model the next run starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmFrom {
    /// `RUN@EPOCH` in the store, or a bundle's card path.
    pub source: String,
    /// How the form names it.
    pub label: String,
    /// A run's checkpoint has optimizer state; a bundle has none.
    pub has_optimizer: bool,
    pub refit_stats: bool,
    pub keep_optimizer: bool,
}

type ComparisonResult = ((String, usize), Result<Comparison, String>);

#[derive(Default)]
pub struct VersionsState {
    comparing: Task<ComparisonResult>,
    compared: Option<ComparisonResult>,
}

impl VersionsState {
    pub fn is_pending(&self) -> bool {
        self.comparing.is_pending()
    }

    fn shown_for(&self, checkpoint: &(String, usize)) -> Option<&Result<Comparison, String>> {
        self.compared
            .as_ref()
            .filter(|(key, _)| key == checkpoint)
            .map(|(_, result)| result)
    }

    /// Compares a warm-started checkpoint with its parent in the background (once).
    fn request(&mut self, ctx: &egui::Context, runs_dir: &Path, checkpoint: (String, usize)) {
        if self.comparing.is_pending() || self.shown_for(&checkpoint).is_some() {
            return;
        }
        let runs_dir = runs_dir.to_path_buf();
        self.comparing.start(ctx, move || {
            let result = compare_with_parent(&runs_dir, &checkpoint.0, checkpoint.1)
                .map_err(|error| error.to_string());
            (checkpoint, result)
        });
    }

    pub fn poll(&mut self) -> Option<String> {
        match self.comparing.take()? {
            Ok(result) => {
                self.compared = Some(result);
                None
            }
            Err(crashed) => Some(format!("Comparing with the parent failed: {crashed}")),
        }
    }
}

/// The model section's banner while the form starts from an earlier model.
pub fn warm_banner_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let Some(warm) = &mut app.settings.warm_from else {
        return;
    };
    let mut clear = false;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.label(
            egui::RichText::new(format!("Starts from {}", warm.label)).strong(),
        );
        ui.weak("Its architecture and weights; the data must fit its inputs (the same columns and classes, or image size).");
        ui.checkbox(&mut warm.refit_stats, "refit the input statistics on the new data")
            .on_hover_text("Off: keep the parent's standardisation, so its weights keep their meaning");
        ui.add_enabled(
            warm.has_optimizer,
            egui::Checkbox::new(&mut warm.keep_optimizer, "keep its optimizer state"),
        )
        .on_disabled_hover_text("A bundle has only weights; the optimizer starts fresh");
        clear = ui.button("Start from scratch instead").clicked();
    });
    if clear {
        app.settings.warm_from = None;
    }
}

/// The chain of versions a run descends from, and (for a warm-started checkpoint) how it
/// compares with its parent on its own validation data.
pub fn lineage_ui(app: &mut KilnApp, ui: &mut egui::Ui, run: &str, epoch: usize) {
    let Some(record) = app.cache.record(run) else {
        return;
    };
    if let Some(lineage) = &record.lineage {
        ui.horizontal_wrapped(|ui| {
            ui.strong("Versions:");
            for (number, ancestor) in lineage.chain.iter().enumerate() {
                ancestor_chip(ui, number + 1, ancestor);
                ui.label("→");
            }
            ui.label(format!(
                "v{} {} (this run, {} [{}])",
                lineage.chain.len() + 1,
                record.name,
                record.fingerprint.file_name,
                record.fingerprint.short_id()
            ));
        });
        let checkpoint = (run.to_string(), epoch);
        let runs_dir = app.cache.runs_dir.clone();
        app.versions
            .request(ui.ctx(), &runs_dir, checkpoint.clone());
        match app.versions.shown_for(&checkpoint) {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Comparing with its parent on this run's validation data…");
                });
            }
            Some(Ok(comparison)) => {
                let verdict = if comparison.new_is_better() {
                    ("better than its parent", ui.visuals().text_color())
                } else {
                    ("not better than its parent", ui.visuals().warn_fg_color)
                };
                ui.colored_label(
                    verdict.1,
                    format!(
                        "This checkpoint is {}: {} against the parent's {} on the {} validation rows of the new data.",
                        verdict.0, comparison.new, comparison.old, comparison.rows
                    ),
                );
                if let Some((old, new)) = &comparison.test {
                    ui.weak(format!("Test split: {new} against the parent's {old}."));
                }
            }
            Some(Err(error)) => {
                ui.weak(format!("No comparison with the parent: {error}"));
            }
        }
    }
    if ui
        .button("Train on new data…")
        .on_hover_text("A new run that starts from this checkpoint's weights; choose the new data in the Data section")
        .clicked()
    {
        app.settings.warm_from = Some(WarmFrom {
            source: format!("{run}@{epoch}"),
            label: format!("{} at epoch {epoch}", app.identity_name(run)),
            has_optimizer: true,
            refit_stats: false,
            keep_optimizer: false,
        });
        app.info("The form now starts from this checkpoint: choose the new data, then Train");
    }
}

fn ancestor_chip(ui: &mut egui::Ui, number: usize, ancestor: &Ancestor) {
    let metric = ancestor
        .metrics
        .get("valid_accuracy")
        .map(|v| format!("{:.1}%", v * 100.0))
        .or_else(|| {
            ancestor
                .metrics
                .get("valid_loss")
                .map(|v| format!("loss {v:.3}"))
        })
        .unwrap_or_default();
    ui.label(format!(
        "v{number} {}@{} · {} · {}",
        ancestor.run_name,
        ancestor.epoch,
        ancestor.created.get(..10).unwrap_or(&ancestor.created),
        metric
    ))
    .on_hover_text(format!(
        "weights {}\ndata {} [{}]{}",
        ancestor.weights_sha256,
        ancestor.dataset_file,
        ancestor.dataset,
        ancestor
            .bundle
            .as_ref()
            .map_or(String::new(), |bundle| format!(
                "\nfrom the bundle {bundle}"
            ))
    ));
}
