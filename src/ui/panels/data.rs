//! The dataset: loading in the background, the form (CSV or image options), schema and
//! fingerprint, and the preview tab (first rows, or thumbnails for images).

use egui_extras::{Column, TableBuilder};

use crate::data::{
    ChannelMode, ColumnChoices, ColumnKind, CsvFormat, DataError, DataSpec, Delimiter,
    MAX_IMAGE_EDGE_PX, PreparedData, Task, prepare,
};
use crate::ui::app::{Command, KilnApp};
use crate::ui::dialogs::DialogKind;
use crate::ui::promise::Task as Background;
use crate::ui::settings::{ModelKind, Settings};
use crate::ui::widgets::{FieldIssue, checked_number};

/// Rows shown in the preview table.
const PREVIEW_ROWS: usize = 50;
/// Shifts beyond this are allowed but rarely help.
const MAX_SHIFT_PX: u32 = 8;

fn validation_share_issue(percent: f64) -> Option<FieldIssue> {
    if !(percent > 0.0 && percent < 100.0) {
        Some(FieldIssue::Error(
            "the validation share must be above 0 % and below 100 % (both splits need rows)"
                .to_string(),
        ))
    } else if percent > 50.0 {
        Some(FieldIssue::Warning(
            "more than half of the data is held out from training".to_string(),
        ))
    } else {
        None
    }
}

fn test_share_issue(percent: f64) -> Option<FieldIssue> {
    (!(percent > 0.0 && percent < 100.0)).then(|| {
        FieldIssue::Error(
            "the test share must be above 0 % and below 100 %, leaving rows to train on"
                .to_string(),
        )
    })
}

fn image_edge_issue(edge: u32) -> Option<FieldIssue> {
    (edge == 0 || edge > MAX_IMAGE_EDGE_PX).then(|| {
        FieldIssue::Error(format!(
            "choose 1 to {MAX_IMAGE_EDGE_PX} pixels a side (larger inputs do not fit a small model)"
        ))
    })
}

#[derive(Default)]
pub struct DataState {
    pub loaded: Option<(DataSpec, PreparedData)>,
    pub error: Option<String>,
    /// The way out a loading error offers for one column, shown as buttons under it.
    pub fix: Option<ColumnFix>,
    /// Columns excluded, read as categories, or with non-numbers as missing, for `columns_of`.
    pub columns: ColumnChoices,
    /// The CSV delimiter chosen for `columns_of`; `None`: detected.
    pub delimiter: Option<Delimiter>,
    columns_of: std::path::PathBuf,
    loading: Background<(DataSpec, Result<PreparedData, DataError>)>,
    pub thumbnails: super::thumbnails::ThumbnailCache,
}

/// A column whose cells stopped loading, and what the user can decide about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnFix {
    /// Mostly numbers with a few that are not: treat those as missing, or read categories.
    NotNumbers(String),
    /// Too many distinct values to one-hot encode: an id or free text, best left out.
    TooManyCategories(String),
}

impl DataState {
    pub fn is_loading(&self) -> bool {
        self.loading.is_pending()
    }
}

impl KilnApp {
    /// The column choices the next load and the next run use.
    pub fn column_choices(&self) -> &ColumnChoices {
        &self.data.columns
    }

    /// Whether a dataset is being loaded now.
    pub fn data_is_loading(&self) -> bool {
        self.data.is_loading()
    }

    /// The last loading error, if the dataset did not load.
    pub fn data_error(&self) -> Option<&str> {
        self.data.error.as_deref()
    }

    /// What loading the dataset warned about (id-like columns, mixed columns).
    pub fn data_warnings(&self) -> Vec<String> {
        self.data
            .loaded
            .as_ref()
            .map(|(_, prepared)| prepared.warnings.clone())
            .unwrap_or_default()
    }
}

impl KilnApp {
    pub(crate) fn data_spec(&self) -> DataSpec {
        let settings = &self.settings;
        let mut spec = DataSpec {
            path: settings.data_path.trim().into(),
            target: settings.target.clone(),
            task: settings.task,
            valid_fraction: settings.valid_fraction,
            split_seed: settings.split_seed,
            impute_missing: settings.impute_missing,
            images: None,
            test: settings.test_fraction.map(crate::data::TestSplit::Fraction),
            columns: self.data.columns.clone(),
            delimiter: self.data.delimiter,
        };
        if spec.is_image_data() {
            spec.images = Some(settings.images.clone());
            spec.target = None;
            spec.task = crate::data::TaskOverride::Auto;
            spec.columns = ColumnChoices::default();
            spec.delimiter = None;
        }
        spec
    }

