//! Table columns: the fixed ones, a column per config key (by default only keys whose value
//! differs among the shown runs), and metric columns summarised as best, last or epoch of best.

use std::collections::BTreeSet;

use crate::runs::{RunSummary, Summary};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Column {
    Name,
    Status,
    Dataset,
    Started,
    /// Training time in seconds.
    Duration,
    Epochs,
    /// The run it started from (a warm start).
    Parent,
    Config(String),
    Metric(String, Summary),
}

impl Column {
    pub fn title(&self) -> String {
        match self {
            Column::Name => "name".into(),
            Column::Status => "status".into(),
            Column::Dataset => "dataset".into(),
            Column::Started => "started".into(),
            Column::Duration => "duration".into(),
            Column::Epochs => "epochs".into(),
            Column::Parent => "from".into(),
            Column::Config(key) => key.clone(),
            Column::Metric(name, Summary::Best) => name.clone(),
            Column::Metric(name, summary) => format!("{name} ({})", summary.name()),
        }
    }
}

/// A cell: a number (sorts and compares numerically) or text; missing when the run lacks it.
#[derive(Debug, Clone, PartialEq)]
pub enum CellValue {
    Number(f64),
    Text(String),
    Missing,
}

impl CellValue {
    pub fn of(run: &RunSummary, column: &Column) -> CellValue {
        match column {
            Column::Name => CellValue::Text(run.name.clone()),
            Column::Status => CellValue::Text(run.status.name().to_string()),
            Column::Dataset => CellValue::Text(run.dataset.clone()),
            Column::Started => CellValue::Text(
                run.created
                    .get(..16)
                    .unwrap_or(&run.created)
                    .replace('T', " "),
            ),
            Column::Duration => CellValue::Number(run.train_secs),
            Column::Epochs => CellValue::Number(run.epochs_completed as f64),
            Column::Parent => run.parent.as_ref().map_or(CellValue::Missing, |parent| {
                CellValue::Text(format!("← {parent}"))
            }),
            Column::Config(key) => run
                .config
                .get(key)
                .map_or(CellValue::Missing, CellValue::of_setting),
            Column::Metric(name, summary) => {
                run.metrics.get(name).map_or(CellValue::Missing, |metric| {
                    CellValue::Number(metric.value(*summary))
                })
            }
        }
    }

    /// A setting's value as a cell: numbers stay numbers, text loses its JSON quotes.
    pub fn of_setting(value: &serde_json::Value) -> CellValue {
        match value {
            serde_json::Value::Number(number) => number
                .as_f64()
                .map_or(CellValue::Missing, CellValue::Number),
            serde_json::Value::String(text) => CellValue::Text(text.clone()),
            serde_json::Value::Bool(flag) => CellValue::Text(flag.to_string()),
            other => CellValue::Text(other.to_string()),
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            CellValue::Number(value) => Some(*value),
            _ => None,
        }
    }

    /// Orders numbers before text, missing last.
    pub fn sort_cmp(&self, other: &CellValue) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (CellValue::Number(a), CellValue::Number(b)) => a.total_cmp(b),
            (CellValue::Text(a), CellValue::Text(b)) => a.cmp(b),
            (CellValue::Number(_), _) => Ordering::Less,
            (_, CellValue::Number(_)) => Ordering::Greater,
            (CellValue::Text(_), CellValue::Missing) => Ordering::Less,
            (CellValue::Missing, CellValue::Text(_)) => Ordering::Greater,
            (CellValue::Missing, CellValue::Missing) => Ordering::Equal,
        }
    }

    pub fn display(&self) -> String {
        match self {
            CellValue::Number(value) => crate::runs::format_number(*value),
            CellValue::Text(text) => text.clone(),
            CellValue::Missing => "—".into(),
        }
    }
}

/// Config keys whose value is not the same in every run (a key some runs lack varies too).
pub fn varying_keys<'a>(runs: impl IntoIterator<Item = &'a RunSummary>) -> Vec<String> {
    let runs: Vec<&RunSummary> = runs.into_iter().collect();
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let keys: BTreeSet<&String> = runs.iter().flat_map(|run| run.config.keys()).collect();
    keys.into_iter()
        .filter(|key| {
            let value = first.config.get(*key);
            runs.iter().any(|run| run.config.get(*key) != value)
        })
        .cloned()
        .collect()
}

/// Every config key of the runs (for "all keys").
pub fn config_columns<'a>(runs: impl IntoIterator<Item = &'a RunSummary>) -> Vec<String> {
    let keys: BTreeSet<String> = runs
        .into_iter()
        .flat_map(|run| run.config.keys().cloned())
        .collect();
    keys.into_iter().collect()
}

/// Every metric the runs logged.
pub fn metric_names<'a>(runs: impl IntoIterator<Item = &'a RunSummary>) -> Vec<String> {
    let names: BTreeSet<String> = runs
        .into_iter()
        .flat_map(|run| run.metrics.keys().cloned())
        .collect();
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::RunStatus;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn run(config: &[(&str, serde_json::Value)]) -> RunSummary {
        RunSummary {
            id: "r".into(),
            name: "r".into(),
            status: RunStatus::Completed,
            status_message: None,
            created: String::new(),
            train_secs: 0.0,
            epochs_completed: 0,
            planned_epochs: 0,
            dataset: String::new(),
            fingerprint: String::new(),
            config: config
                .iter()
                .map(|(key, value)| (key.to_string(), value.clone()))
                .collect::<BTreeMap<_, _>>(),
            metrics: BTreeMap::new(),
            sweep: None,
            parent: None,
            pid: None,
            target: None,
        }
    }

    #[test]
    fn only_settings_that_differ_are_varying_columns() {
        let a = run(&[
            ("lr", json!(0.1)),
            ("epochs", json!(10)),
            ("hidden", json!([64])),
        ]);
        let b = run(&[
            ("lr", json!(0.01)),
            ("epochs", json!(10)),
            ("hidden", json!([64])),
        ]);
        // A key one run lacks varies too.
        let c = run(&[
            ("lr", json!(0.1)),
            ("epochs", json!(10)),
            ("hidden", json!([64])),
            ("extra", json!(1)),
        ]);
        assert_eq!(varying_keys([&a, &b]), ["lr"]);
        assert_eq!(varying_keys([&a, &b, &c]), ["extra", "lr"]);
        assert!(varying_keys([&a]).is_empty(), "one run varies in nothing");
        assert_eq!(
            config_columns([&a, &c]),
            ["epochs", "extra", "hidden", "lr"]
        );
    }

    #[test]
    fn cells_sort_numbers_first_and_missing_last() {
        let mut cells = vec![
            CellValue::Missing,
            CellValue::Text("b".into()),
            CellValue::Number(2.0),
            CellValue::Number(-1.0),
        ];
        cells.sort_by(CellValue::sort_cmp);
        assert_eq!(
            cells,
            vec![
                CellValue::Number(-1.0),
                CellValue::Number(2.0),
                CellValue::Text("b".into()),
                CellValue::Missing
            ]
        );
    }
}
