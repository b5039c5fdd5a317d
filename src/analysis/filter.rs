//! The filter language of the run table and `kiln runs --filter`:
//!
//! ```text
//! valid_accuracy >= 0.9 && lr < 0.001 && status != pruned
//! dataset == "wine.csv" || (hidden == [128,64] && !(optimizer == sgd))
//! name ~ iris                 (contains)
//! valid_loss.last < 0.2       (.best, the default, .last or .epoch of a metric)
//! ```
//!
//! Columns are the table's: `name`, `status`, `dataset`, `started`, `duration`, `epochs`,
//! `sweep`, `parent`, every metric (`valid_accuracy`), every config key by its full path
//! (`train.learning_rate`) or its last part when unique (`learning_rate`), and the short forms
//! `lr`, `batch_size`, `seed`, `optimizer`, `hidden`, `dropout`, `activation`. A run without a
//! column never matches a comparison on it.

use crate::runs::{RunSummary, Summary};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Number(f64),
    Text(String),
    /// A JSON list such as `[128,64]`, compared with list-valued settings.
    Json(serde_json::Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Field(&'static str),
    Metric(String, Summary),
    Config(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Target, Op, Literal),
}

/// A parsed filter; the empty filter matches every run.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Option<Expr>,
}

const FIELDS: [&str; 8] = [
    "name", "status", "dataset", "started", "duration", "epochs", "sweep", "parent",
];
const ALIASES: [(&str, &str); 7] = [
    ("lr", "train.learning_rate"),
    ("batch_size", "train.batch_size"),
    ("seed", "train.seed"),
    ("optimizer", "train.optimizer.kind"),
    ("hidden", "model.hidden"),
    ("dropout", "model.dropout"),
    ("activation", "model.activation"),
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number(f64),
    Text(String),
    Json(serde_json::Value),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let error = |position: usize, message: String| FilterError { position, message };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        match c {
            _ if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push((start, Token::Open));
                i += 1;
            }
            ')' => {
                tokens.push((start, Token::Close));
                i += 1;
            }
            _ if two == "&&" => {
                tokens.push((start, Token::And));
                i += 2;
            }
            _ if two == "||" => {
                tokens.push((start, Token::Or));
                i += 2;
            }
            _ if ["==", "!=", "<=", ">="].contains(&two.as_str()) => {
                let op = match two.as_str() {
                    "==" => Op::Eq,
                    "!=" => Op::Ne,
                    "<=" => Op::Le,
                    _ => Op::Ge,
                };
                tokens.push((start, Token::Op(op)));
                i += 2;
            }
            '<' | '>' | '~' | '=' => {
                let op = match c {
                    '<' => Op::Lt,
                    '>' => Op::Gt,
                    '~' => Op::Contains,
                    _ => Op::Eq,
                };
                tokens.push((start, Token::Op(op)));
                i += 1;
            }
            '!' => {
                tokens.push((start, Token::Not));
                i += 1;
            }
            '"' | '\'' => {
                let quote = c;
                let mut value = String::new();
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    value.push(chars[i]);
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(error(start, "this quote is never closed".into()));
                }
                i += 1;
                tokens.push((start, Token::Text(value)));
            }
            '[' => {
                let mut depth = 0;
                let mut end = i;
                while end < chars.len() {
                    match chars[end] {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    end += 1;
                }
                if end >= chars.len() {
                    return Err(error(start, "this list is never closed with ]".into()));
                }
                let source: String = chars[i..=end].iter().collect();
                let value = serde_json::from_str(&source)
                    .map_err(|_| error(start, format!("{source} is not a list of values")))?;
                tokens.push((start, Token::Json(value)));
                i = end + 1;
            }
            _ if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                let mut word = String::new();
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || "_.-+".contains(chars[i]))
                {
                    word.push(chars[i]);
                    i += 1;
                }
                match word.parse::<f64>() {
                    Ok(number) if !word.starts_with('.') || word.len() > 1 => {
                        tokens.push((start, Token::Number(number)))
                    }
                    _ => tokens.push((start, Token::Ident(word))),
                }
            }
            _ => return Err(error(start, format!("unexpected '{c}'"))),
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
    config_keys: &'a [String],
    metrics: &'a [String],
}

