//! The append-only metrics log of a run (`metrics.jsonl`).
//!
//! One JSON object a line: a metric point, or a marker saying training resumed from a checkpoint,
//! which supersedes every point logged after that checkpoint's epoch.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    Train,
    Valid,
}

impl SplitName {
    pub fn name(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Valid => "valid",
        }
    }
}

/// One measured value. Non-finite values are kept (as strings in JSON) so a diverged run shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub epoch: usize,
    pub step: u64,
    pub split: SplitName,
    pub metric: String,
    #[serde(with = "non_finite")]
    pub value: f64,
    pub wall_secs: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum LogLine {
    Point(MetricPoint),
    Resume { resume_from_epoch: usize },
}

/// What a read of the log found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsLog {
    /// Points in log order, superseded ones removed.
    pub points: Vec<MetricPoint>,
    /// Lines that could not be parsed (a torn last line after a crash, typically).
    pub bad_lines: Vec<usize>,
}

impl MetricsLog {
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = super::untrusted::read_text_bounded(path, super::untrusted::MAX_LOG_BYTES)?;
        Ok(Self::parse(&text))
    }

    pub fn parse(text: &str) -> Self {
        let mut log = Self::default();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LogLine>(line) {
                Ok(LogLine::Point(point)) => log.points.push(point),
                Ok(LogLine::Resume { resume_from_epoch }) => {
                    log.points.retain(|point| point.epoch <= resume_from_epoch);
                }
                Err(_) => log.bad_lines.push(index + 1),
            }
        }
        log
    }

    /// Points of one split and metric, in order.
    pub fn series<'a>(
        &'a self,
        split: SplitName,
        metric: &'a str,
    ) -> impl Iterator<Item = &'a MetricPoint> + 'a {
        self.points
            .iter()
            .filter(move |point| point.split == split && point.metric == metric)
    }

    /// Metric names present in the log, sorted.
    pub fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.points.iter().map(|p| p.metric.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Appends points in one write, left for [`super::atomic::sync_data`] to flush to disk: the
/// training loop's writer flushes the log with the checkpoint that follows.
pub fn append_points(path: &Path, points: &[MetricPoint]) -> std::io::Result<()> {
    let lines = points
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<String>, _>>()
        .map_err(std::io::Error::other)?;
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    super::atomic::append_lines_unsynced(path, &lines)
}

pub fn append_resume_marker(path: &Path, epoch: usize) -> std::io::Result<()> {
    let line = serde_json::to_string(&LogLine::Resume {
        resume_from_epoch: epoch,
    })
    .map_err(std::io::Error::other)?;
    super::atomic::append_line(path, &line)
}

/// JSON has no NaN or infinity; write them as strings and read them back.
pub(crate) mod non_finite {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else if value.is_nan() {
            serializer.serialize_str("NaN")
        } else if *value > 0.0 {
            serializer.serialize_str("inf")
        } else {
            serializer.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        match Repr::deserialize(deserializer)? {
            Repr::Number(value) => Ok(value),
            Repr::Text(text) => match text.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "inf" | "Infinity" => Ok(f64::INFINITY),
                "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!("not a number: {other}"))),
            },
        }
    }
}
