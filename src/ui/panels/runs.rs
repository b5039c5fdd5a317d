//! The runs table: one row per run (virtualised, so thousands scroll smoothly), a column for each
//! setting that varies among the shown runs (or all of them), metric columns summarised as best,
//! last or epoch of best, sorting by any column, a filter expression, and "tick the top N".
//! A row's actions sit in its menu (see [`super::run_menu`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use egui_extras::{Column as TableColumn, TableBuilder};

use super::run_menu::RunDialogs;
use crate::analysis::{CellValue, Column, Filter, FilterError, config_columns, varying_keys};
use crate::runs::{Goal, RunStatus, RunSummary, Summary};
use crate::ui::app::Command;
use crate::ui::identity::RunColors;

/// What the runs table needs from the app, and where it sends commands.
pub struct RunsView<'a> {
    pub runs_dir: &'a Path,
    pub scan_error: Option<&'a str>,
    pub runs: &'a [RunSummary],
    pub broken: &'a [(String, String)],
    /// Changes whenever `runs` does.
    pub generation: u64,
    pub selected: &'a mut Vec<String>,
    pub colors: &'a RunColors,
    pub names: &'a HashMap<String, String>,
    /// The run this window is training, if any.
    pub training: Option<&'a str>,
    /// The run picked in the plot or the table (drawn bold there, shown here).
    pub highlighted: &'a mut Option<String>,
    /// The runs the analysis view's brushes keep, when any axis is brushed.
    pub brushed: Option<&'a HashSet<String>>,
    pub commands: &'a mut Vec<Command>,
}

/// Everything the shown rows depend on; the rows are rebuilt only when it changes.
#[derive(Debug, Clone, PartialEq)]
struct RowsKey {
    generation: u64,
    filter: String,
    all_keys: bool,
    metrics: Vec<(String, Summary)>,
    sort: Option<(Column, bool)>,
    brushed: Option<usize>,
}

pub struct RunsPanel {
    pub dialogs: RunDialogs,
    pub filter_text: String,
    filter_error: Option<FilterError>,
    /// Show every config key, not only the ones that vary.
    pub all_keys: bool,
    metric_columns: Vec<(String, Summary)>,
    /// The sort column and whether it ascends.
    sort: Option<(Column, bool)>,
    top_n: usize,
    rows: Vec<usize>,
    columns: Vec<Column>,
    key: Option<RowsKey>,
    scroll_to: Option<String>,
}

impl Default for RunsPanel {
    fn default() -> Self {
        Self {
            dialogs: RunDialogs::default(),
            filter_text: String::new(),
            filter_error: None,
            all_keys: false,
            metric_columns: Vec::new(),
            sort: None,
            top_n: 5,
            rows: Vec::new(),
            columns: Vec::new(),
            key: None,
            scroll_to: None,
        }
    }
}

const FIXED: [Column; 6] = [
    Column::Name,
    Column::Status,
    Column::Dataset,
    Column::Started,
    Column::Duration,
    Column::Epochs,
];

