//! `kiln runs` and `kiln show`: the store as tables.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::runs::{CheckpointSelector, RunStore};

#[derive(Debug, Serialize)]
struct RunRow {
    id: String,
    name: String,
    dataset: String,
    status: String,
    epochs: usize,
    planned_epochs: usize,
    best_epoch: Option<usize>,
    best_valid_loss: Option<f64>,
    best_valid_accuracy: Option<f64>,
    /// The process training the run right now (`pid N on HOST`), if any.
    trained_by: Option<String>,
    /// The compute target the run trains on (`null`: this machine).
    target: Option<String>,
    error: Option<String>,
    /// The run's settings by dotted path, and every metric's best/last summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<std::collections::BTreeMap<String, crate::runs::MetricSummary>>,
}

/// `kiln runs [--filter EXPR] [--json]`, read through the store index.
pub(super) fn list_runs(runs_dir: &Path, json: bool, filter: Option<&str>) -> Result<()> {
    let store = RunStore::open(runs_dir)?;
    let summary = store.summaries()?;
    let filter = match filter {
        Some(text) => crate::analysis::Filter::for_runs(text, &summary.runs)
            .map_err(|error| anyhow::anyhow!("--filter: {error}"))?,
        None => crate::analysis::Filter::all(),
    };
    let mut rows: Vec<RunRow> = summary
        .runs
        .into_iter()
        .filter(|run| filter.matches(run))
        .map(|run| {
            let loss = run.metrics.get("valid_loss").copied();
            RunRow {
                // Only a run that says it is training can have a live trainer.
                trained_by: (run.status == crate::runs::RunStatus::Running)
                    .then(|| crate::runs::lock::live_holder(&store.root().join(&run.id)))
                    .flatten()
                    .map(|holder| format!("pid {} on {}", holder.pid, holder.host)),
                target: run.target.clone(),
                name: run.name.clone(),
                dataset: run.dataset.clone(),
                status: run.status.name().to_string(),
                epochs: run.epochs_completed,
                planned_epochs: run.planned_epochs,
                best_epoch: loss.map(|m| m.best_epoch),
                best_valid_loss: loss.map(|m| m.best),
                best_valid_accuracy: run.metrics.get("valid_accuracy").map(|m| m.best),
                error: None,
                config: Some(run.config),
                metrics: Some(run.metrics),
                id: run.id,
            }
        })
        .collect();
    if filter == crate::analysis::Filter::all() {
        rows.extend(summary.broken.into_iter().map(|(id, error)| RunRow {
            id,
            name: String::new(),
            dataset: String::new(),
            status: "broken".to_string(),
            epochs: 0,
            planned_epochs: 0,
            best_epoch: None,
            best_valid_loss: None,
            best_valid_accuracy: None,
            trained_by: None,
            target: None,
            error: Some(error),
            config: None,
            metrics: None,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no runs in {}", runs_dir.display());
        return Ok(());
    }
    println!(
        "{:<40} {:<16} {:<14} {:<13} {:>9} {:>10} {:>9}  {:<10}",
        "ID", "NAME", "DATASET", "STATUS", "EPOCHS", "BEST LOSS", "BEST ACC", "TARGET"
    );
    for row in &rows {
        println!(
            "{:<40} {:<16} {:<14} {:<13} {:>9} {:>10} {:>9}  {:<10}",
            row.id,
            truncate(&row.name, 16),
            truncate(&row.dataset, 14),
            row.status,
            format!("{}/{}", row.epochs, row.planned_epochs),
            row.best_valid_loss
                .map_or("-".to_string(), |v| format!("{v:.4}")),
            row.best_valid_accuracy
                .map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0)),
            row.target.as_deref().unwrap_or("local"),
        );
        if let Some(error) = &row.error {
            println!("    {error}");
        }
    }
    Ok(())
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

pub(super) fn show_run(runs_dir: &Path, run: &str, json: bool) -> Result<()> {
    let store = RunStore::open(runs_dir)?;
    let (query, selector) = CheckpointSelector::parse(run).map_err(anyhow::Error::msg)?;
    let dir = store.find(&query)?;
    let record = dir.read_record()?;
    let status = dir.status()?;
    let index = dir.read_index()?;
    let log = dir.read_metrics()?;
    if json {
        let document = serde_json::json!({
            "id": dir.id,
            "status": status.name(),
            "record": record,
            "checkpoints": index.checkpoints,
            "metrics_points": log.points.len(),
            "metrics_bad_lines": log.bad_lines,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    println!("run:         {} ({})", dir.id, record.name);
    println!(
        "status:      {status}{}",
        record
            .status_message
            .as_ref()
            .map_or(String::new(), |m| format!(" — {m}"))
    );
    println!("created:     {}", record.created);
    println!("model:       {}", record.model_summary());
    println!("training:    {}", serde_json::to_string(&record.train)?);
    println!(
        "device:      {} ({})",
        record.device.adapter, record.device.reason
    );
    println!("data:        {}", record.data.path.display());
    match &record.preprocessor.image {
        Some(image) => println!(
            "fingerprint: {} ({} images, {}, {} classes)",
            record.fingerprint.short_id(),
            record.fingerprint.rows,
            image.shape,
            record.schema.target.classes.len()
        ),
        None => println!(
            "fingerprint: {} ({} rows, {} columns, target '{}', {})",
            record.fingerprint.short_id(),
            record.fingerprint.rows,
            record.fingerprint.columns,
            record.schema.target.name,
            record.schema.task()
        ),
    }
    if let Some(images) = &record.data.images {
        println!("image options: {}", serde_json::to_string(images)?);
    }
    if !record.fingerprint.class_counts.is_empty() {
        let counts: Vec<String> = record
            .fingerprint
            .class_counts
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        println!("classes:     {}", counts.join(", "));
    }
    println!(
        "epochs:      {}/{} ({} steps, {:.1}s)",
        record.epochs_completed, record.train.epochs, record.steps_completed, record.train_secs
    );
    if let Some(test) = &record.data.test {
        println!(
            "test split:  {} (held out from training and selection)",
            match test {
                crate::data::TestSplit::Fraction(fraction) =>
                    format!("{:.0}% of the rows", fraction * 100.0),
                crate::data::TestSplit::File(file) => file.display().to_string(),
            }
        );
    }
    if let Some(result) = &record.test {
        println!("test result: {}", test_line(result));
    }
    if let Some(sweep) = &record.sweep {
        let params: Vec<String> = sweep
            .params
            .iter()
            .map(|(path, value)| format!("{path}={value}"))
            .collect();
        println!(
            "sweep:       {} trial {} ({})",
            sweep.sweep_id,
            sweep.trial,
            params.join(", ")
        );
    }
    if let Some(lineage) = &record.lineage {
        println!("versions:    (oldest first; this run last)");
        for (number, ancestor) in lineage.chain.iter().enumerate() {
            println!("  {}", ancestor_line(number + 1, ancestor));
        }
        println!(
            "  v{} {} (this run) on {} [{}]{}{}",
            lineage.chain.len() + 1,
            record.name,
            record.fingerprint.file_name,
            record.fingerprint.short_id(),
            if lineage.refit_stats {
                ", input statistics refitted"
            } else {
                ", parent's input statistics"
            },
            if lineage.kept_optimizer {
                ", parent's optimizer state"
            } else {
                ""
            }
        );
    }
    for change in &record.changes {
        println!(
            "changed:     {} from {} to {} after epoch {}",
            change.field, change.from, change.to, change.after_epoch
        );
    }
    if !log.bad_lines.is_empty() {
        println!(
            "warning:     metrics.jsonl has unreadable line(s) {:?} (ignored)",
            log.bad_lines
        );
    }
    println!("checkpoints:");
    for entry in &index.checkpoints {
        let metrics: Vec<String> = entry
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        println!(
            "  epoch {:>4}{}  {}",
            entry.epoch,
            if entry.best { " (best)" } else { "       " },
            metrics.join("  ")
        );
    }
    // Per-class metrics: of the chosen epoch (RUN@EPOCH, from every epoch's log) or checkpoint.
    let confusions = dir.read_confusions(record.epochs_completed)?;
    let chosen = match &selector {
        CheckpointSelector::Epoch(epoch) => confusions
            .by_epoch
            .get(epoch)
            .cloned()
            .map(|confusion| (*epoch, confusion)),
        other => other
            .pick(&index)
            .and_then(|entry| Some((entry.epoch, entry.confusion.clone()?))),
    };
    if let Some((epoch, confusion)) = chosen {
        println!(
            "epoch {epoch} ({}), validation per class:",
            match selector {
                CheckpointSelector::Epoch(_) => "chosen".to_string(),
                other => format!("{other} checkpoint"),
            }
        );
        print_class_report(&record.schema.target.classes, &confusion);
    } else if let CheckpointSelector::Epoch(epoch) = selector
        && record.schema.task() == crate::data::Task::Classification
    {
        println!("no confusion matrix was logged for epoch {epoch}");
    }
    Ok(())
}

/// One earlier version: its run, epoch, weights hash, data and key metric.
pub(super) fn ancestor_line(number: usize, ancestor: &crate::runs::Ancestor) -> String {
    let metric = ancestor
        .metrics
        .get("valid_accuracy")
        .map(|v| format!("valid acc {:.2}%", v * 100.0))
        .or_else(|| {
            ancestor
                .metrics
                .get("valid_loss")
                .map(|v| format!("valid loss {v:.4}"))
        })
        .unwrap_or_default();
    format!(
        "v{number} {} @{} weights {} on {} [{}] {}{} ({})",
        ancestor.run_name,
        ancestor.epoch,
        &ancestor.weights_sha256[..ancestor.weights_sha256.len().min(12)],
        ancestor.dataset_file,
        &ancestor.dataset[..ancestor.dataset.len().min(12)],
        metric,
        ancestor
            .bundle
            .as_ref()
            .map_or(String::new(), |bundle| format!(", from bundle {bundle}")),
        ancestor.created.get(..10).unwrap_or(&ancestor.created)
    )
}

/// A test-split result on one line: its metrics, rows and checkpoint.
pub(super) fn test_line(result: &crate::runs::TestResult) -> String {
    let metrics: Vec<String> = result
        .metrics
        .iter()
        .map(|(name, value)| {
            if name.ends_with("accuracy") {
                format!("{name} {:.2}%", value * 100.0)
            } else {
                format!("{name} {value:.4}")
            }
        })
        .collect();
    format!(
        "{} on {} held-out rows (checkpoint of epoch {})",
        metrics.join(", "),
        result.rows,
        result.epoch
    )
}

/// Precision, recall and rows per class, from `confusion[actual][predicted]`.
fn print_class_report(classes: &[String], confusion: &[Vec<u64>]) {
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    for metrics in crate::runs::class_report(confusion) {
        let class = classes.get(metrics.class).map_or("?", String::as_str);
        println!(
            "  {class:<16} precision {:>7}  recall {:>7}  rows {}",
            percent(metrics.precision),
            percent(metrics.recall),
            metrics.support
        );
    }
}
