//! What differs between ticked runs: configuration fields and the dataset they used.

use std::collections::BTreeMap;

use crate::runs::{RunListing, RunRecord};
use crate::ui::app::KilnApp;

/// Flattens a JSON value into `path → value` pairs for field-by-field comparison.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, child, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The configuration fields (and dataset facts) where two runs differ.
pub fn differences(a: &RunRecord, b: &RunRecord) -> Vec<(String, String, String)> {
    let describe = |record: &RunRecord| {
        let mut fields = BTreeMap::new();
        let document = serde_json::json!({
            "data": record.data,
            "dataset": {
                "fingerprint": record.fingerprint.id,
                "rows": record.fingerprint.rows,
                "columns": record.fingerprint.columns,
                "target": record.schema.target.name,
                "task": record.schema.target.task,
            },
            "model": record.model,
            "train": record.train,
            "device": record.device.adapter,
        });
        flatten("", &document, &mut fields);
        fields
    };
    let (left, right) = (describe(a), describe(b));
    let keys: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let l = left.get(key).cloned().unwrap_or_else(|| "—".to_string());
            let r = right.get(key).cloned().unwrap_or_else(|| "—".to_string());
            (l != r).then(|| (key.clone(), l, r))
        })
        .collect()
}

pub fn compare_ui(app: &mut KilnApp, ui: &mut egui::Ui) {
    let records: Vec<&RunRecord> = app
        .settings
        .selected_runs
        .iter()
        .filter_map(|id| match app.cache.listing(id) {
            Some(RunListing::Run { record, .. }) => Some(record.as_ref()),
            _ => None,
        })
        .collect();
    if records.len() != 2 {
        ui.label(format!(
            "Tick exactly two runs in the Runs tab to see what differs between them ({} ticked).",
            records.len()
        ));
        return;
    }
    let (a, b) = (records[0], records[1]);
    let diffs = differences(a, b);
    if a.fingerprint.id == b.fingerprint.id {
        ui.label(format!(
            "Same dataset (fingerprint {}).",
            a.fingerprint.short_id()
        ));
    } else {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "Different data: {} ({}) vs {} ({}).",
                a.fingerprint.file_name,
                a.fingerprint.short_id(),
                b.fingerprint.file_name,
                b.fingerprint.short_id()
            ),
        );
    }
    if diffs.is_empty() {
        ui.label("The two runs have the same configuration.");
        return;
    }
    egui::Grid::new("diff_grid")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.strong("Field");
            ui.strong(app.identity_name(&a.id));
            ui.strong(app.identity_name(&b.id));
            ui.end_row();
            for (field, left, right) in &diffs {
                ui.monospace(field);
                ui.label(left);
                ui.label(right);
                ui.end_row();
            }
        });
}