impl RunsPanel {
    /// The ids of the rows shown now (filtered, brushed, sorted).
    pub fn shown_ids(&self, runs: &[RunSummary]) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|&index| runs.get(index))
            .map(|run| run.id.clone())
            .collect()
    }

    /// Asks the table to bring a run's row into view (after a click on its curve).
    pub fn reveal(&mut self, id: &str) {
        self.scroll_to = Some(id.to_string());
    }

    /// The parse error of the filter, if any.
    pub fn filter_error(&self) -> Option<&FilterError> {
        self.filter_error.as_ref()
    }

    /// The metric columns, defaulting to validation loss and accuracy (or RMSE).
    fn ensure_metric_columns(&mut self, runs: &[RunSummary]) {
        if !self.metric_columns.is_empty() {
            return;
        }
        let names = crate::analysis::metric_names(runs);
        for wanted in ["valid_loss", "valid_accuracy", "valid_rmse"] {
            if names.iter().any(|name| name == wanted) {
                self.metric_columns
                    .push((wanted.to_string(), Summary::Best));
            }
        }
    }

    /// Rebuilds the shown rows and columns if what they depend on changed.
    pub fn refresh_rows(
        &mut self,
        runs: &[RunSummary],
        generation: u64,
        brushed: Option<&HashSet<String>>,
    ) {
        self.ensure_metric_columns(runs);
        let key = RowsKey {
            generation,
            filter: self.filter_text.clone(),
            all_keys: self.all_keys,
            metrics: self.metric_columns.clone(),
            sort: self.sort.clone(),
            brushed: brushed.map(HashSet::len),
        };
        if self.key.as_ref() == Some(&key) {
            return;
        }
        self.key = Some(key);
        let filter = match Filter::for_runs(&self.filter_text, runs) {
            Ok(filter) => {
                self.filter_error = None;
                filter
            }
            Err(error) => {
                self.filter_error = Some(error);
                // A bad expression filters nothing; the error says why.
                Filter::all()
            }
        };
        let mut rows: Vec<usize> = runs
            .iter()
            .enumerate()
            .filter(|(_, run)| filter.matches(run))
            .filter(|(_, run)| brushed.is_none_or(|set| set.contains(&run.id)))
            .map(|(index, _)| index)
            .collect();
        let shown: Vec<&RunSummary> = rows.iter().map(|&index| &runs[index]).collect();
        let keys = if self.all_keys {
            config_columns(shown.iter().copied())
        } else {
            varying_keys(shown.iter().copied())
        };
        let parents = shown.iter().any(|run| run.parent.is_some());
        self.columns = FIXED
            .iter()
            .cloned()
            .chain(parents.then_some(Column::Parent))
            .chain(keys.into_iter().map(Column::Config))
            .chain(
                self.metric_columns
                    .iter()
                    .map(|(name, summary)| Column::Metric(name.clone(), *summary)),
            )
            .collect();
        match &self.sort {
            Some((column, ascending)) => {
                let values: HashMap<usize, CellValue> = rows
                    .iter()
                    .map(|&index| (index, CellValue::of(&runs[index], column)))
                    .collect();
                rows.sort_by(|a, b| {
                    let order = values[a].sort_cmp(&values[b]);
                    if *ascending { order } else { order.reverse() }
                });
            }
            // Newest first.
            None => rows.reverse(),
        }
        self.rows = rows;
    }

    /// Ticks the top `n` shown runs by a metric column (best first by its natural goal).
    fn tick_top(
        &self,
        runs: &[RunSummary],
        n: usize,
        metric: &(String, Summary),
        selected: &mut Vec<String>,
    ) {
        let goal = match metric.1 {
            Summary::EpochOfBest => Goal::Min,
            _ => Goal::natural(&metric.0),
        };
        let column = Column::Metric(metric.0.clone(), metric.1);
        let mut ranked: Vec<(&RunSummary, f64)> = self
            .rows
            .iter()
            .filter_map(|&index| {
                let run = &runs[index];
                let value = CellValue::of(run, &column).as_number()?;
                value.is_finite().then_some((run, goal.as_cost(value)))
            })
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
        *selected = ranked
            .iter()
            .take(n)
            .map(|(run, _)| run.id.clone())
            .collect();
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, view: RunsView<'_>) {
        if let Some(error) = view.scan_error {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("Cannot read the run store: {error}"),
            );
        }
        if view.runs.is_empty() && view.broken.is_empty() {
            ui.label(format!(
                "No runs yet in {}. Click Train to make one.",
                view.runs_dir.display()
            ));
            return;
        }
        self.refresh_rows(view.runs, view.generation, view.brushed);
        self.toolbar_ui(ui, view.runs, view.selected, view.brushed.is_some());
        for (id, error) in view.broken {
            ui.horizontal(|ui| {
                ui.colored_label(ui.visuals().error_fg_color, format!("{id}: broken"))
                    .on_hover_text(error);
                if ui.small_button("Delete…").clicked() {
                    self.dialogs.confirm_delete = Some((id.clone(), id.clone()));
                }
            });
        }
        self.table_ui(ui, view);
    }

    fn toolbar_ui(
        &mut self,
        ui: &mut egui::Ui,
        runs: &[RunSummary],
        selected: &mut Vec<String>,
        brushed: bool,
    ) {
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("Filter");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter_text)
                    .hint_text("valid_accuracy >= 0.9 && lr < 0.001 && status != pruned")
                    .desired_width(330.0),
            )
            .labelled_by(label.id)
            .on_hover_text("Columns: name, status, dataset, duration, epochs, any metric (valid_loss.last for the last value), any setting (train.learning_rate or learning_rate, lr); && || ! ( ) == != < <= > >= ~");
            ui.label(format!(
                "{} of {} runs{}",
                self.rows.len(),
                runs.len(),
                if brushed { " (brushed)" } else { "" }
            ));
            ui.separator();
            ui.checkbox(&mut self.all_keys, "all settings")
                .on_hover_text("Off: only the settings that differ among the shown runs");
            ui.separator();
            let label = ui.label("Tick top");
            ui.add(egui::DragValue::new(&mut self.top_n).range(1..=500))
                .labelled_by(label.id);
            if let Some(first) = self.metric_columns.first().cloned() {
                let mut chosen = None;
                ui.menu_button(format!("by {} ▾", first.0), |ui| {
                    for metric in self.metric_columns.clone() {
                        if ui.button(format!("{} ({})", metric.0, metric.1.name())).clicked() {
                            chosen = Some(metric);
                            ui.close();
                        }
                    }
                });
                if ui
                    .button("Tick")
                    .on_hover_text("Tick the best runs of the table by this metric (their curves are plotted)")
                    .clicked()
                {
                    chosen = Some(first);
                }
                if let Some(metric) = chosen {
                    self.tick_top(runs, self.top_n, &metric, selected);
                }
            }
            if ui.button("Untick all").clicked() {
                selected.clear();
            }
            let shown: Vec<String> = self.metric_columns.iter().map(|(m, _)| m.clone()).collect();
            ui.menu_button("+ metric", |ui| {
                for name in crate::analysis::metric_names(runs) {
                    if !shown.contains(&name) && ui.button(&name).clicked() {
                        self.metric_columns.push((name, Summary::Best));
                        ui.close();
                    }
                }
            });
        });
        if let Some(error) = &self.filter_error {
            ui.colored_label(ui.visuals().error_fg_color, error.to_string());
        }
    }

    fn header_ui(&mut self, ui: &mut egui::Ui, column: &Column) {
        let arrow = match &self.sort {
            Some((sorted, true)) if sorted == column => " ⏶",
            Some((sorted, false)) if sorted == column => " ⏷",
            _ => "",
        };
        let title = format!("{}{arrow}", short_title(column));
        let response = ui
            .add(egui::Button::new(egui::RichText::new(title).strong()).frame(false))
            .on_hover_text(format!("{} — click to sort", column.title()));
        if response.clicked() {
            self.sort = match &self.sort {
                Some((sorted, ascending)) if sorted == column => Some((column.clone(), !ascending)),
                _ => Some((column.clone(), true)),
            };
        }
        if let Column::Metric(name, summary) = column {
            response.context_menu(|ui| {
                for choice in Summary::ALL {
                    if ui
                        .selectable_label(*summary == choice, choice.name())
                        .clicked()
                    {
                        if let Some(entry) = self
                            .metric_columns
                            .iter_mut()
                            .find(|(m, s)| m == name && s == summary)
                        {
                            entry.1 = choice;
                        }
                        ui.close();
                    }
                }
                if ui.button("Remove column").clicked() {
                    self.metric_columns
                        .retain(|(m, s)| !(m == name && s == summary));
                    ui.close();
                }
            });
        }
    }

    fn table_ui(&mut self, ui: &mut egui::Ui, view: RunsView<'_>) {
        let RunsView {
            runs_dir,
            runs,
            selected,
            colors,
            names,
            training,
            highlighted,
            commands,
            ..
        } = view;
        let columns = self.columns.clone();
        let rows = self.rows.clone();
        let scroll_row = self
            .scroll_to
            .take()
            .and_then(|id| rows.iter().position(|&index| runs[index].id == id));
        egui::ScrollArea::horizontal()
            .id_salt("runs_table_scroll")
            .show(ui, |ui| {
                let mut table = TableBuilder::new(ui)
                    .striped(true)
                    .auto_shrink([false, false])
                    .sense(egui::Sense::click())
                    .column(TableColumn::exact(18.0))
                    .column(TableColumn::exact(26.0));
                for column in &columns {
                    table = table.column(match column {
                        Column::Name => TableColumn::auto()
                            .at_least(150.0)
                            .resizable(true)
                            .clip(true),
                        Column::Metric(..) => TableColumn::auto().at_least(90.0),
                        Column::Started => TableColumn::auto().at_least(115.0),
                        _ => TableColumn::auto().at_least(70.0).clip(true),
                    });
                }
                if let Some(row) = scroll_row {
                    table = table.scroll_to_row(row, Some(egui::Align::Center));
                }
                table
                    .header(20.0, |mut header| {
                        header.col(|_| {});
                        header.col(|_| {});
                        for column in &columns {
                            header.col(|ui| self.header_ui(ui, column));
                        }
                    })
                    .body(|body| {
                        body.rows(22.0, rows.len(), |mut row| {
                            let run = &runs[rows[row.index()]];
                            let id = run.id.as_str();
                            let live = training == Some(id);
                            let shown = names.get(id).map_or(run.name.as_str(), String::as_str);
                            row.set_selected(highlighted.as_deref() == Some(id));
                            row.col(|ui| {
                                ui.colored_label(colors.color(id), "●");
                            });
                            row.col(|ui| {
                                self.dialogs.menu_ui(
                                    ui,
                                    run,
                                    shown,
                                    live,
                                    training.is_some(),
                                    commands,
                                );
                            });
                            for column in &columns {
                                row.col(|ui| match column {
                                    Column::Name => {
                                        let mut ticked = selected.iter().any(|s| s == id);
                                        let toggle = ui.checkbox(&mut ticked, shown).on_hover_text(
                                            format!("{id}\nTick to show in the plot"),
                                        );
                                        if toggle.changed() {
                                            if ticked {
                                                selected.push(id.to_string());
                                            } else {
                                                selected.retain(|s| s != id);
                                            }
                                        }
                                    }
                                    Column::Status => {
                                        // A run another process (or machine) trains right now;
                                        // a mirrored one says where it trains instead.
                                        let busy = (!live
                                            && run.target.is_none()
                                            && run.status == RunStatus::Running)
                                            .then(|| trained_elsewhere(runs_dir, id))
                                            .flatten();
                                        let text = if live {
                                            "training".to_string()
                                        } else if busy.is_some() {
                                            "busy".to_string()
                                        } else if let Some(target) = &run.target {
                                            format!("{} on {target}", run.status.name())
                                        } else {
                                            run.status.name().to_string()
                                        };
                                        let label = if matches!(
                                            run.status,
                                            RunStatus::Pruned
                                                | RunStatus::Diverged
                                                | RunStatus::Failed
                                        ) {
                                            ui.weak(text)
                                        } else {
                                            ui.label(text)
                                        };
                                        if let Some(holder) = busy {
                                            label.on_hover_text(format!(
                                                "Being trained by {holder}"
                                            ));
                                        } else if let Some(message) = &run.status_message {
                                            label.on_hover_text(message);
                                        }
                                    }
                                    Column::Epochs => {
                                        ui.label(format!(
                                            "{}/{}",
                                            run.epochs_completed, run.planned_epochs
                                        ));
                                    }
                                    Column::Duration => {
                                        ui.label(super::training::format_duration(run.train_secs));
                                    }
                                    other => {
                                        ui.label(CellValue::of(run, other).display());
                                    }
                                });
                            }
                            if row.response().clicked() {
                                *highlighted = Some(id.to_string());
                            }
                        });
                    });
            });
    }
}

/// Column titles short enough for the header (`train.learning_rate` → `learning_rate`).
fn short_title(column: &Column) -> String {
    match column {
        Column::Config(key) => key
            .strip_prefix("train.")
            .or_else(|| key.strip_prefix("model."))
            .unwrap_or(key)
            .to_string(),
        Column::Metric(name, Summary::Best) => name.clone(),
        Column::Metric(name, Summary::Last) => format!("{name} (last)"),
        Column::Metric(name, Summary::EpochOfBest) => format!("{name} (epoch)"),
        other => other.title(),
    }
}

/// The live holder of a run's lock when it is another process than this window.
fn trained_elsewhere(runs_dir: &std::path::Path, id: &str) -> Option<crate::runs::LockHolder> {
    crate::runs::lock::live_holder(&runs_dir.join(id)).filter(|holder| {
        holder.pid != std::process::id() || holder.host != crate::runs::lock::this_host()
    })
}
