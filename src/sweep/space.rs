//! The search space: each searched setting (a dotted path into the base `model`/`train`
//! settings) and its domain, how to draw from it, and how a trial's values become the trial's
//! settings.

use std::collections::BTreeMap;

use rand::{Rng, RngExt};
use serde_json::{Value, json};

use super::spec::{SpecError, field_error};
use crate::model::ModelConfig;
use crate::train::TrainConfig;

/// A trial's searched values, by path.
pub type Assignment = BTreeMap<String, Value>;

/// The largest grid Kiln enumerates (a guard against typing 1e9 steps).
const MAX_GRID: usize = 100_000;
/// A virtual parameter: a list of channel counts, one per conv block of the base CNN.
pub const CONV_CHANNELS: &str = "model.conv_channels";

/// The values one setting may take.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// A list (numbers, strings, lists, objects): `{"values": [...]}` or just `[...]`.
    Values(Vec<Value>),
    /// Integers `low..=high`, optionally drawn on a log scale: `{"int": [1, 256], "log": true}`.
    Int { low: i64, high: i64, log: bool },
    /// Numbers in `[low, high]`, optionally log-scaled; `steps` points for a grid:
    /// `{"float": [1e-4, 1e-1], "log": true, "steps": 4}`.
    Float {
        low: f64,
        high: f64,
        log: bool,
        steps: Option<usize>,
    },
}

