//! The experiment table at scale: a synthetic store of 10,000 runs (20 settings, 2 of which
//! vary), opened through the index, filtered, scrolled, analysed, and the window's memory and
//! idle CPU with it.
//!
//!     cargo run --release --example bench -- --only table   # writes its section of BENCHMARKS.md

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln::analysis::{Column, Filter, axes_for, brushed, varying_keys};
use kiln::runs::{RunStore, RunSummary, Summary};
use kiln::train::start;

use super::{Row, frame_ms, iris_request, median, row};

const RUNS: usize = 10_000;

pub const EXPLANATION: &str = "The synthetic store copies one real iris run 10,000 times (20 settings each, learning rate and batch size varied, 20 epochs of 4 metrics). \
    Open times run the store summary (the index) cold — every run.json and metrics.jsonl read — and warm — only file sizes and times compared; the window's time is from its creation to the table's first frame with every row. \
    Frame rows time one egui pass plus tessellation (no GPU upload) in a 1600×1000 window. The window's memory and idle CPU are read from /proc for the release binary under this machine's display (Xvfb + lavapipe) after it settles, over 60 s without input.";

/// Writes the synthetic store: a real run's files with the run id, name, two settings and the
/// metric values changed per run.
fn synthetic_store(dir: &Path) -> anyhow::Result<PathBuf> {
    let source_dir = dir.join("table-source");
    let handle = start(iris_request(&source_dir, 1, "source"), None)?;
    let id = handle.run_id.clone();
    handle.wait();
    let template: serde_json::Value =
        serde_json::from_slice(&std::fs::read(source_dir.join(&id).join("run.json"))?)?;
    let store = dir.join("table-store");
    for i in 0..RUNS {
        let id = format!("20260101-{:06}-synthetic-{i:05}", i / 60);
        let run = store.join(&id);
        std::fs::create_dir_all(run.join("checkpoints"))?;
        let mut record = template.clone();
        record["id"] = id.clone().into();
        record["name"] = format!("synthetic-{i}").into();
        record["status"] = "completed".into();
        let rate = [0.001, 0.003, 0.01, 0.03, 0.1][i % 5];
        let batch = [16, 32, 64, 128][(i / 5) % 4];
        record["train"]["learning_rate"] = rate.into();
        record["train"]["batch_size"] = batch.into();
        record["epochs_completed"] = 20.into();
        std::fs::write(run.join("run.json"), serde_json::to_vec(&record)?)?;
        let mut log = String::new();
        for epoch in 1..=20 {
            let loss = 1.0 / (1.0 + epoch as f64 * rate * 10.0) + (i % 7) as f64 * 0.01;
            for (split, metric, value) in [
                ("train", "loss", loss * 0.9),
                ("valid", "loss", loss),
                ("train", "accuracy", 1.0 - loss * 0.5),
                ("valid", "accuracy", 1.0 - loss * 0.6),
            ] {
                log.push_str(&format!(
                    "{{\"epoch\":{epoch},\"step\":{},\"split\":\"{split}\",\"metric\":\"{metric}\",\"value\":{value},\"wall_secs\":{epoch}}}\n",
                    epoch * 10
                ));
            }
        }
        std::fs::write(run.join("metrics.jsonl"), log)?;
    }
    Ok(store)
}

/// Median time of a UI pass plus tessellation of the runs table scrolling through `runs`.
fn table_frame_ms(store: &Path, frames: usize) -> anyhow::Result<f64> {
    use egui_kittest::Harness;
    let store = store.to_path_buf();
    let mut harness = Harness::builder()
        .with_size([1600.0, 1000.0])
        .build_eframe(move |cc| {
            kiln::ui::KilnApp::new(
                cc,
                kiln::ui::AppOptions {
                    targets_file: Some(store.join(".targets.toml")),
                    runs_dir: store,
                    initial_data: Some(
                        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample_data/iris.csv"),
                    ),
                    dialogs: std::sync::Arc::new(kiln::ui::dialogs::ScriptedDialogs::default()),
                    persist: false,
                },
            )
        });
    let started = Instant::now();
    while harness.state().run_summaries().len() < RUNS {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the table never filled"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut times = Vec::new();
    for frame in 0..frames {
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Line,
            delta: egui::vec2(0.0, -3.0),
            modifiers: egui::Modifiers::NONE,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
        });
        harness.hover_at(egui::pos2(900.0, 800.0 + (frame % 2) as f32));
        let start = Instant::now();
        harness.step();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(times))
}

/// Seconds from the window's creation to the table's first frame with every run.
fn window_open_secs(store: &Path) -> anyhow::Result<f64> {
    use egui_kittest::Harness;
    let store = store.to_path_buf();
    let started = Instant::now();
    let mut harness = Harness::builder()
        .with_size([1600.0, 1000.0])
        .build_eframe(move |cc| {
            kiln::ui::KilnApp::new(
                cc,
                kiln::ui::AppOptions {
                    targets_file: Some(store.join(".targets.toml")),
                    runs_dir: store,
                    initial_data: None,
                    dialogs: std::sync::Arc::new(kiln::ui::dialogs::ScriptedDialogs::default()),
                    persist: false,
                },
            )
        });
    while harness.state().table_run_ids().len() < RUNS {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the table never filled"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(started.elapsed().as_secs_f64())
}

fn parallel_frame_ms(runs: &[RunSummary], frames: usize) -> f64 {
    let refs: Vec<&RunSummary> = runs.iter().collect();
    let keys = varying_keys(refs.iter().copied());
    let axes = axes_for(
        &refs,
        &keys,
        Column::Metric("valid_loss".into(), Summary::Best),
    );
    let ctx = egui::Context::default();
    let mut times = Vec::new();
    for frame in 0..frames + 1 {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1600.0, 1000.0),
            )),
            ..Default::default()
        };
        let started = Instant::now();
        let output = ctx.run_ui(input, |ui| {
            // What the analysis view draws: a polyline per run through its axis positions.
            let rect = ui.available_rect_before_wrap();
            let painter = ui.painter();
            let kept = brushed(&refs, &axes, &[]);
            for run in &kept {
                let points: Vec<egui::Pos2> = axes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, axis)| {
                        let t = axis.position(run)?;
                        Some(egui::pos2(
                            rect.left() + rect.width() * i as f32 / (axes.len().max(2) - 1) as f32,
                            rect.bottom() - rect.height() * t as f32,
                        ))
                    })
                    .collect();
                painter.add(egui::Shape::line(
                    points,
                    egui::Stroke::new(1.2, egui::Color32::LIGHT_BLUE),
                ));
            }
        });
        let _ = ctx.tessellate(output.shapes, output.pixels_per_point);
        if frame > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    median(times)
}

