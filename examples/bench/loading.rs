//! Loading benchmark: a 100 MB CSV (200,000 rows × 64 numeric features and a class label) from
//! the file to the encoded training and validation matrices — `kiln::data::prepare`, the work
//! `kiln train` does before its first batch — each round in a fresh process so that its peak
//! memory is its own; beside pandas and polars reading the same file when
//! `KILN_PYDATA_PYTHON` names a Python that has them.
//!
//!     cargo run --release --example bench -- --only loading   # writes its section of BENCHMARKS.md

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::{Row, median, row};

pub const EXPLANATION: &str = "Each Kiln round is a fresh process running `kiln::data::prepare` on the file \
    (read, parse, infer the schema, fingerprint, split, standardise and encode: what `kiln train` does before its first batch); \
    its peak is the process's VmHWM. The stage rows time the same steps once, in this process. \
    pandas and polars rounds are fresh Python processes timing `read_csv` alone, their peak the Python process's VmHWM \
    (the interpreter and the library included). Rounds alternate Kiln, pandas, polars.";

const ROWS: usize = 200_000;
const FEATURES: usize = 64;
const ROUNDS: usize = 3;

/// The child side of a round: `bench --load-once FILE` prints "SECONDS PEAK_KIB".
pub fn load_once(path: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let prepared = kiln::data::prepare(&kiln::data::DataSpec::new(path))?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(prepared.train.rows + prepared.valid.rows > 0, "no rows");
    println!("{secs} {}", peak_kib()?);
    Ok(())
}

fn peak_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}

pub fn rows(work: &Path, quick: bool) -> anyhow::Result<Vec<Row>> {
    let row_count = if quick { ROWS / 20 } else { ROWS };
    let file = work.join("wide.csv");
    write_csv(&file, row_count)?;
    let megabytes = std::fs::metadata(&file)?.len() as f64 / 1e6;
    let f32_megabytes = (row_count * (FEATURES + 1) * 4) as f64 / 1e6;
    let shape = format!("{row_count} rows × {FEATURES} numeric + label, {megabytes:.0} MB");

    let mut rows = stage_rows(&file, &shape)?;
    let python = std::env::var_os("KILN_PYDATA_PYTHON").map(PathBuf::from);
    let (mut kiln, mut pandas, mut polars) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..if quick { 1 } else { ROUNDS } {
        kiln.push(kiln_round(&file)?);
        if let Some(python) = &python {
            pandas.push(python_round(python, "pandas", &file)?);
            polars.push(python_round(python, "polars", &file)?);
        }
    }
    let kiln_secs = median(kiln.iter().map(|(secs, _)| *secs).collect());
    let kiln_peak = median(kiln.iter().map(|(_, mib)| *mib).collect());
    rows.push(row(
        "loading",
        "Kiln: file → encoded train/valid matrices",
        format!("{kiln_secs:.2} s"),
        format!(
            "{shape}; rounds {}",
            rounds_text(&kiln, |(secs, _)| format!("{secs:.2}"))
        ),
    ));
    rows.push(row(
        "loading",
        "Kiln: peak resident memory",
        format!("{kiln_peak:.0} MiB"),
        format!(
            "{:.1}× the data as f32 ({f32_megabytes:.0} MB); goal ≤ 3×; rounds {}",
            kiln_peak * 1.048_576 / f32_megabytes,
            rounds_text(&kiln, |(_, mib)| format!("{mib:.0}"))
        ),
    ));
    if !quick {
        // Ten times the rows: the time and memory should grow with the data, and stay in RAM.
        let large = work.join("wide-large.csv");
        write_csv(&large, row_count * 10)?;
        let megabytes = std::fs::metadata(&large)?.len() as f64 / 1e6;
        let f32_megabytes = (row_count * 10 * (FEATURES + 1) * 4) as f64 / 1e6;
        let (secs, mib) = kiln_round(&large)?;
        std::fs::remove_file(&large)?;
        rows.push(row(
            "loading",
            "Kiln: a file ten times larger",
            format!("{secs:.2} s, {mib:.0} MiB"),
            format!(
                "{} rows, {megabytes:.0} MB; peak {:.1}× the data as f32 ({f32_megabytes:.0} MB)",
                row_count * 10,
                mib * 1.048_576 / f32_megabytes
            ),
        ));
    }
    for (name, rounds) in [("pandas", &pandas), ("polars", &polars)] {
        if rounds.is_empty() {
            continue;
        }
        let secs = median(rounds.iter().map(|(secs, _)| *secs).collect());
        let peak = median(rounds.iter().map(|(_, mib)| *mib).collect());
        rows.push(row(
            "loading",
            format!("{name} read_csv"),
            format!("{secs:.2} s, {peak:.0} MiB"),
            format!(
                "Kiln / {name}: {:.1}× the time; rounds {}",
                kiln_secs / secs,
                rounds_text(rounds, |(secs, mib)| format!("{secs:.2} s {mib:.0} MiB"))
            ),
        ));
    }
    if python.is_none() {
        rows.push(row(
            "loading",
            "pandas / polars",
            "not measured".to_string(),
            "set KILN_PYDATA_PYTHON to a Python with pandas and polars".to_string(),
        ));
    }
    Ok(rows)
}

