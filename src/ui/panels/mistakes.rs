//! The validation images a classification checkpoint gets wrong, as thumbnails: what the
//! confusion matrix counts, shown. Clicking a cell of the matrix narrows them to that cell.

use crate::export::{CheckpointEvaluation, evaluate_checkpoint};
use crate::ui::app::KilnApp;
use crate::ui::promise::Task;

/// Thumbnails shown at most; the most confident mistakes come first.
const SHOWN_MISTAKES: usize = 48;
const THUMBNAIL_PX: f32 = 52.0;

type EvaluationResult = (String, usize, Result<CheckpointEvaluation, String>);

#[derive(Default)]
pub struct MistakesState {
    task: Task<EvaluationResult>,
    shown: Option<Shown>,
    /// Only the mistakes of this `(actual, predicted)` cell, once one is clicked.
    pub cell: Option<(usize, usize)>,
}

struct Shown {
    run: String,
    epoch: usize,
    result: Result<CheckpointEvaluation, String>,
    /// Textures by dataset row, made when first drawn.
    textures: std::collections::HashMap<usize, egui::TextureHandle>,
}

impl MistakesState {
    pub fn is_pending(&self) -> bool {
        self.task.is_pending()
    }

    fn is_for(&self, run: &str, epoch: usize) -> bool {
        self.shown
            .as_ref()
            .is_some_and(|shown| shown.run == run && shown.epoch == epoch)
    }
}

impl KilnApp {
    pub(crate) fn evaluate_mistakes(&mut self, ctx: &egui::Context, run: String, epoch: usize) {
        let runs_dir = self.cache.runs_dir.clone();
        self.mistakes.task.start(ctx, move || {
            let result = evaluate_checkpoint(&runs_dir, &run, epoch).map_err(|e| e.to_string());
            (run, epoch, result)
        });
    }

    pub(crate) fn mistakes_shown_for(&self, run: &str, epoch: usize) -> bool {
        self.mistakes.is_for(run, epoch) || self.mistakes.task.is_pending()
    }

    /// Starts the evaluation unless it is running or done for this checkpoint.
    pub(crate) fn request_mistakes(&mut self, ctx: &egui::Context, run: &str, epoch: usize) {
        if !self.mistakes_shown_for(run, epoch) {
            self.evaluate_mistakes(ctx, run.to_string(), epoch);
        }
    }

    pub(crate) fn poll_mistakes(&mut self) {
        let Some(outcome) = self.mistakes.task.take() else {
            return;
        };
        match outcome {
            Err(crashed) => self.error(format!("Evaluating the checkpoint failed: {crashed}")),
            Ok((run, epoch, result)) => {
                self.mistakes.shown = Some(Shown {
                    run,
                    epoch,
                    result,
                    textures: Default::default(),
                })
            }
        }
    }
}

/// The mistakes of the selected checkpoint (image runs only).
pub fn mistakes_ui(
    app: &mut KilnApp,
    ui: &mut egui::Ui,
    run: &str,
    epoch: usize,
    classes: &[String],
) {
    let class = |index: usize| classes.get(index).map_or("?", String::as_str).to_string();
    if !app.mistakes.is_for(run, epoch) {
        if app.mistakes.task.is_pending() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Running the checkpoint over the validation images…");
            });
        } else if ui
            .button("Show the validation images it gets wrong")
            .on_hover_text("Runs this checkpoint over the validation split again (on the CPU)")
            .clicked()
        {
            app.evaluate_mistakes(ui.ctx(), run.to_string(), epoch);
        }
        return;
    }
    let cell = app.mistakes.cell;
    let Some(shown) = &mut app.mistakes.shown else {
        return;
    };
    let evaluation = match &shown.result {
        Ok(evaluation) => evaluation,
        Err(error) => {
            ui.colored_label(ui.visuals().error_fg_color, error);
            return;
        }
    };
    let Some(set) = evaluation.data.images() else {
        return;
    };
    let wrong = evaluation.misclassified();
    let selected: Vec<_> = wrong
        .iter()
        .filter(|p| {
            cell.is_none_or(|(actual, predicted)| p.actual == actual && p.predicted == predicted)
        })
        .take(SHOWN_MISTAKES)
        .collect();
    let mut clear_cell = false;
    ui.horizontal(|ui| {
        ui.strong(format!(
            "{} of {} validation images wrong at epoch {epoch}",
            wrong.len(),
            evaluation.predictions.len()
        ));
        match cell {
            Some((actual, predicted)) => {
                ui.label(format!(
                    "· showing actual {} predicted {}",
                    class(actual),
                    class(predicted)
                ));
                clear_cell = ui.button("Show all").clicked();
            }
            None => {
                ui.weak("· click a cell of the matrix to see only its images");
            }
        }
    });
    if selected.is_empty() {
        ui.label("None here.");
    }
    ui.horizontal_wrapped(|ui| {
        for prediction in selected {
            let texture = shown.textures.entry(prediction.row).or_insert_with(|| {
                ui.ctx().load_texture(
                    format!("mistake-{}", set.items[prediction.row].name),
                    super::thumbnails::color_image(set, prediction.row),
                    egui::TextureOptions::NEAREST,
                )
            });
            ui.vertical(|ui| {
                ui.add(
                    egui::Image::new(&*texture)
                        .fit_to_exact_size(egui::vec2(THUMBNAIL_PX, THUMBNAIL_PX)),
                )
                .on_hover_text(&set.items[prediction.row].name);
                ui.small(format!(
                    "{} → {} {:.0}%",
                    class(prediction.actual),
                    class(prediction.predicted),
                    prediction.confidence * 100.0
                ));
            });
        }
    });
    if clear_cell {
        app.mistakes.cell = None;
    }
}