impl Parser<'_> {
    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn error(&self, message: String) -> FilterError {
        FilterError {
            position: self.position(),
            message,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, token)| token)
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        match self.peek() {
            Some(Token::Not) => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(self.error("expected ')'".into()));
                }
                self.at += 1;
                Ok(inner)
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let Some(Token::Ident(name)) = self.peek().cloned() else {
            return Err(self.error("expected a column name".into()));
        };
        let target = self.resolve(&name)?;
        self.at += 1;
        let Some(Token::Op(op)) = self.peek().cloned() else {
            return Err(self.error(format!("expected ==, !=, <, <=, >, >= or ~ after '{name}'")));
        };
        self.at += 1;
        let literal = match self.peek().cloned() {
            Some(Token::Number(number)) => Literal::Number(number),
            Some(Token::Text(text)) | Some(Token::Ident(text)) => Literal::Text(text),
            Some(Token::Json(value)) => Literal::Json(value),
            _ => return Err(self.error("expected a value".into())),
        };
        self.at += 1;
        if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && !matches!(literal, Literal::Number(_))
        {
            return Err(FilterError {
                position: self.tokens[self.at - 1].0,
                message: "<, <=, > and >= compare with a number".into(),
            });
        }
        Ok(Expr::Compare(target, op, literal))
    }

    fn resolve(&self, name: &str) -> Result<Target, FilterError> {
        if let Some(field) = FIELDS.iter().find(|field| **field == name) {
            return Ok(Target::Field(field));
        }
        let (base, summary) = match name.rsplit_once('.') {
            Some((base, "best")) => (base, Summary::Best),
            Some((base, "last")) => (base, Summary::Last),
            Some((base, "epoch")) => (base, Summary::EpochOfBest),
            _ => (name, Summary::Best),
        };
        if self.metrics.iter().any(|metric| metric == base) {
            return Ok(Target::Metric(base.to_string(), summary));
        }
        if let Some((_, path)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
            return Ok(Target::Config(path.to_string()));
        }
        if self.config_keys.iter().any(|key| key == name) {
            return Ok(Target::Config(name.to_string()));
        }
        let suffix = format!(".{name}");
        let matches: Vec<&String> = self
            .config_keys
            .iter()
            .filter(|key| key.ends_with(&suffix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(Target::Config((*one).clone())),
            [] => Err(self.error(format!(
                "unknown column '{name}' (try {}{})",
                FIELDS.join(", "),
                self.metrics
                    .first()
                    .map_or(String::new(), |metric| format!(", {metric}, lr"))
            ))),
            many => Err(self.error(format!(
                "'{name}' could be {}; write the full name",
                many.iter()
                    .map(|key| key.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))),
        }
    }
}

impl Filter {
    /// The filter that keeps every run.
    pub fn all() -> Filter {
        Filter { expr: None }
    }

    /// Parses `text` against the columns the runs have (config keys and metrics).
    pub fn parse(
        text: &str,
        config_keys: &[String],
        metrics: &[String],
    ) -> Result<Filter, FilterError> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Ok(Filter { expr: None });
        }
        let mut parser = Parser {
            tokens,
            at: 0,
            end: text.chars().count(),
            config_keys,
            metrics,
        };
        let expr = parser.or()?;
        if parser.at < parser.tokens.len() {
            return Err(parser.error("expected && or || here".into()));
        }
        Ok(Filter { expr: Some(expr) })
    }

    /// Parses against the columns of `runs`.
    pub fn for_runs(text: &str, runs: &[RunSummary]) -> Result<Filter, FilterError> {
        let keys = super::config_columns(runs);
        let metrics = super::metric_names(runs);
        Self::parse(text, &keys, &metrics)
    }

    pub fn matches(&self, run: &RunSummary) -> bool {
        self.expr.as_ref().is_none_or(|expr| eval(expr, run))
    }
}

fn eval(expr: &Expr, run: &RunSummary) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, run) && eval(b, run),
        Expr::Or(a, b) => eval(a, run) || eval(b, run),
        Expr::Not(inner) => !eval(inner, run),
        Expr::Compare(target, op, literal) => compare(run, target, *op, literal),
    }
}

enum Value {
    Number(f64),
    Text(String),
    Json(serde_json::Value),
}

fn value_of(run: &RunSummary, target: &Target) -> Option<Value> {
    Some(match target {
        Target::Field("name") => Value::Text(run.name.clone()),
        Target::Field("status") => Value::Text(run.status.name().to_string()),
        Target::Field("dataset") => Value::Text(run.dataset.clone()),
        Target::Field("started") => Value::Text(run.created.clone()),
        Target::Field("duration") => Value::Number(run.train_secs),
        Target::Field("epochs") => Value::Number(run.epochs_completed as f64),
        Target::Field("sweep") => Value::Text(run.sweep.as_ref()?.0.clone()),
        Target::Field("parent") => Value::Text(run.parent.clone()?),
        Target::Field(_) => return None,
        Target::Metric(name, summary) => Value::Number(run.metrics.get(name)?.value(*summary)),
        Target::Config(key) => match run.config.get(key)? {
            serde_json::Value::Number(number) => Value::Number(number.as_f64()?),
            serde_json::Value::String(text) => Value::Text(text.clone()),
            other => Value::Json(other.clone()),
        },
    })
}

/// Status names compare with or without spaces (`early_stopped` = `early stopped`).
fn same_text(a: &str, b: &str) -> bool {
    a == b || a.replace(' ', "_") == b.replace(' ', "_")
}

