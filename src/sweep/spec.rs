//! The sweep spec: a JSON file naming the data, the base run settings (as in `run.json`), the
//! parameters to search and how, the metric, the budget and the pruner. Every mistake in it is
//! reported naming the field, before any trial starts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::space::SearchSpace;
use crate::data::{DataSpec, Task};
use crate::model::ModelConfig;
use crate::runs::Goal;
use crate::train::{DeviceChoice, TrainConfig};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {message}")]
    Json {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("sweep spec, {field}: {message}")]
    Field { field: String, message: String },
}

pub(crate) fn field_error(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// How trials' settings are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every combination of the listed values, in order.
    Grid,
    /// Independent seeded draws from each parameter's range.
    Random,
    /// Tree-structured Parzen Estimator (the `tpe` crate): random for the first trials, then
    /// drawn where good trials were more likely than bad ones.
    Tpe,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
            Method::Tpe => "TPE",
        }
    }
}

/// Which trials stop early because they lag behind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PrunerSpec {
    #[default]
    None,
    /// From `min_epochs` on, stop a trial whose best value so far is worse than the median of
    /// the other trials' best values at the same epoch.
    Median {
        #[serde(default = "default_min_epochs")]
        min_epochs: usize,
    },
    /// Asynchronous successive halving: at epochs `min_epochs · eta^k` only the best `1/eta` of
    /// the trials that reached the rung go on.
    Asha {
        #[serde(default = "default_min_epochs")]
        min_epochs: usize,
        #[serde(default = "default_eta")]
        eta: usize,
    },
}

fn default_min_epochs() -> usize {
    3
}

fn default_eta() -> usize {
    3
}

fn one() -> usize {
    1
}

/// Trials at once when a spec does not say. On the CPU two small trials side by side beat one
/// trial using both cores (BENCHMARKS.md, sweeps: iris trials per minute 294 at 1, 370 at 2, on
/// 2 cores); a GPU trains one trial at a time unless asked, and `auto` may pick a GPU.
pub fn default_concurrency(device: DeviceChoice) -> usize {
    match device {
        DeviceChoice::Cpu => 2,
        DeviceChoice::Auto | DeviceChoice::Wgpu => 1,
    }
}

/// The whole sweep, as written in the spec file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// A name for the sweep and its trials (default: the dataset's name).
    #[serde(default)]
    pub name: Option<String>,
    pub data: DataSpec,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub device: DeviceChoice,
    /// Dotted paths into `model` and `train` (e.g. `train.learning_rate`, `model.hidden`), each
    /// with its domain (see [`super::space::Domain`]); checked by [`SweepSpec::space`].
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub method: Method,
    /// `valid_loss`, `valid_accuracy`, `valid_precision`, `valid_recall` or `valid_rmse`.
    pub metric: String,
    /// Default: `min` for losses and errors, `max` otherwise.
    #[serde(default)]
    pub goal: Option<Goal>,
    /// Trials to run; a grid runs every point once when it is left out.
    #[serde(default)]
    pub max_trials: usize,
    #[serde(default)]
    pub max_minutes: Option<f64>,
    /// Trials trained at once (default: 2 on the CPU, 1 otherwise; see [`default_concurrency`]).
    #[serde(default = "one")]
    pub concurrency: usize,
    /// Runs per trial, the same settings with seeds `train.seed`, `+1`, … (default 1).
    #[serde(default = "one")]
    pub repeats: usize,
    /// Seeds the choice of trials (not the training, which `train.seed` seeds).
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub pruner: PrunerSpec,
}

/// The metrics a run logs for each task, as `valid_<metric>` checkpoint keys.
pub fn metrics_for(task: Task) -> &'static [&'static str] {
    match task {
        Task::Classification => &[
            "valid_loss",
            "valid_accuracy",
            "valid_precision",
            "valid_recall",
        ],
        Task::Regression => &["valid_loss", "valid_rmse"],
    }
}

impl SweepSpec {
    /// Reads and checks a spec file (see [`SweepSpec::parse`]).
    pub fn read(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec = Self::parse(&text, path)?;
        // A relative data path is relative to the spec file, like an include.
        if spec.data.path.is_relative()
            && let Some(folder) = path.parent()
            && !spec.data.path.exists()
        {
            spec.data.path = folder.join(&spec.data.path);
        }
        Ok(spec)
    }

