//! `kiln doctor`: the device doctor's report in the terminal (or as JSON), with its exit code;
//! and the hidden `kiln step-check`, one training step compared between wgpu and the CPU.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::train::doctor::{
    BenchLimits, BenchProgress, BenchSection, DEFAULT_WORKLOADS, DoctorReport, WorkloadResult,
    bench_and_record, bench_targets_on, compare_step, diagnose, named, records_path,
};
use crate::train::{DeviceChoice, resolve};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also time a few hundred training steps of each bench model on each usable device (the
    /// CPU and the wgpu adapters), and keep the record `auto` compares devices with.
    #[arg(long)]
    pub bench: bool,
    /// Steady-state steps per model and device, at least 1.
    #[arg(long, default_value_t = BenchLimits::default().steps)]
    pub steps: usize,
    /// Seconds at most for the steady-state steps of one model on one device, above 0.
    #[arg(long, default_value_t = BenchLimits::default().budget.as_secs_f64())]
    pub budget: f64,
    /// Bench models, comma-separated: launch (the per-step overhead), mlp, cnn, cnn-b32,
    /// mlp-wide, cnn-rgb32 [default: launch,mlp,cnn]
    #[arg(long, value_delimiter = ',')]
    pub workloads: Option<Vec<String>>,
    /// Which devices to bench: all (the CPU and every usable wgpu adapter), cpu or wgpu.
    #[arg(long, default_value = "all", value_parser = ["all", "cpu", "wgpu"])]
    pub devices: String,
    /// Do not write the bench record.
    #[arg(long)]
    pub no_record: bool,
}