    pub(crate) fn load_data(&mut self, ctx: &egui::Context) {
        // Column choices name the columns of one file; another file starts afresh.
        let path = std::path::PathBuf::from(self.settings.data_path.trim());
        if self.data.columns_of != path {
            self.data.columns = ColumnChoices::default();
            self.data.delimiter = None;
            self.data.columns_of = path;
        }
        let spec = self.data_spec();
        if spec.path.as_os_str().is_empty() {
            self.data.error = Some("Choose a CSV file or an image folder.".to_string());
            return;
        }
        self.data
            .loading
            .start(ctx, move || (spec.clone(), prepare(&spec)));
    }

    pub(crate) fn poll_data(&mut self) {
        let Some(outcome) = self.data.loading.take() else {
            return;
        };
        let (spec, result) = match outcome {
            Ok(loaded) => loaded,
            Err(crashed) => {
                self.data.error = Some(format!("Loading the dataset failed: {crashed}"));
                return;
            }
        };
        {
            match result {
                Ok(prepared) => {
                    // A target that the file does not have came from an earlier dataset.
                    if self.settings.target.as_deref().is_some_and(|t| {
                        prepared
                            .table()
                            .is_none_or(|table| table.column_index(t).is_none())
                    }) {
                        self.settings.target = None;
                    }
                    // Images train a CNN by default; tables can only train the MLP.
                    let images = prepared.images().is_some();
                    let was_images = self
                        .data
                        .loaded
                        .as_ref()
                        .is_some_and(|(_, old)| old.images().is_some());
                    if !images {
                        self.settings.model_kind = ModelKind::Mlp;
                    } else if !was_images {
                        self.settings.model_kind = ModelKind::Cnn;
                    }
                    self.data.loaded = Some((spec, prepared));
                    self.data.error = None;
                    self.data.fix = None;
                }
                Err(DataError::NoSuchColumn { column, path, .. })
                    if spec.target.as_ref() == Some(&column)
                        && self.settings.target.as_ref() == Some(&column) =>
                {
                    // The target was picked on another file: this one is read with its own
                    // last column, and its columns fill the Target list.
                    self.settings.target = None;
                    self.info(format!(
                        "{} has no column '{column}': the target is its last column; pick another in Target",
                        path.display()
                    ));
                    self.push(Command::LoadData);
                }
                Err(error) => {
                    self.data.fix = match &error {
                        DataError::NonNumericCells { column, .. } => {
                            Some(ColumnFix::NotNumbers(column.clone()))
                        }
                        DataError::TooManyCategories { column, .. } => {
                            Some(ColumnFix::TooManyCategories(column.clone()))
                        }
                        _ => None,
                    };
                    // The last good dataset stays loaded (and trainable) until a new one loads.
                    self.data.error = Some(error.to_string());
                }
            }
        }
    }
}

