//! The Devices tab: the device doctor's report (what wgpu and Vulkan see, what `auto` picks and
//! why, the fix when no GPU is usable) and its bench with a progress bar. Detection and the bench
//! run on background threads; the tab owns all of its state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::train::doctor::{
    BenchLimits, BenchProgress, BenchSection, DEFAULT_WORKLOADS, DoctorReport, DriverFile, Health,
    Workload, bench_and_record, bench_targets_on, diagnose, named, records_path,
};
use crate::ui::promise::Task;

/// What the tab's bench runs.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    pub workloads: Vec<Workload>,
    pub limits: BenchLimits,
    /// Only devices of this backend (`cpu` or `wgpu`); all when `None`.
    pub only: Option<&'static str>,
    /// Whether the record `auto` reads is written.
    pub write_record: bool,
}

impl Default for BenchPlan {
    fn default() -> Self {
        let ids: Vec<String> = DEFAULT_WORKLOADS.iter().map(|id| id.to_string()).collect();
        Self {
            // The default names are the catalogue's own, so this cannot fail; an empty plan
            // would only make the bench do nothing.
            workloads: named(&ids).unwrap_or_default(),
            limits: BenchLimits::default(),
            only: None,
            write_record: true,
        }
    }
}

/// A bench on its way: its result, where it is, and how to stop it.
struct RunningBench {
    task: Task<BenchSection>,
    progress: Arc<Mutex<Option<BenchProgress>>>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct DevicesPanel {
    plan: BenchPlan,
    report: Option<DoctorReport>,
    detecting: Task<DoctorReport>,
    bench: Option<RunningBench>,
    error: Option<String>,
}

impl DevicesPanel {
    pub fn new(plan: BenchPlan) -> Self {
        Self {
            plan,
            ..Self::default()
        }
    }

    pub fn report(&self) -> Option<&DoctorReport> {
        self.report.as_ref()
    }

    /// Where the running bench is, once it has started a model.
    pub fn bench_progress(&self) -> Option<BenchProgress> {
        let running = self.bench.as_ref()?;
        running.progress.lock().ok()?.clone()
    }

    pub fn is_busy(&self) -> bool {
        self.detecting.is_pending() || self.bench.is_some()
    }

    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.poll();
        if self.report.is_none() && !self.detecting.is_pending() && self.error.is_none() {
            self.detecting.start(ui.ctx(), diagnose);
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let Some(report) = &self.report else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Looking at the GPUs, the Vulkan loader and its drivers…");
            });
            return;
        };
        verdict_ui(ui, report);
        ui.add_space(6.0);
        self.bench_ui(ui);
        ui.add_space(6.0);
        if let Some(report) = &self.report {
            details_ui(ui, report);
        }
    }

    fn poll(&mut self) {
        match self.detecting.take() {
            Some(Ok(report)) => self.report = Some(report),
            Some(Err(crashed)) => {
                self.error = Some(format!("Checking the devices failed: {crashed}"))
            }
            None => {}
        }
        let Some(running) = &mut self.bench else {
            return;
        };
        match running.task.take() {
            Some(Ok(section)) => {
                self.report = self.report.take().map(|report| report.with_bench(section));
                self.bench = None;
            }
            Some(Err(crashed)) => {
                self.error = Some(format!("The bench failed: {crashed}"));
                self.bench = None;
            }
            None => {}
        }
    }

    fn start_bench(&mut self, ctx: &egui::Context) {
        let progress = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let plan = self.plan.clone();
        let (shared, flag, repaint) = (progress.clone(), stop.clone(), ctx.clone());
        let mut task = Task::default();
        task.start(ctx, move || {
            let mut report = |at: &BenchProgress| {
                if let Ok(mut slot) = shared.lock() {
                    *slot = Some(at.clone());
                }
                repaint.request_repaint();
            };
            let record = records_path();
            bench_and_record(
                bench_targets_on(plan.only),
                &plan.workloads,
                plan.limits,
                plan.write_record.then_some(record.as_path()),
                &mut report,
                &flag,
            )
        });
        self.bench = Some(RunningBench {
            task,
            progress,
            stop,
        });
    }

    fn bench_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Bench");
        let models: Vec<String> = self.plan.workloads.iter().map(Workload::describe).collect();
        ui.label(format!(
            "Trains {} steps (at most {:.0} s) of each model on each usable device and times them: {}. The record lets auto choose between the GPU and the CPU for each model.",
            self.plan.limits.steps,
            self.plan.limits.budget.as_secs_f64(),
            models.join("; ")
        ));
        match &self.bench {
            Some(running) => {
                let at = running.progress.lock().ok().and_then(|slot| slot.clone());
                let (fraction, text) = at.map_or((0.0, "starting…".to_string()), |at| {
                    (at.fraction, format!("{} — {}", at.device, at.workload))
                });
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .show_percentage()
                        .text(text),
                );
                let stopping = running.stop.load(Ordering::SeqCst);
                if ui
                    .add_enabled(!stopping, egui::Button::new("Stop the bench"))
                    .clicked()
                {
                    running.stop.store(true, Ordering::SeqCst);
                }
            }
            None => {
                if ui.button("Run the bench").clicked() {
                    self.start_bench(ui.ctx());
                }
            }
        }
        if let Some(bench) = self.report.as_ref().and_then(|r| r.bench.as_ref()) {
            bench_results_ui(ui, bench);
        }
    }
}