    /// Parses a spec and checks what can be checked without the data.
    pub fn parse(text: &str, path: &Path) -> Result<Self, SpecError> {
        let json_error = |error: serde_json::Error| SpecError::Json {
            path: path.to_path_buf(),
            message: error.to_string(),
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(json_error)?;
        let concurrency_given = value.get("concurrency").is_some();
        let mut spec: SweepSpec = serde_json::from_value(value).map_err(json_error)?;
        if !concurrency_given {
            spec.concurrency = default_concurrency(spec.device);
        }
        if spec.max_trials == 0 && spec.method == Method::Grid {
            spec.max_trials = spec.space()?.grid_size();
        }
        spec.check()?;
        Ok(spec)
    }

    /// The goal of the metric, given or natural.
    pub fn goal(&self) -> Goal {
        self.goal.unwrap_or_else(|| Goal::natural(&self.metric))
    }

    /// The name trials are given (`NAME-t3`).
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| format!("{}-sweep", self.data.dataset_name()))
    }

    /// The search space this spec describes, checked against the base settings.
    pub fn space(&self) -> Result<SearchSpace, SpecError> {
        SearchSpace::new(&self.parameters, &self.model, &self.train)
    }

    /// Budget, concurrency, pruner, method and parameters; not the data.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.max_trials == 0 {
            return Err(field_error(
                "max_trials",
                "say how many trials to run (at least 1; a grid runs every point when it is left out)",
            ));
        }
        if self.concurrency == 0 {
            return Err(field_error(
                "concurrency",
                "at least 1 trial must run at a time",
            ));
        }
        if self.repeats == 0 {
            return Err(field_error(
                "repeats",
                "each trial needs at least 1 run (repeats: 1)",
            ));
        }
        if let Some(minutes) = self.max_minutes
            && !(minutes.is_finite() && minutes > 0.0)
        {
            return Err(field_error(
                "max_minutes",
                format!("must be a positive number of minutes, not {minutes}"),
            ));
        }
        match self.pruner {
            PrunerSpec::Median { min_epochs } | PrunerSpec::Asha { min_epochs, .. }
                if min_epochs == 0 =>
            {
                return Err(field_error("pruner.min_epochs", "must be at least 1"));
            }
            PrunerSpec::Asha { eta, .. } if eta < 2 => {
                return Err(field_error(
                    "pruner.eta",
                    format!(
                        "must be at least 2 (the share of trials kept at each rung is 1/eta), not {eta}"
                    ),
                ));
            }
            _ => {}
        }
        let all_metrics = [
            "valid_loss",
            "valid_accuracy",
            "valid_precision",
            "valid_recall",
            "valid_rmse",
        ];
        if !all_metrics.contains(&self.metric.as_str()) {
            return Err(field_error(
                "metric",
                format!(
                    "unknown metric '{}'; use one of {}",
                    self.metric,
                    all_metrics.join(", ")
                ),
            ));
        }
        if self.parameters.is_empty() {
            return Err(field_error(
                "parameters",
                "name at least one parameter to search",
            ));
        }
        self.model
            .validate()
            .map_err(|error| field_error("model", error.to_string()))?;
        self.train
            .validate()
            .map_err(|error| field_error("train", error.to_string()))?;
        let space = self.space()?;
        if self.method == Method::Grid {
            space.check_grid()?;
        }
        space.check_candidates(&self.model, &self.train)?;
        Ok(())
    }

    /// Checks the metric against the data's task (accuracy means nothing for regression).
    pub fn check_metric_for(&self, task: Task) -> Result<(), SpecError> {
        let logged = metrics_for(task);
        if logged.contains(&self.metric.as_str()) {
            Ok(())
        } else {
            Err(field_error(
                "metric",
                format!(
                    "'{}' is not logged for {task} (it logs {})",
                    self.metric,
                    logged.join(", ")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_without_budget(method: &str) -> Result<SweepSpec, SpecError> {
        let text = serde_json::json!({
            "data": { "path": "iris.csv" },
            "parameters": {
                "train.learning_rate": [0.001, 0.01, 0.1],
                "model.hidden": [[8], [16]]
            },
            "method": method,
            "metric": "valid_loss"
        })
        .to_string();
        SweepSpec::parse(&text, Path::new("spec.json"))
    }

    #[test]
    fn a_grid_without_a_budget_runs_every_point_and_searches_need_one() {
        assert_eq!(parse_without_budget("grid").unwrap().max_trials, 6);
        for method in ["random", "tpe"] {
            let error = parse_without_budget(method).unwrap_err().to_string();
            assert!(error.contains("max_trials"), "{method}: {error}");
        }
    }

    #[test]
    fn concurrency_defaults_to_two_on_the_cpu_and_a_given_one_is_kept() {
        let with = |extra: serde_json::Value| {
            let mut spec = serde_json::json!({
                "data": { "path": "iris.csv" },
                "parameters": { "train.learning_rate": [0.001, 0.01] },
                "method": "grid",
                "metric": "valid_loss"
            });
            for (key, value) in extra.as_object().unwrap() {
                spec[key] = value.clone();
            }
            SweepSpec::parse(&spec.to_string(), Path::new("spec.json")).unwrap()
        };
        assert_eq!(with(serde_json::json!({ "device": "cpu" })).concurrency, 2);
        assert_eq!(with(serde_json::json!({ "device": "wgpu" })).concurrency, 1);
        assert_eq!(with(serde_json::json!({})).concurrency, 1);
        assert_eq!(
            with(serde_json::json!({ "device": "cpu", "concurrency": 1 })).concurrency,
            1
        );
    }
}