/// The dataset part of the setup column.
pub fn data_form_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        let label = ui.label("Data");
        let edit = ui
            .add(
                egui::TextEdit::singleline(&mut app.settings.data_path)
                    .hint_text("data.csv or an image folder")
                    .desired_width(190.0),
            )
            .labelled_by(label.id)
            .on_hover_text(
                "A CSV file, a folder with one sub-folder of images per class, or MNIST IDX files",
            );
        if edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            app.push(Command::LoadData);
        }
        if ui.button("Load").clicked() {
            app.push(Command::LoadData);
        }
    });
    ui.horizontal(|ui| {
        if ui
            .button("Browse…")
            .on_hover_text("Choose a CSV or IDX file (or drop one on the window)")
            .clicked()
        {
            app.push(Command::Dialog(DialogKind::OpenCsv));
        }
        if ui
            .button("Image folder…")
            .on_hover_text("Choose a folder with one sub-folder of images per class")
            .clicked()
        {
            app.push(Command::Dialog(DialogKind::OpenFolder));
        }
    });
    if app.data.is_loading() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Loading…");
        });
    }
    if let Some(error) = &app.data.error {
        ui.colored_label(ui.visuals().error_fg_color, error);
        let path = std::path::PathBuf::from(app.settings.data_path.trim());
        let images = path.is_dir() || crate::data::is_idx_images(&path);
        if path.is_file() && !images {
            // A file read with the wrong delimiter fails to load: offer the choice right there.
            let chosen = ui
                .horizontal(|ui| delimiter_ui(&mut app.data.delimiter, ui, None))
                .inner;
            if chosen {
                app.push(Command::LoadData);
            }
        } else if images && app.data.loaded.is_some() {
            // The error's way out (skip unreadable images, a size for mixed sizes), also while
            // another dataset stays loaded; with none loaded, the form below shows them.
            if image_options_ui(&mut app.settings, ui) {
                app.push(Command::LoadData);
            }
        }
    }
    if super::data_columns::column_fix_ui(app, ui) {
        app.push(Command::LoadData);
        return;
    }
    if let Some((spec, _)) = &app.data.loaded {
        let typed_elsewhere = spec.path != std::path::Path::new(app.settings.data_path.trim());
        if app.data.error.is_some() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "The dataset loaded before stays in use: {}",
                    spec.path.display()
                ),
            );
        } else if typed_elsewhere && !app.data.is_loading() {
            ui.weak(format!(
                "Train uses {} until you press Load",
                spec.path.display()
            ));
        }
    }
    let Some((_, prepared)) = &app.data.loaded else {
        // Options for an image dataset that failed to load (skip bad files, a size for mixed
        // sizes); a cheap check, as this runs every frame.
        let path = std::path::Path::new(app.settings.data_path.trim());
        let images = path.is_dir() || crate::data::is_idx_images(path);
        if images && image_options_ui(&mut app.settings, ui) {
            app.push(Command::LoadData);
        }
        return;
    };
    if prepared.images().is_some() {
        image_data_ui(app, ui);
        return;
    }
    let header = prepared
        .table()
        .map(|table| table.header.clone())
        .unwrap_or_default();
    let current_target = prepared.schema.target.name.clone();
    let mut reload = false;
    egui::Grid::new("data_grid")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            let label = ui.label("Target");
            egui::ComboBox::from_id_salt("target")
                .selected_text(&current_target)
                .show_ui(ui, |ui| {
                    for column in &header {
                        if ui
                            .selectable_label(*column == current_target, column)
                            .clicked()
                        {
                            app.settings.target = Some(column.clone());
                            reload = true;
                        }
                    }
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
            ui.label("Task");
            ui.horizontal(|ui| {
                use crate::data::TaskOverride;
                for (value, label) in [
                    (TaskOverride::Auto, "auto"),
                    (TaskOverride::Classification, "classify"),
                    (TaskOverride::Regression, "regress"),
                ] {
                    reload |= ui
                        .selectable_value(&mut app.settings.task, value, label)
                        .changed();
                }
            });
            ui.end_row();
            ui.label("Detected");
            ui.label(format!(
                "{} ({} rows)",
                prepared.schema.task(),
                prepared.fingerprint.rows
            ));
            ui.end_row();
            // Shown when it says something: a file that is not comma-separated, or a choice made.
            if let Some(table) = prepared.table()
                && (table.format != CsvFormat::default() || app.data.delimiter.is_some())
            {
                reload |= delimiter_ui(&mut app.data.delimiter, ui, Some(table.format));
                ui.end_row();
            }
            reload |= split_rows_ui(&mut app.settings, ui, prepared);
        });
    reload |= ui
        .checkbox(
            &mut app.settings.impute_missing,
            "Fill missing cells (mean / most frequent)",
        )
        .changed();
    for warning in &prepared.warnings {
        ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ {warning}"));
    }
    reload |= super::data_columns::columns_ui(&mut app.data.columns, ui, prepared);
    if !prepared.fingerprint.class_counts.is_empty() {
        class_balance_ui(ui, prepared);
    }
    if reload {
        app.push(Command::LoadData);
    }
}