fn verdict_ui(ui: &mut egui::Ui, report: &DoctorReport) {
    let color = match report.verdict.health {
        Health::GpuReady => egui::Color32::from_rgb(60, 160, 80),
        _ => ui.visuals().warn_fg_color,
    };
    ui.colored_label(color, egui::RichText::new(&report.verdict.summary).strong());
    for fix in &report.verdict.fixes {
        ui.horizontal_wrapped(|ui| {
            ui.label("Fix:");
            ui.add(egui::Label::new(fix).selectable(true).wrap());
        });
    }
    ui.label(format!(
        "auto trains on: {} — {}",
        report.auto.adapter, report.auto.reason
    ));
    for pick in &report.auto_by_model {
        ui.weak(format!("  {} → {}", pick.model, pick.device))
            .on_hover_text(&pick.why);
    }
}

fn bench_results_ui(ui: &mut egui::Ui, bench: &BenchSection) {
    egui::Grid::new("bench_results")
        .striped(true)
        .num_columns(6)
        .show(ui, |ui| {
            for title in [
                "device",
                "model",
                "samples/s",
                "step",
                "first step",
                "warm first step",
            ] {
                ui.strong(title);
            }
            ui.end_row();
            for device in &bench.devices {
                if let Some(error) = &device.error {
                    ui.label(&device.label);
                    ui.colored_label(ui.visuals().error_fg_color, error);
                    ui.end_row();
                }
                for outcome in &device.results {
                    ui.label(&device.label);
                    match &outcome.result {
                        Ok(result) => {
                            ui.label(&result.description);
                            ui.label(format!("{:.0}", result.samples_per_sec));
                            ui.label(format!("{:.3} ms", result.step_secs * 1e3));
                            ui.label(format!("{:.2} s", result.first_step_secs));
                            ui.label(format!("{:.3} s", result.warm_first_step_secs));
                        }
                        Err(error) => {
                            ui.label(&outcome.workload);
                            ui.colored_label(ui.visuals().error_fg_color, error);
                        }
                    }
                    ui.end_row();
                }
            }
        });
    for skipped in &bench.skipped {
        ui.weak(format!("Skipped {}: {}", skipped.label, skipped.why));
    }
    match &bench.record {
        Ok(path) => ui.weak(format!("Record written to {}", path.display())),
        Err(why) => ui.weak(format!("Record {why}")),
    };
}

fn details_ui(ui: &mut egui::Ui, report: &DoctorReport) {
    egui::CollapsingHeader::new("wgpu adapters")
        .default_open(true)
        .show(ui, |ui| {
            if report.adapters.is_empty() {
                ui.label("None.");
            }
            egui::Grid::new("adapters").striped(true).show(ui, |ui| {
                for title in ["name", "API", "type", "vendor", "driver"] {
                    ui.strong(title);
                }
                ui.end_row();
                for adapter in &report.adapters {
                    ui.label(&adapter.name);
                    ui.label(&adapter.backend);
                    ui.label(&adapter.device_type);
                    ui.label(format!("{:#06x}", adapter.vendor));
                    ui.label(format!("{} {}", adapter.driver, adapter.driver_info));
                    ui.end_row();
                }
            });
            match (&report.wgpu_adapter, &report.wgpu_error) {
                (Some(adapter), _) => {
                    ui.label(format!("--device wgpu starts on {}", adapter.describe()));
                }
                (None, Some(error)) => {
                    ui.label(format!("--device wgpu does not start: {error}"));
                }
                (None, None) => {}
            }
        });
    egui::CollapsingHeader::new("Vulkan loader and drivers").show(ui, |ui| {
        let vulkan = &report.vulkan;
        match (&vulkan.loader, &vulkan.loader_error) {
            (Some(path), _) => ui.label(format!("Loader: {path}")),
            (None, Some(error)) => ui.label(format!("Loader missing: {error}")),
            (None, None) => ui.label("Loader: unknown"),
        };
        if let Some(set) = &vulkan.driver_override {
            ui.label(format!(
                "Driver search replaced by {}={}",
                set.variable, set.value
            ));
        }
        for driver in &vulkan.drivers {
            driver_ui(ui, driver);
        }
        if vulkan.drivers.is_empty() {
            ui.label("No driver files on the search path.");
        }
        for driver in &vulkan.unsearched_drivers {
            ui.label("Not searched by the loader:");
            driver_ui(ui, driver);
        }
    });
    if let Some(driver) = &report.nvidia {
        ui.label(format!(
            "NVIDIA driver: {} {}",
            driver.version.as_deref().unwrap_or("version unknown"),
            driver.gpus.join(", ")
        ));
    }
    ui.label(format!("Autotune: {}", report.autotune.summary));
}

fn driver_ui(ui: &mut egui::Ui, driver: &DriverFile) {
    let text = format!(
        "{} → {}{}",
        driver.path.display(),
        driver.library.as_deref().unwrap_or("?"),
        if driver.is_software() {
            " (software)"
        } else {
            ""
        }
    );
    match &driver.problem {
        Some(problem) => {
            ui.colored_label(ui.visuals().warn_fg_color, format!("{text}: {problem}"));
        }
        None => {
            ui.label(text);
        }
    }
}