/// Each step of `prepare` timed once in this process, to show where the time goes.
fn stage_rows(file: &Path, shape: &str) -> anyhow::Result<Vec<Row>> {
    use kiln::data::{DataSpec, Preprocessor, fingerprint_hashed, infer_schema, load_csv_hashed};
    let spec = DataSpec::new(file);
    let mut stages = Vec::new();
    let mut timed = |name: &str, started: Instant| {
        stages.push(format!("{name} {:.2}", started.elapsed().as_secs_f64()))
    };
    let started = Instant::now();
    let (table, content_sha256) = load_csv_hashed(file, &[])?;
    timed("read, hash and parse", started);
    let started = Instant::now();
    let (schema, _) = infer_schema(&table, &spec)?;
    timed("schema", started);
    let started = Instant::now();
    let _ = fingerprint_hashed(&content_sha256, &spec, &table, &schema, None);
    timed("fingerprint", started);
    let started = Instant::now();
    let split =
        kiln::data::split_indices(&table, &schema, spec.valid_fraction, 0.0, spec.split_seed)
            .map_err(anyhow::Error::msg)?;
    timed("split", started);
    let started = Instant::now();
    let preprocessor = Preprocessor::fit(&table, &schema, &split.train);
    timed("fit", started);
    let started = Instant::now();
    preprocessor.encode_rows(&table, &schema, &split.train, false)?;
    preprocessor.encode_rows(&table, &schema, &split.valid, false)?;
    timed("encode", started);
    Ok(vec![row(
        "loading",
        "Kiln: where the time goes (s)",
        stages.join(", "),
        shape.to_string(),
    )])
}

fn kiln_round(file: &Path) -> anyhow::Result<(f64, f64)> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--load-once").arg(file);
    timed_round(&mut command, "loading")
}

fn python_round(python: &Path, library: &str, file: &Path) -> anyhow::Result<(f64, f64)> {
    let script = format!(
        "import sys, time\nimport {library}\nstarted = time.perf_counter()\nframe = {library}.read_csv(sys.argv[1])\nsecs = time.perf_counter() - started\nassert frame.shape[0] > 0\npeak = [line.split()[1] for line in open(\"/proc/self/status\") if line.startswith(\"VmHWM:\")][0]\nprint(secs, peak)\n"
    );
    let mut command = Command::new(python);
    command.arg("-c").arg(script).arg(file);
    timed_round(&mut command, library)
}

/// Runs a round in its own process, which prints "SECONDS PEAK_KIB": (seconds, MiB).
fn timed_round(command: &mut Command, what: &str) -> anyhow::Result<(f64, f64)> {
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut words = text.split_whitespace();
    let secs: f64 = words.next().context("no time")?.parse()?;
    let kib: f64 = words.next().context("no peak")?.parse()?;
    Ok((secs, kib / 1024.0))
}

fn rounds_text(rounds: &[(f64, f64)], text: impl Fn(&(f64, f64)) -> String) -> String {
    rounds.iter().map(text).collect::<Vec<_>>().join(", ")
}

/// Standard-normal features with five decimals and a label of three classes, seeded.
fn write_csv(path: &Path, row_count: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    writeln!(out, "{},label", header.join(","))?;
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..row_count {
        for _ in 0..FEATURES {
            // The sum of 12 uniforms minus 6: close enough to normal for a parser.
            let value: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
            write!(out, "{value:.5},")?;
        }
        let label = ["a", "b", "c"][rng.random_range(0..3)];
        writeln!(out, "{label}")?;
    }
    out.flush()?;
    Ok(())
}