/// The CSV's delimiter: detected (shown as found, when the file loaded) or chosen; true when
/// changed.
fn delimiter_ui(
    chosen: &mut Option<Delimiter>,
    ui: &mut egui::Ui,
    found: Option<CsvFormat>,
) -> bool {
    let label = ui.label("Cells").on_hover_text(
        "The character between cells. With semicolons, a decimal comma (3,14) reads as a number",
    );
    let shown = match (*chosen, found) {
        (None, Some(found)) => format!("{} (detected)", found.describe()),
        (None, None) => "detected".to_string(),
        (Some(delimiter), _) => CsvFormat::with(delimiter).describe(),
    };
    let mut changed = false;
    egui::ComboBox::from_id_salt("delimiter")
        .selected_text(shown)
        .show_ui(ui, |ui| {
            changed |= ui.selectable_value(chosen, None, "detect").changed();
            for delimiter in [
                Delimiter::COMMA,
                Delimiter::SEMICOLON,
                Delimiter::TAB,
                Delimiter::PIPE,
            ] {
                changed |= ui
                    .selectable_value(chosen, Some(delimiter), format!("{delimiter}-separated"))
                    .changed();
            }
        })
        .response
        .labelled_by(label.id);
    changed
}

/// The form for an image dataset: what was found, the split, and the loading options.
fn image_data_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let Some((_, prepared)) = &app.data.loaded else {
        return;
    };
    let Some(set) = prepared.images() else {
        return;
    };
    let mut reload = false;
    egui::Grid::new("image_data_grid")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            ui.label("Detected");
            ui.label(format!(
                "{} images, {} classes, {}",
                set.items.len(),
                set.classes.len(),
                set.shape
            ));
            ui.end_row();
            reload |= split_rows_ui(&mut app.settings, ui, prepared);
        });
    for warning in &prepared.warnings {
        ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ {warning}"));
    }
    reload |= image_options_ui(&mut app.settings, ui);
    class_balance_ui(ui, prepared);
    if reload {
        app.push(Command::LoadData);
    }
}

/// Validation share and seed, the split it gives, and the fingerprint; true when changed.
fn split_rows_ui(settings: &mut Settings, ui: &mut egui::Ui, prepared: &PreparedData) -> bool {
    let mut reload = false;
    let label = ui.label("Validation");
    ui.horizontal(|ui| {
        let mut percent = settings.valid_fraction * 100.0;
        if checked_number(ui, &mut percent, 0.5, label.id, validation_share_issue).changed() {
            settings.valid_fraction = percent / 100.0;
            // An impossible share would only fail to load; keep the last good split meanwhile.
            reload = validation_share_issue(percent).is_none_or(|issue| !issue.is_error());
        }
        ui.label("%");
        let seed = ui.label("seed");
        reload |= ui
            .add(egui::DragValue::new(&mut settings.split_seed))
            .labelled_by(seed.id)
            .changed();
    });
    ui.end_row();
    let label = ui.label("Test").on_hover_text(
        "Rows held out from training, validation, sweeps and early stopping: only an export \
         (or a sweep's promote) scores the chosen checkpoint on them, once",
    );
    ui.horizontal(|ui| {
        let mut held_out = settings.test_fraction.is_some();
        if ui
            .checkbox(&mut held_out, "hold out")
            .labelled_by(label.id)
            .changed()
        {
            settings.test_fraction = held_out.then_some(0.15);
            reload = true;
        }
        if let Some(fraction) = &mut settings.test_fraction {
            let mut percent = *fraction * 100.0;
            if checked_number(ui, &mut percent, 0.5, label.id, test_share_issue).changed() {
                *fraction = percent / 100.0;
                reload = test_share_issue(percent).is_none_or(|issue| !issue.is_error());
            }
            ui.label("%");
        }
    });
    ui.end_row();
    ui.label("Split");
    ui.label(match &prepared.test {
        Some(test) => format!(
            "{} train / {} validation / {} test",
            prepared.train.rows, prepared.valid.rows, test.rows
        ),
        None => format!(
            "{} train / {} validation",
            prepared.train.rows, prepared.valid.rows
        ),
    });
    ui.end_row();
    ui.label("Fingerprint");
    ui.monospace(prepared.fingerprint.short_id())
        .on_hover_text(format!(
            "content SHA-256 {}",
            prepared.fingerprint.content_sha256
        ));
    ui.end_row();
    reload
}