impl Domain {
    /// Parses a domain, naming `field` in every error.
    pub fn parse(field: &str, value: &Value) -> Result<Self, SpecError> {
        let error = |message: String| field_error(field, message);
        if let Value::Array(values) = value {
            return Self::values(field, values.clone());
        }
        let Value::Object(object) = value else {
            return Err(error(
                "give a list of values, or an object with \"values\", \"int\" or \"float\""
                    .to_string(),
            ));
        };
        for key in object.keys() {
            if !["values", "int", "float", "log", "steps"].contains(&key.as_str()) {
                return Err(error(format!(
                    "unknown key '{key}' (use values, int, float, log, steps)"
                )));
            }
        }
        let log = match object.get("log") {
            None => false,
            Some(Value::Bool(log)) => *log,
            Some(other) => {
                return Err(error(format!("\"log\" must be true or false, not {other}")));
            }
        };
        let kinds = ["values", "int", "float"]
            .iter()
            .filter(|key| object.contains_key(**key))
            .count();
        if kinds != 1 {
            return Err(error(
                "give exactly one of \"values\", \"int\" and \"float\"".to_string(),
            ));
        }
        if let Some(values) = object.get("values") {
            let Value::Array(values) = values else {
                return Err(error("\"values\" must be a list".to_string()));
            };
            if log {
                return Err(error("\"log\" applies to int and float ranges".to_string()));
            }
            return Self::values(field, values.clone());
        }
        let bounds = |key: &str| -> Result<(f64, f64), SpecError> {
            let pair = object
                .get(key)
                .and_then(Value::as_array)
                .filter(|pair| pair.len() == 2)
                .ok_or_else(|| error(format!("\"{key}\" must be [low, high]")))?;
            let number = |value: &Value| {
                value
                    .as_f64()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| error(format!("\"{key}\" bounds must be numbers, not {value}")))
            };
            let (low, high) = (number(&pair[0])?, number(&pair[1])?);
            if low > high {
                return Err(error(format!(
                    "the range [{low}, {high}] is empty (low above high)"
                )));
            }
            if log && low <= 0.0 {
                return Err(error(format!(
                    "a log range must stay above 0, but [{low}, {high}] reaches {low}"
                )));
            }
            Ok((low, high))
        };
        let steps = match object.get("steps") {
            None => None,
            Some(value) => match value.as_u64() {
                Some(steps) if steps >= 2 => Some(steps as usize),
                _ => {
                    return Err(error(format!(
                        "\"steps\" must be a whole number of grid points, at least 2, not {value}"
                    )));
                }
            },
        };
        if object.contains_key("int") {
            if steps.is_some() {
                return Err(error(
                    "\"steps\" is for float ranges; an int range's grid is every integer"
                        .to_string(),
                ));
            }
            let (low, high) = bounds("int")?;
            if low.fract() != 0.0 || high.fract() != 0.0 {
                return Err(error(format!(
                    "an int range needs whole-number bounds, not [{low}, {high}]"
                )));
            }
            return Ok(Domain::Int {
                low: low as i64,
                high: high as i64,
                log,
            });
        }
        let (low, high) = bounds("float")?;
        Ok(Domain::Float {
            low,
            high,
            log,
            steps,
        })
    }

    fn values(field: &str, values: Vec<Value>) -> Result<Self, SpecError> {
        if values.is_empty() {
            return Err(field_error(field, "the list of values is empty"));
        }
        Ok(Domain::Values(values))
    }

    /// Points a grid visits, if finite.
    fn grid(&self) -> Option<Vec<Value>> {
        match self {
            Domain::Values(values) => Some(values.clone()),
            Domain::Int { low, high, .. } => Some((*low..=*high).map(|v| json!(v)).collect()),
            Domain::Float {
                low,
                high,
                log,
                steps: Some(steps),
            } => Some(
                (0..*steps)
                    .map(|step| {
                        let t = step as f64 / (*steps - 1) as f64;
                        json!(interpolate(*low, *high, *log, t))
                    })
                    .collect(),
            ),
            Domain::Float { steps: None, .. } => None,
        }
    }

    /// A random draw.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Value {
        match self {
            Domain::Values(values) => values[rng.random_range(0..values.len())].clone(),
            Domain::Int { low, high, log } => {
                // Drawn in [low, high + 1) and floored, so every integer is equally likely
                // (on a log scale, each is as likely as its share of the log range).
                let t: f64 = rng.random();
                let x = interpolate(*low as f64, (*high + 1) as f64, *log, t);
                json!((x.floor() as i64).clamp(*low, *high))
            }
            Domain::Float { steps: Some(_), .. } => {
                let grid = self.grid().unwrap_or_default();
                grid[rng.random_range(0..grid.len())].clone()
            }
            Domain::Float { low, high, log, .. } => {
                let t: f64 = rng.random();
                json!(interpolate(*low, *high, *log, t))
            }
        }
    }

    /// The values worth checking against the settings' rules: every listed value, or both
    /// ends of a range.
    fn corners(&self) -> Vec<Value> {
        match self {
            Domain::Values(values) => values.clone(),
            Domain::Int { low, high, .. } => vec![json!(low), json!(high)],
            Domain::Float { low, high, .. } => vec![json!(low), json!(high)],
        }
    }

    /// The domain as TPE sees it: a categorical choice, or a continuous range (log-scaled
    /// ranges in log space).
    pub(crate) fn tpe_range(&self) -> TpeDomain {
        match self {
            Domain::Values(values) => TpeDomain::Categorical(values.len()),
            Domain::Float {
                steps: Some(steps), ..
            } => TpeDomain::Categorical(*steps),
            Domain::Int { low, high, log } => TpeDomain::Continuous {
                low: scale(*low as f64, *log),
                high: scale((*high + 1) as f64, *log),
            },
            Domain::Float { low, high, log, .. } => TpeDomain::Continuous {
                low: scale(*low, *log),
                high: scale(*high, *log),
            },
        }
    }

    /// The value TPE's number (an index, or a point in the possibly-log range) stands for.
    pub(crate) fn value_of_tpe(&self, x: f64) -> Value {
        match self {
            Domain::Values(values) => values[(x as usize).min(values.len() - 1)].clone(),
            Domain::Float { steps: Some(_), .. } => {
                let grid = self.grid().unwrap_or_default();
                grid[(x as usize).min(grid.len() - 1)].clone()
            }
            Domain::Int { low, high, log } => {
                json!((unscale(x, *log).floor() as i64).clamp(*low, *high))
            }
            Domain::Float { low, high, log, .. } => json!(unscale(x, *log).clamp(*low, *high)),
        }
    }

    /// The number TPE's model learns from for a value of this domain.
    pub(crate) fn to_tpe(&self, value: &Value) -> Option<f64> {
        match self {
            Domain::Values(values) => values.iter().position(|v| v == value).map(|i| i as f64),
            Domain::Float { steps: Some(_), .. } => self
                .grid()?
                .iter()
                .position(|v| v == value)
                .map(|i| i as f64),
            Domain::Int { log, .. } => value.as_f64().map(|v| scale(v + 0.5, *log)),
            Domain::Float { log, .. } => value.as_f64().map(|v| scale(v, *log)),
        }
    }
}

