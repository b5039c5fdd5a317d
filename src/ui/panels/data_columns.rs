//! The data panel's column choices: leave a column out, read it as categories, or treat its
//! non-numbers as missing; and the buttons a loading error offers for the column it names.

use super::data::ColumnFix;
use crate::data::{ColumnChoices, ColumnKind, PreparedData, RowIdColumn};
use crate::ui::app::KilnApp;

/// The ways out of a column error, as buttons; true when the user picked one (reload).
pub(super) fn column_fix_ui(app: &mut KilnApp, ui: &mut egui::Ui) -> bool {
    let Some(fix) = app.data.fix.clone() else {
        return false;
    };
    let choices = &mut app.data.columns;
    let mut changed = false;
    ui.horizontal_wrapped(|ui| match &fix {
        ColumnFix::NotNumbers(column) => {
            ui.label(format!("Column '{column}':"));
            if ui
                .button("Treat as missing")
                .on_hover_text(
                    "Cells that are not numbers (and blanks) are filled with the training mean, in training and in predictions",
                )
                .clicked()
            {
                ColumnChoices::set(&mut choices.as_missing, column, true);
                changed = true;
            }
            if ui
                .button("Categorical")
                .on_hover_text("Read every value of this column as a category (one-hot)")
                .clicked()
            {
                ColumnChoices::set(&mut choices.categorical, column, true);
                changed = true;
            }
        }
        ColumnFix::TooManyCategories(column) => {
            ui.label(format!("Column '{column}':"));
            if ui
                .button("Exclude column")
                .on_hover_text("Leave it out of the features (ids, names, free text)")
                .clicked()
            {
                ColumnChoices::set(&mut choices.exclude, column, true);
                changed = true;
            }
        }
    });
    if changed {
        app.data.fix = None;
    }
    changed
}

/// The "use this column" tick. Row names and row numbers are left out unless kept (`keep`);
/// any other column is used unless excluded. True when it changed.
fn use_column_ui(
    choices: &mut ColumnChoices,
    ui: &mut egui::Ui,
    name: &str,
    row_id: Option<&RowIdColumn>,
) -> bool {
    let Some(row_id) = row_id else {
        let mut used = !choices.excludes(name);
        let changed = ui
            .checkbox(&mut used, name)
            .on_hover_text("Use this column as a feature")
            .changed();
        if changed {
            ColumnChoices::set(&mut choices.exclude, name, !used);
        }
        return changed;
    };
    let mut used = choices.keeps(name);
    let changed = ui
        .checkbox(&mut used, name)
        .on_hover_text(format!(
            "Kiln found {} here and leaves it out: a model would learn the file's order from it. Tick to use it as a feature anyway",
            row_id.label()
        ))
        .changed();
    if changed {
        ColumnChoices::set(&mut choices.keep, name, used);
        ColumnChoices::set(&mut choices.exclude, name, false);
    }
    changed
}

/// One row per feature column: use it, read it as categories, treat its non-numbers as
/// missing. True when a choice changed (reload).
pub(super) fn columns_ui(
    choices: &mut ColumnChoices,
    ui: &mut egui::Ui,
    prepared: &PreparedData,
) -> bool {
    let Some(table) = prepared.table() else {
        return false;
    };
    let target = &prepared.schema.target.name;
    let mut changed = false;
    egui::CollapsingHeader::new("Columns")
        .id_salt("data_columns")
        .default_open(!prepared.warnings.is_empty())
        .show(ui, |ui| {
            egui::Grid::new("data_columns_grid")
                .num_columns(4)
                .spacing([8.0, 2.0])
                .show(ui, |ui| {
                    for name in table.header.iter().filter(|name| *name != target) {
                        let row_id = prepared.row_ids.iter().find(|id| &id.name == name);
                        changed |= use_column_ui(choices, ui, name, row_id);
                        let kind = prepared
                            .schema
                            .features
                            .iter()
                            .find(|column| &column.name == name)
                            .map(|column| &column.kind);
                        ui.weak(match kind {
                            Some(ColumnKind::Numeric) => "numeric".to_string(),
                            Some(ColumnKind::Categorical { categories }) => {
                                format!("{} categories", categories.len())
                            }
                            None => match row_id {
                                Some(id) => format!("{}, left out", id.label()),
                                None => "left out".to_string(),
                            },
                        });
                        let mut categorical = choices.is_categorical(name);
                        if ui
                            .checkbox(&mut categorical, "categorical")
                            .on_hover_text(format!("Read '{name}' as categories (one-hot)"))
                            .changed()
                        {
                            ColumnChoices::set(&mut choices.categorical, name, categorical);
                            ColumnChoices::set(&mut choices.as_missing, name, false);
                            changed = true;
                        }
                        let mut missing = choices.treats_as_missing(name);
                        if ui
                            .checkbox(&mut missing, "non-numbers missing")
                            .on_hover_text(format!(
                                "Cells of '{name}' that are not numbers count as missing (filled with the training mean)"
                            ))
                            .changed()
                        {
                            ColumnChoices::set(&mut choices.as_missing, name, missing);
                            ColumnChoices::set(&mut choices.categorical, name, false);
                            changed = true;
                        }
                        ui.end_row();
                    }
                });
        });
    changed
}