/// Input size, channels, augmentation and bad-file handling; true when an option changed.
fn image_options_ui(settings: &mut Settings, ui: &mut egui::Ui) -> bool {
    let options = &mut settings.images;
    let mut changed = false;
    egui::Grid::new("image_options_grid")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            let label = ui.label("Input size");
            ui.horizontal(|ui| {
                let mut resize = options.size.is_some();
                if ui
                    .checkbox(&mut resize, "resize to")
                    .on_hover_text("Off: use the images' own size (they must all agree)")
                    .changed()
                {
                    options.size = resize.then_some([28, 28]);
                    changed = true;
                }
                if let Some([width, height]) = &mut options.size {
                    changed |= checked_number(ui, width, 1.0, label.id, image_edge_issue).changed();
                    ui.label("×");
                    changed |= checked_number(ui, height, 1.0, label.id, image_edge_issue).changed();
                }
            });
            ui.end_row();
            ui.label("Channels");
            ui.horizontal(|ui| {
                for (mode, name) in [
                    (ChannelMode::Auto, "auto"),
                    (ChannelMode::Gray, "gray"),
                    (ChannelMode::Rgb, "RGB"),
                ] {
                    changed |= ui
                        .selectable_value(&mut options.channels, mode, name)
                        .changed();
                }
            });
            ui.end_row();
            ui.label("Augment")
                .on_hover_text("Random changes to training images each epoch (seeded)");
            ui.horizontal(|ui| {
                changed |= ui
                    .checkbox(&mut options.augment.flip_horizontal, "flip ↔")
                    .changed();
                changed |= ui
                    .checkbox(&mut options.augment.flip_vertical, "flip ↕")
                    .changed();
                let label = ui.label("shift");
                changed |= checked_number(
                    ui,
                    &mut options.augment.max_shift_px,
                    1.0,
                    label.id,
                    |shift| {
                        (shift > MAX_SHIFT_PX).then(|| {
                            FieldIssue::Warning(format!(
                                "shifts above {MAX_SHIFT_PX} px push most of a small image out of view"
                            ))
                        })
                    },
                )
                .changed();
                ui.label("px");
            });
            ui.end_row();
        });
    changed |= ui
        .checkbox(
            &mut options.skip_bad_files,
            "Skip unreadable images (and say how many)",
        )
        .changed();
    changed
}

fn class_balance_ui(ui: &mut egui::Ui, prepared: &PreparedData) {
    let counts = &prepared.fingerprint.class_counts;
    let max = counts.values().copied().max().unwrap_or(1).max(1) as f32;
    ui.label("Class balance");
    for (class, count) in counts {
        ui.horizontal(|ui| {
            ui.add_sized([90.0, 14.0], egui::Label::new(class).truncate());
            ui.add(
                egui::ProgressBar::new(*count as f32 / max)
                    .desired_width(150.0)
                    .text(count.to_string()),
            );
        });
    }
}

/// The preview tab: first rows, column types.
pub fn data_preview_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let Some((_, prepared)) = &app.data.loaded else {
        ui.label(app.data.error.as_deref().unwrap_or("No dataset loaded."));
        return;
    };
    let Some(table) = prepared.table() else {
        super::thumbnails::thumbnails_ui(ui, prepared, &mut app.data.thumbnails);
        return;
    };
    let kinds: Vec<String> = table
        .header
        .iter()
        .map(|name| {
            if *name == prepared.schema.target.name {
                return match prepared.schema.task() {
                    Task::Classification => {
                        format!("target · {} classes", prepared.schema.target.classes.len())
                    }
                    Task::Regression => "target · numeric".to_string(),
                };
            }
            match prepared
                .schema
                .features
                .iter()
                .find(|c| &c.name == name)
                .map(|c| &c.kind)
            {
                Some(ColumnKind::Numeric) => "numeric".to_string(),
                Some(ColumnKind::Categorical { categories }) => {
                    format!("one-hot · {}", categories.len())
                }
                None => "left out".to_string(),
            }
        })
        .collect();
    ui.label(format!(
        "{} — first {} of {} rows",
        prepared.fingerprint.file_name,
        PREVIEW_ROWS.min(table.row_count()),
        table.row_count()
    ));
    egui::ScrollArea::horizontal().show(ui, |ui| {
        TableBuilder::new(ui)
            .striped(true)
            .columns(
                Column::auto().at_least(70.0).resizable(true),
                table.header.len(),
            )
            .header(38.0, |mut header| {
                for (name, kind) in table.header.iter().zip(&kinds) {
                    header.col(|ui| {
                        ui.vertical(|ui| {
                            ui.strong(name);
                            ui.weak(kind);
                        });
                    });
                }
            })
            .body(|body| {
                body.rows(18.0, PREVIEW_ROWS.min(table.row_count()), |mut row| {
                    let index = row.index();
                    for cell in table.row(index).iter() {
                        row.col(|ui| {
                            ui.label(cell);
                        });
                    }
                });
            });
    });
}