/// How TPE sees a domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TpeDomain {
    Categorical(usize),
    Continuous { low: f64, high: f64 },
}

fn scale(value: f64, log: bool) -> f64 {
    if log { value.ln() } else { value }
}

fn unscale(value: f64, log: bool) -> f64 {
    if log { value.exp() } else { value }
}

/// The point at `t` ∈ [0, 1] between `low` and `high`, on a log scale if asked.
fn interpolate(low: f64, high: f64, log: bool, t: f64) -> f64 {
    if log {
        (low.ln() + t * (high.ln() - low.ln())).exp()
    } else {
        low + t * (high - low)
    }
}

/// The searched settings and the base they change.
#[derive(Debug, Clone)]
pub struct SearchSpace {
    /// In path order (the order of the spec's keys, sorted).
    pub parameters: Vec<(String, Domain)>,
}

impl SearchSpace {
    /// Parses every domain and checks that each path names a setting of the base.
    pub fn new(
        parameters: &BTreeMap<String, Value>,
        model: &ModelConfig,
        train: &TrainConfig,
    ) -> Result<Self, SpecError> {
        let base = base_document(model, train);
        let mut parsed = Vec::new();
        for (path, domain) in parameters {
            let field = format!("parameters.{path}");
            check_path(&base, path).map_err(|message| field_error(&field, message))?;
            parsed.push((path.clone(), Domain::parse(&field, domain)?));
        }
        Ok(Self { parameters: parsed })
    }

    /// Every domain must be finite for a grid.
    pub fn check_grid(&self) -> Result<(), SpecError> {
        for (path, domain) in &self.parameters {
            if domain.grid().is_none() {
                return Err(field_error(
                    format!("parameters.{path}"),
                    "a grid needs finite values: give \"steps\" for a float range, or use method random or tpe",
                ));
            }
        }
        if self.grid_size() > MAX_GRID {
            return Err(field_error(
                "parameters",
                format!(
                    "the grid has {} points; at most {MAX_GRID} are enumerated",
                    self.grid_size()
                ),
            ));
        }
        Ok(())
    }

    /// Every combination's count (saturating).
    pub fn grid_size(&self) -> usize {
        self.parameters
            .iter()
            .map(|(_, domain)| domain.grid().map_or(usize::MAX, |g| g.len()))
            .fold(1usize, usize::saturating_mul)
    }