pub(super) fn doctor(args: &DoctorArgs) -> Result<ExitCode> {
    let mut report = diagnose();
    if args.bench {
        report = report.with_bench(bench(args)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn bench(args: &DoctorArgs) -> Result<BenchSection> {
    let ids = args
        .workloads
        .clone()
        .unwrap_or_else(|| DEFAULT_WORKLOADS.iter().map(|id| id.to_string()).collect());
    let workloads = named(&ids).map_err(anyhow::Error::msg)?;
    if !(args.budget > 0.0 && args.budget.is_finite()) || args.steps == 0 {
        bail!("--steps and --budget must be above 0");
    }
    let limits = BenchLimits {
        steps: args.steps,
        budget: Duration::from_secs_f64(args.budget),
    };
    let path = records_path();
    let mut last = String::new();
    let mut progress = |at: &BenchProgress| {
        let now = format!("bench: {} — {}", at.device, at.workload);
        if now != last {
            eprintln!("{now} ({:.0} % done)", at.fraction * 100.0);
            last = now;
        }
    };
    let only = (args.devices != "all").then_some(args.devices.as_str());
    let never = AtomicBool::new(false);
    Ok(bench_and_record(
        bench_targets_on(only),
        &workloads,
        limits,
        (!args.no_record).then_some(path.as_path()),
        &mut progress,
        &never,
    ))
}

fn print_report(report: &DoctorReport) {
    println!(
        "Kiln {} device doctor (burn {})\n",
        report.kiln_version, report.burn_version
    );
    println!("Verdict: {}", report.verdict.summary);
    for fix in &report.verdict.fixes {
        println!("  fix: {fix}");
    }
    println!("\nwgpu adapters (every graphics API):");
    if report.adapters.is_empty() {
        println!("  none");
    }
    for adapter in &report.adapters {
        let driver = [adapter.driver.as_str(), adapter.driver_info.as_str()]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "  {} — {} {}, vendor {:#06x}, device {:#06x}, driver {driver}",
            adapter.name, adapter.backend, adapter.device_type, adapter.vendor, adapter.device,
        );
    }
    match (&report.wgpu_adapter, &report.wgpu_error) {
        (Some(adapter), _) => println!("burn's wgpu runtime starts on: {}", adapter.describe()),
        (None, Some(error)) => println!("burn's wgpu runtime does not start: {error}"),
        (None, None) => {}
    }
    println!(
        "auto picks: {} — {} ({})",
        report.auto.backend, report.auto.adapter, report.auto.reason
    );
    if !report.auto_by_model.is_empty() {
        println!("auto for particular models, by the bench record:");
        for pick in &report.auto_by_model {
            println!("  {} → {}: {}", pick.model, pick.device, pick.why);
        }
    }
    print_vulkan(report);
    match &report.nvidia {
        Some(driver) => println!(
            "NVIDIA driver: {}{}{}",
            driver.version.as_deref().unwrap_or("version unknown"),
            if driver.gpus.is_empty() {
                String::new()
            } else {
                format!(", GPUs: {}", driver.gpus.join(", "))
            },
            driver
                .container_capabilities
                .as_ref()
                .map(|caps| format!(", NVIDIA_DRIVER_CAPABILITIES={caps}"))
                .unwrap_or_default()
        ),
        None => println!("NVIDIA driver: none found"),
    }
    if !report.environment.is_empty() {
        println!("Environment:");
        for (name, value) in &report.environment {
            println!("  {name}={value}");
        }
    }
    println!("Autotune cache: {}", report.autotune.summary);
    print_records(report);
    if let Some(bench) = &report.bench {
        print_bench(bench);
    }
    println!(
        "\nexit code {}: {}",
        report.exit_code(),
        exit_meaning(report.exit_code())
    );
}

fn print_vulkan(report: &DoctorReport) {
    let vulkan = &report.vulkan;
    match (&vulkan.loader, &vulkan.loader_error) {
        (Some(path), _) => println!("Vulkan loader: {path}"),
        (None, Some(error)) => println!("Vulkan loader: missing ({error})"),
        (None, None) => {}
    }
    if let Some(set) = &vulkan.driver_override {
        println!("Driver search replaced by {}={}", set.variable, set.value);
    }
    let searched: Vec<String> = vulkan
        .searched
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("Vulkan driver files (searched {}):", searched.join(", "));
    if vulkan.drivers.is_empty() {
        println!("  none");
    }
    let line = |driver: &crate::train::doctor::DriverFile| {
        format!(
            "  {} → {}{}{}",
            driver.path.display(),
            driver.library.as_deref().unwrap_or("?"),
            driver
                .api_version
                .as_ref()
                .map(|v| format!(" (Vulkan {v})"))
                .unwrap_or_default(),
            match (&driver.problem, driver.is_software()) {
                (Some(problem), _) => format!(": {problem}"),
                (None, true) => ", software".to_string(),
                (None, false) => String::new(),
            }
        )
    };
    for driver in &vulkan.drivers {
        println!("{}", line(driver));
    }
    if !vulkan.unsearched_drivers.is_empty() {
        println!("Driver files the loader does not search:");
        for driver in &vulkan.unsearched_drivers {
            println!("{}", line(driver));
        }
    }
}

fn print_records(report: &DoctorReport) {
    match (&report.records, &report.records_error) {
        (_, Some(error)) => println!("Bench record: {error}"),
        (Some(records), None) if !records.devices.is_empty() => {
            println!("Bench record: {}", report.records_path.display());
            for device in &records.devices {
                println!(
                    "  {} (measured {}, {} models)",
                    device.label,
                    device.measured.get(..16).unwrap_or(&device.measured),
                    device.results.len()
                );
            }
        }
        _ => println!(
            "Bench record: none yet at {} (run `kiln doctor --bench` to let auto compare devices)",
            report.records_path.display()
        ),
    }
}

fn print_bench(bench: &BenchSection) {
    println!(
        "\nBench: bare training loop (Adam, random data already on the device), {} steady steps or {:.0} s per model and device",
        bench.steps, bench.budget_secs
    );
    println!(
        "  {:<52} {:<58} {:>10} {:>10} {:>11} {:>11} {:>8}",
        "device", "model", "samples/s", "step", "first step", "warm first", "GFLOP/s"
    );
    for device in &bench.devices {
        if let Some(error) = &device.error {
            println!("  {:<52} failed to start: {error}", device.label);
        }
        for outcome in &device.results {
            match &outcome.result {
                Ok(result) => println!("  {:<52} {}", device.label, bench_row(result)),
                Err(error) => println!(
                    "  {:<52} {:<58} failed: {error}",
                    device.label, outcome.workload
                ),
            }
        }
    }
    for skipped in &bench.skipped {
        println!("  skipped {}: {}", skipped.label, skipped.why);
    }
    match &bench.record {
        Ok(path) => println!("Record written to {}", path.display()),
        Err(why) => println!("Record {why}"),
    }
}

fn bench_row(result: &WorkloadResult) -> String {
    format!(
        "{:<58} {:>10.0} {:>7.3} ms {:>9.3} s {:>9.3} s {:>8.1}",
        result.description,
        result.samples_per_sec,
        result.step_secs * 1e3,
        result.first_step_secs,
        result.warm_first_step_secs,
        result.gflops()
    )
}

/// What each exit code of `kiln doctor` means (docs/cli.md lists them too).
pub fn exit_meaning(code: u8) -> &'static str {
    match code {
        0 => "a GPU is usable through wgpu",
        3 => "no usable GPU: training runs on the CPU (see the fix above)",
        4 => {
            "a GPU is there but burn's wgpu runtime failed to start on it: training runs on the CPU"
        }
        5 => "a bench model failed on some device",
        _ => "the doctor itself failed",
    }
}

#[derive(Debug, Args)]
pub struct StepCheckArgs {
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// The models to compare, comma-separated: launch, mlp, cnn, cnn-b32, mlp-wide, cnn-rgb32.
    #[arg(long, value_delimiter = ',', default_value = "mlp,cnn")]
    pub workloads: Vec<String>,
}

/// One training step on wgpu against the CPU; an error when they disagree beyond the tolerance.
pub(super) fn step_check(args: &StepCheckArgs) -> Result<()> {
    let workloads = named(&args.workloads).map_err(anyhow::Error::msg)?;
    let wgpu = resolve(DeviceChoice::Wgpu)?;
    let mut results = Vec::new();
    for workload in &workloads {
        results.push(
            compare_step(workload, &wgpu.device, &wgpu.info.adapter)
                .map_err(|error| anyhow::anyhow!("{}: {error}", workload.id))?,
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            println!(
                "{} on {}: loss {:.6} (cpu) vs {:.6} (wgpu); largest difference: outputs {:.2e}, gradients {:.2e} ({}), weights after one Adam step {:.2e}; {}",
                r.description,
                r.wgpu_adapter,
                r.loss_cpu,
                r.loss_wgpu,
                r.outputs_max_diff,
                r.gradients_max_diff,
                r.gradients_worst_tensor,
                r.adam_weights_max_diff,
                if r.agrees { "agree" } else { "DISAGREE" }
            );
        }
    }
    if results.iter().any(|r| !r.agrees) {
        bail!(
            "wgpu and the CPU disagree by more than {:.0e}",
            crate::train::doctor::TOLERANCE
        );
    }
    Ok(())
}