/// Resident memory (MiB) and CPU share of one core over `seconds` of the release window on a
/// store, when a display is available.
fn window_idle(store: &Path, seconds: u64) -> Option<(f64, f64)> {
    std::env::var_os("DISPLAY")?;
    let exe = std::env::current_exe().ok()?;
    let kiln = exe.parent()?.parent()?.join("kiln");
    let home = tempfile::tempdir().ok()?;
    let mut child = std::process::Command::new(kiln)
        .env("KILN_RUNS_DIR", store)
        .env("HOME", home.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    // Settle: open the store, first frames.
    std::thread::sleep(Duration::from_secs(20));
    let cpu_ticks = || -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    };
    let before = cpu_ticks()?;
    std::thread::sleep(Duration::from_secs(seconds));
    let after = cpu_ticks()?;
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()?
        / 1024.0;
    let _ = child.kill();
    let _ = child.wait();
    // Clock ticks are 1/100 s on Linux.
    let share = (after - before) as f64 / 100.0 / seconds as f64;
    Some((rss, share))
}

pub fn rows(dir: &Path, quick: bool) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let store_dir = synthetic_store(dir)?;
    let store = RunStore::open(&store_dir)?;
    let started = Instant::now();
    let cold = store.summaries()?;
    let cold_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(cold.runs.len() == RUNS, "{} runs", cold.runs.len());
    let started = Instant::now();
    let warm = store.summaries()?;
    let warm_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(warm.reread == 0, "the index was not used");
    rows.push(row(
        "table",
        format!("open {RUNS} runs, index cold"),
        format!("{cold_secs:.2} s"),
        "every run.json and metrics.jsonl read; goal < 2 s",
    ));
    rows.push(row(
        "table",
        format!("open {RUNS} runs, index warm"),
        format!("{warm_secs:.2} s"),
        "file sizes and times only; goal < 2 s",
    ));
    let window = window_open_secs(&store_dir)?;
    rows.push(row(
        "table",
        format!("window created → table of {RUNS} runs"),
        format!("{window:.2} s"),
        "index warm; goal < 2 s",
    ));
    let keys = varying_keys(warm.runs.iter());
    rows.push(row(
        "table",
        "varying settings found".to_string(),
        format!("{}", keys.len()),
        keys.join(", "),
    ));
    let mut filter_ms = Vec::new();
    let mut matched = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let filter = Filter::for_runs(
            "valid_accuracy >= 0.5 && lr < 0.05 && status != pruned",
            &warm.runs,
        )?;
        matched = warm.runs.iter().filter(|run| filter.matches(run)).count();
        filter_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    rows.push(row(
        "table",
        format!("filter {RUNS} runs"),
        format!("{:.1} ms", median(filter_ms)),
        format!("parse + evaluate, {matched} match; goal < 100 ms"),
    ));
    let frames = if quick { 10 } else { 60 };
    rows.push(row(
        "table",
        "table frame while scrolling".to_string(),
        format!("{:.1} ms", table_frame_ms(&store_dir, frames)?),
        format!("{RUNS} rows, virtualised; goal < 16 ms"),
    ));
    rows.push(row(
        "table",
        "200 runs × 100,000 points".to_string(),
        format!(
            "{:.1} ms/frame",
            frame_ms(200, 100_000, false, if quick { 3 } else { 10 })
        ),
        "compare view; goal < 16 ms",
    ));
    let subset: Vec<RunSummary> = warm.runs.iter().take(2000).cloned().collect();
    rows.push(row(
        "table",
        "parallel coordinates, 2,000 runs".to_string(),
        format!(
            "{:.1} ms/frame",
            parallel_frame_ms(&subset, if quick { 3 } else { 20 })
        ),
        "goal < 16 ms",
    ));
    let seconds = if quick { 10 } else { 60 };
    match window_idle(&store_dir, seconds) {
        Some((rss, share)) => {
            rows.push(row(
                "table",
                format!("window memory with {RUNS} runs"),
                format!("{rss:.0} MiB"),
                "resident, after settling; goal < 300 MB",
            ));
            rows.push(row(
                "table",
                format!("window idle CPU with {RUNS} runs"),
                format!("{:.2} % of a core", share * 100.0),
                format!("over {seconds} s without input; goal < 1 %"),
            ));
        }
        None => rows.push(row(
            "table",
            "window memory and idle CPU".to_string(),
            "not measured".into(),
            "needs a display (DISPLAY) and the release kiln",
        )),
    }
    Ok(rows)
}