    /// Point `index` of the grid (the last parameter varies fastest), or `None` past its end.
    pub fn grid_point(&self, index: usize) -> Option<Assignment> {
        if index >= self.grid_size() {
            return None;
        }
        let mut rest = index;
        let mut assignment = Assignment::new();
        for (path, domain) in self.parameters.iter().rev() {
            let grid = domain.grid()?;
            assignment.insert(path.clone(), grid[rest % grid.len()].clone());
            rest /= grid.len();
        }
        Some(assignment)
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Assignment {
        self.parameters
            .iter()
            .map(|(path, domain)| (path.clone(), domain.sample(rng)))
            .collect()
    }

    /// Checks each listed value and range end against the settings' own rules (e.g. a dropout
    /// of 1.5), with the other settings at their base values.
    pub fn check_candidates(
        &self,
        model: &ModelConfig,
        train: &TrainConfig,
    ) -> Result<(), SpecError> {
        for (path, domain) in &self.parameters {
            for value in domain.corners() {
                let assignment = Assignment::from([(path.clone(), value.clone())]);
                let (trial_model, trial_train) = apply(model, train, &assignment)
                    .map_err(|message| field_error(format!("parameters.{path}"), message))?;
                let problem = trial_model
                    .validate()
                    .map_err(|error| error.to_string())
                    .and_then(|()| trial_train.validate().map_err(|error| error.to_string()));
                if let Err(message) = problem {
                    return Err(field_error(
                        format!("parameters.{path}"),
                        format!("the value {value} is not allowed: {message}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The base settings as one JSON document, `{"model": …, "train": …}`.
fn base_document(model: &ModelConfig, train: &TrainConfig) -> Value {
    json!({ "model": model, "train": train })
}

fn check_path(base: &Value, path: &str) -> Result<(), String> {
    if path == CONV_CHANNELS {
        return match base.pointer("/model/blocks") {
            Some(Value::Array(_)) => Ok(()),
            _ => {
                Err("conv_channels needs a CNN base model (\"model\": {\"kind\": \"cnn\"})".into())
            }
        };
    }
    let mut node = base;
    let mut walked = Vec::new();
    for segment in path.split('.') {
        let Value::Object(object) = node else {
            return Err(format!("'{}' has no fields", walked.join(".")));
        };
        match object.get(segment) {
            Some(child) => node = child,
            None => {
                let known: Vec<&str> = object.keys().map(String::as_str).collect();
                let parent = if walked.is_empty() {
                    "the spec".to_string()
                } else {
                    format!("'{}'", walked.join("."))
                };
                return Err(format!(
                    "no such setting: {parent} has {}",
                    if known.is_empty() {
                        "no fields".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        walked.push(segment);
    }
    if !matches!(walked.first(), Some(&"model") | Some(&"train")) {
        return Err("search settings under \"model\" or \"train\"".to_string());
    }
    Ok(())
}

/// The base settings with a trial's values put in.
pub fn apply(
    model: &ModelConfig,
    train: &TrainConfig,
    assignment: &Assignment,
) -> Result<(ModelConfig, TrainConfig), String> {
    let mut document = base_document(model, train);
    for (path, value) in assignment {
        if path == CONV_CHANNELS {
            set_conv_channels(&mut document, value)?;
            continue;
        }
        let pointer = format!("/{}", path.replace('.', "/"));
        let slot = document
            .pointer_mut(&pointer)
            .ok_or_else(|| format!("no setting '{path}'"))?;
        *slot = match (&*slot, value) {
            // `"adam"` for `{"kind": "adam"}`: a named variant without its fields.
            (Value::Object(current), Value::String(kind)) if current.contains_key("kind") => {
                json!({ "kind": kind })
            }
            _ => value.clone(),
        };
    }
    let model = serde_json::from_value(document["model"].take())
        .map_err(|error| format!("the model settings are not valid: {error}"))?;
    let train = serde_json::from_value(document["train"].take())
        .map_err(|error| format!("the training settings are not valid: {error}"))?;
    Ok((model, train))
}

/// `[16, 32]` sets the channels of the first conv blocks; more entries add blocks like the last.
fn set_conv_channels(document: &mut Value, value: &Value) -> Result<(), String> {
    let channels: Vec<u64> = value
        .as_array()
        .and_then(|list| list.iter().map(Value::as_u64).collect())
        .filter(|list: &Vec<u64>| !list.is_empty())
        .ok_or_else(|| format!("conv_channels takes a list of channel counts, not {value}"))?;
    let blocks = document
        .pointer_mut("/model/blocks")
        .and_then(Value::as_array_mut)
        .ok_or("conv_channels needs a CNN base model")?;
    let template = blocks.last().cloned().ok_or("the base CNN has no blocks")?;
    blocks.truncate(channels.len());
    while blocks.len() < channels.len() {
        blocks.push(template.clone());
    }
    for (block, count) in blocks.iter_mut().zip(channels) {
        block["channels"] = json!(count);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CnnConfig, MlpConfig};

    fn parse(text: &str) -> Result<Domain, SpecError> {
        Domain::parse("parameters.x", &serde_json::from_str(text).unwrap())
    }

    #[test]
    fn domains_parse_and_bad_ones_name_the_field() {
        assert_eq!(
            parse(r#"{"float": [0.001, 0.1], "log": true}"#).unwrap(),
            Domain::Float {
                low: 0.001,
                high: 0.1,
                log: true,
                steps: None
            }
        );
        assert!(matches!(parse("[1, 2]").unwrap(), Domain::Values(v) if v.len() == 2));
        for (text, expected) in [
            (r#"{"float": [0, 1], "log": true}"#, "above 0"),
            (r#"{"float": [2, 1]}"#, "empty"),
            (r#"{"values": []}"#, "empty"),
            (r#"{"int": [1.5, 3]}"#, "whole-number"),
            (r#"{"int": [1, 3], "float": [1, 3]}"#, "exactly one"),
            (r#"{"range": [1, 3]}"#, "unknown key"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains("parameters.x"), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn grid_points_cover_every_combination_in_order() {
        let space = SearchSpace {
            parameters: vec![
                ("a".to_string(), Domain::Values(vec![json!(1), json!(2)])),
                (
                    "b".to_string(),
                    Domain::Float {
                        low: 0.001,
                        high: 0.1,
                        log: true,
                        steps: Some(3),
                    },
                ),
            ],
        };
        assert_eq!(space.grid_size(), 6);
        let points: Vec<Assignment> = (0..6).filter_map(|i| space.grid_point(i)).collect();
        assert_eq!(points.len(), 6);
        assert_eq!(points[0]["a"], json!(1));
        assert_eq!(points[3]["a"], json!(2));
        let middle = points[1]["b"].as_f64().unwrap();
        assert!((middle - 0.01).abs() < 1e-12, "log-spaced: {middle}");
        assert!(space.grid_point(6).is_none());
    }

    #[test]
    fn values_go_into_the_settings_and_unknown_paths_are_refused() {
        let model = ModelConfig::Mlp(MlpConfig::default());
        let train = TrainConfig::default();
        let assignment = Assignment::from([
            ("model.hidden".to_string(), json!([128, 64])),
            ("train.learning_rate".to_string(), json!(0.05)),
            ("train.optimizer".to_string(), json!("sgd")),
        ]);
        let (model, train_out) = apply(&model, &train, &assignment).unwrap();
        let ModelConfig::Mlp(mlp) = model else {
            panic!("still an MLP")
        };
        assert_eq!(mlp.hidden, vec![128, 64]);
        assert_eq!(train_out.learning_rate, 0.05);
        assert_eq!(train_out.optimizer.name(), "sgd");

        let parameters = BTreeMap::from([("train.lerning_rate".to_string(), json!([0.1]))]);
        let error = SearchSpace::new(&parameters, &ModelConfig::default(), &train)
            .unwrap_err()
            .to_string();
        assert!(error.contains("parameters.train.lerning_rate"), "{error}");
        assert!(
            error.contains("learning_rate"),
            "lists the real fields: {error}"
        );
    }

    #[test]
    fn conv_channels_reshape_the_blocks() {
        let model = ModelConfig::Cnn(CnnConfig::default());
        let assignment = Assignment::from([(CONV_CHANNELS.to_string(), json!([8, 16, 32]))]);
        let (model, _) = apply(&model, &TrainConfig::default(), &assignment).unwrap();
        let ModelConfig::Cnn(cnn) = model else {
            panic!("still a CNN")
        };
        let channels: Vec<usize> = cnn.blocks.iter().map(|b| b.channels).collect();
        assert_eq!(channels, vec![8, 16, 32]);
    }

    #[test]
    fn tpe_numbers_round_trip() {
        let domain = Domain::Float {
            low: 1e-4,
            high: 1.0,
            log: true,
            steps: None,
        };
        let value = json!(0.01);
        let x = domain.to_tpe(&value).unwrap();
        assert!((domain.value_of_tpe(x).as_f64().unwrap() - 0.01).abs() < 1e-12);
        let int = Domain::Int {
            low: 16,
            high: 256,
            log: true,
        };
        let x = int.to_tpe(&json!(64)).unwrap();
        assert_eq!(int.value_of_tpe(x), json!(64));
    }
}