fn compare(run: &RunSummary, target: &Target, op: Op, literal: &Literal) -> bool {
    let Some(value) = value_of(run, target) else {
        return false;
    };
    match (value, literal) {
        (Value::Number(a), Literal::Number(b)) => match op {
            Op::Eq => a == *b,
            Op::Ne => a != *b,
            Op::Lt => a < *b,
            Op::Le => a <= *b,
            Op::Gt => a > *b,
            Op::Ge => a >= *b,
            Op::Contains => a.to_string().contains(&b.to_string()),
        },
        (Value::Text(a), Literal::Text(b)) => match op {
            Op::Eq => same_text(&a, b),
            Op::Ne => !same_text(&a, b),
            Op::Contains => a.contains(b.as_str()),
            _ => false,
        },
        (Value::Text(a), Literal::Number(b)) => match op {
            Op::Eq => a == b.to_string(),
            Op::Ne => a != b.to_string(),
            Op::Contains => a.contains(&b.to_string()),
            _ => false,
        },
        (Value::Json(a), Literal::Json(b)) => match op {
            Op::Eq => a == *b,
            Op::Ne => a != *b,
            _ => false,
        },
        (Value::Json(a), Literal::Text(b)) => {
            let text = a.to_string();
            match op {
                Op::Contains => text.contains(b.as_str()),
                Op::Eq => text == *b,
                Op::Ne => text != *b,
                _ => false,
            }
        }
        (Value::Number(_), Literal::Text(_) | Literal::Json(_)) => op == Op::Ne,
        (Value::Text(_), Literal::Json(_)) | (Value::Json(_), Literal::Number(_)) => op == Op::Ne,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{MetricSummary, RunStatus};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn run(name: &str, lr: f64, accuracy: f64, status: RunStatus) -> RunSummary {
        RunSummary {
            id: name.to_string(),
            name: name.to_string(),
            status,
            status_message: None,
            created: "2026-11-27T10:00:00Z".into(),
            train_secs: 3.0,
            epochs_completed: 10,
            planned_epochs: 10,
            dataset: if name.starts_with('w') {
                "wine.csv"
            } else {
                "iris.csv"
            }
            .into(),
            fingerprint: "f".into(),
            config: BTreeMap::from([
                ("train.learning_rate".to_string(), json!(lr)),
                ("model.hidden".to_string(), json!([64, 64])),
                ("train.optimizer.kind".to_string(), json!("adam")),
                ("train.seed".to_string(), json!(42)),
            ]),
            metrics: BTreeMap::from([(
                "valid_accuracy".to_string(),
                MetricSummary {
                    best: accuracy,
                    best_epoch: 4,
                    last: accuracy - 0.1,
                    last_epoch: 10,
                },
            )]),
            sweep: None,
            parent: None,
            pid: None,
            target: None,
        }
    }

    fn runs() -> Vec<RunSummary> {
        vec![
            run("a", 0.0005, 0.95, RunStatus::Completed),
            run("b", 0.01, 0.97, RunStatus::Completed),
            run("c", 0.0001, 0.92, RunStatus::Pruned),
            run("wine", 0.0005, 0.5, RunStatus::EarlyStopped),
        ]
    }

    fn names(text: &str) -> Vec<String> {
        let runs = runs();
        let filter = Filter::for_runs(text, &runs).unwrap();
        runs.iter()
            .filter(|run| filter.matches(run))
            .map(|run| run.name.clone())
            .collect()
    }

    #[test]
    fn good_expressions_select_the_right_runs() {
        assert_eq!(
            names("valid_accuracy >= 0.9 && lr < 0.001 && status != pruned"),
            ["a"]
        );
        assert_eq!(names("dataset == \"wine.csv\""), ["wine"]);
        assert_eq!(names("status == early_stopped"), ["wine"]);
        assert_eq!(names("valid_accuracy.last > 0.8"), ["a", "b", "c"]);
        assert_eq!(
            names("valid_accuracy.epoch == 4 && !(name ~ w)"),
            ["a", "b", "c"]
        );
        assert_eq!(names("lr == 0.01 || name == c"), ["b", "c"]);
        assert_eq!(
            names("hidden == [64,64] && optimizer == adam"),
            ["a", "b", "c", "wine"]
        );
        assert_eq!(names("learning_rate > 0.001"), ["b"]);
        assert_eq!(names(""), ["a", "b", "c", "wine"]);
    }

    #[test]
    fn bad_expressions_say_what_and_where() {
        let runs = runs();
        for (text, position, expected) in [
            ("valid_acuracy > 0.9", 0, "unknown column 'valid_acuracy'"),
            ("lr <", 4, "expected a value"),
            ("lr < 0.1 &&", 11, "expected a column name"),
            ("(lr < 0.1", 9, "expected ')'"),
            ("name == \"iris", 8, "never closed"),
            ("lr 0.1", 3, "expected =="),
            ("status < pruned", 9, "compare with a number"),
            ("lr < 0.1 lr", 9, "expected && or ||"),
        ] {
            let error = Filter::for_runs(text, &runs).unwrap_err();
            assert!(error.message.contains(expected), "{text}: {error}");
            assert_eq!(error.position, position, "{text}: {error}");
        }
    }
}
