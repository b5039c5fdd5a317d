//! `kiln doctor` on this machine (Mesa's lavapipe, or a real GPU), with no Vulkan driver at all,
//! its bench record, and `auto` choosing between a GPU and the CPU by (fake) bench records.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::text;
use kiln::data::InputShape;
use kiln::model::{MlpConfig, ModelConfig};
use kiln::train::AdapterSummary;
use kiln::train::doctor::{
    BenchRecords, DeviceRecord, ModelCost, ModelFamily, WorkloadResult, auto_by_model,
    compare_devices, cpu_key, gpu_key,
};

/// `kiln doctor ARGS` with the bench record kept in `cache` and extra environment variables.
fn doctor(cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .arg("doctor")
        .args(args)
        .env("KILN_CACHE_DIR", cache)
        .env_remove("VK_ICD_FILENAMES")
        .env_remove("VK_DRIVER_FILES");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("kiln doctor runs")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn doctor_on_this_machine_reports_its_adapters_and_the_verdict_as_its_exit_code() {
    let cache = tempfile::tempdir().unwrap();
    let output = doctor(cache.path(), &["--json"], &[]);
    let report = json(&output);
    let adapters = report["adapters"].as_array().expect("adapters");
    assert!(
        !adapters.is_empty(),
        "wgpu finds an adapter (is mesa-vulkan-drivers installed?): {report}"
    );
    assert!(
        report["vulkan"]["loader"].is_string(),
        "the Vulkan loader is found: {}",
        report["vulkan"]
    );
    let fixes = strings(&report["verdict"]["fixes"]);
    let hardware = adapters.iter().any(|a| a["software"] == false);
    if hardware {
        // A machine with a real GPU.
        assert_eq!(report["verdict"]["health"], "gpu_ready", "{report}");
        assert_eq!(output.status.code(), Some(0));
        assert_eq!(report["auto"]["backend"], "wgpu");
    } else {
        // This project's CI: Mesa's software Vulkan driver only.
        assert_eq!(report["verdict"]["health"], "software_only", "{report}");
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(report["auto"]["backend"], "cpu");
        assert!(
            adapters.iter().any(
                |a| a["name"].as_str().is_some_and(|n| n.contains("llvmpipe"))
                    && a["backend"] == "Vulkan"
                    && a["device_type"] == "Cpu"
                    && a["vendor"].is_u64()
            ),
            "lavapipe is listed with its API, type and vendor: {adapters:?}"
        );
        let drivers = report["vulkan"]["drivers"].as_array().expect("drivers");
        assert!(
            drivers.iter().any(|d| d["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("lvp_icd.x86_64.json"))),
            "lavapipe's driver file is found: {drivers:?}"
        );
        assert!(!fixes.is_empty(), "a fix is named: {report}");
        assert!(
            fixes.iter().any(|f| f.contains("nvidia-vulkan-icd")),
            "{fixes:?}"
        );
    }
    assert_eq!(
        report["autotune"]["persistent"], false,
        "{}",
        report["autotune"]
    );

    let output = doctor(cache.path(), &[], &[]);
    let printed = text(&output.stdout);
    assert!(printed.contains("Verdict: "), "{printed}");
    assert!(printed.contains("Vulkan loader: "), "{printed}");
    let code = output.status.code().expect("an exit code");
    assert!(
        printed.contains(&format!("exit code {code}: ")),
        "the text names its exit code: {printed}"
    );
}

/// Without a desktop session, Mesa's device-selection layer made libwayland print an error for
/// every Vulkan instance; the report alone is what a user sees now.
#[test]
fn doctor_without_a_desktop_session_prints_no_library_noise() {
    let cache = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .args(["devices"])
        .env("KILN_CACHE_DIR", cache.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("NODEVICE_SELECT")
        .env_remove("RUST_LOG")
        .env_remove("VK_ICD_FILENAMES")
        .env_remove("VK_DRIVER_FILES");
    let output = command.output().expect("kiln devices runs");
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("XDG_RUNTIME_DIR") && !stderr.contains("WARN"),
        "{stderr}"
    );
}

#[test]
fn doctor_without_any_vulkan_driver_names_the_fix_and_exits_3() {
    let cache = tempfile::tempdir().unwrap();
    let nowhere = cache.path().join("no-such-driver.json");
    let nowhere = nowhere.to_str().unwrap();
    let env = [("VK_ICD_FILENAMES", nowhere), ("VK_DRIVER_FILES", nowhere)];
    let output = doctor(cache.path(), &["--json"], &env);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let report = json(&output);
    assert!(
        report["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["backend"] != "Vulkan"),
        "Vulkan offers nothing: {}",
        report["adapters"]
    );
    assert_eq!(report["vulkan"]["drivers"], serde_json::json!([]));
    assert_eq!(
        report["vulkan"]["driver_override"]["variable"], "VK_DRIVER_FILES",
        "the newer variable wins"
    );
    assert_eq!(report["auto"]["backend"], "cpu");
    let fixes = strings(&report["verdict"]["fixes"]);
    assert!(
        fixes
            .iter()
            .any(|f| f.starts_with(&format!("VK_DRIVER_FILES={nowhere} names no file"))),
        "{fixes:?}"
    );
    assert!(
        fixes
            .iter()
            .any(|f| f.contains("sudo apt-get install libvulkan1 mesa-vulkan-drivers")),
        "{fixes:?}"
    );

    let output = doctor(cache.path(), &[], &env);
    assert_eq!(output.status.code(), Some(3));
    let printed = text(&output.stdout);
    assert!(
        printed.contains("fix: VK_DRIVER_FILES="),
        "the text names the fix: {printed}"
    );
    assert!(printed.contains("exit code 3: no usable GPU"), "{printed}");
}

#[test]
fn the_bench_times_the_cpu_and_keeps_its_record_where_kiln_cache_dir_says() {
    let cache = tempfile::tempdir().unwrap();
    let output = doctor(
        cache.path(),
        &[
            "--json",
            "--bench",
            "--devices",
            "cpu",
            "--workloads",
            "launch,mlp",
            "--steps",
            "10",
            "--budget",
            "5",
        ],
        &[],
    );
    let report = json(&output);
    let bench = &report["bench"];
    let cpu = &bench["devices"][0];
    assert_eq!(cpu["backend"], "cpu", "{bench}");
    let results = cpu["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{bench}");
    for outcome in results {
        let result = &outcome["result"]["Ok"];
        assert!(result["step_secs"].as_f64().unwrap() > 0.0, "{outcome}");
        assert!(result["first_step_secs"].as_f64().unwrap() > 0.0);
        assert!(result["warm_first_step_secs"].as_f64().unwrap() > 0.0);
        assert!(result["samples_per_sec"].as_f64().unwrap() > 0.0);
        assert_eq!(result["steps"], 10);
    }
    assert_eq!(
        results[1]["result"]["Ok"]["description"],
        "mlp 64→256→256→10 relu, batch 256"
    );

    let path = cache.path().join("device-bench.json");
    assert_eq!(bench["record"]["Ok"], path.to_str().unwrap());
    let records = BenchRecords::load(&path).expect("the record reads back");
    let record = records.find(&cpu_key()).expect("the CPU's record");
    assert_eq!(record.results.len(), 2);
    assert_eq!(report["records_path"], path.to_str().unwrap());
}

fn fake_adapter() -> AdapterSummary {
    AdapterSummary {
        name: "NVIDIA H100 80GB HBM3".to_string(),
        backend: "Vulkan".to_string(),
        software: false,
        vendor: 0x10de,
        device: 0x2330,
        device_type: "DiscreteGpu".to_string(),
        driver: "NVIDIA".to_string(),
        driver_info: "580.159.04".to_string(),
    }
}

fn timing(
    workload: &str,
    family: ModelFamily,
    batch: usize,
    flops: f64,
    step_secs: f64,
) -> WorkloadResult {
    WorkloadResult {
        workload: workload.to_string(),
        description: workload.to_string(),
        family,
        batch,
        training_flops_per_sample: flops,
        steps: 300,
        first_step_secs: 1.0,
        warm_first_step_secs: 0.01,
        step_secs,
        samples_per_sec: batch as f64 / step_secs,
        final_loss: 2.3,
    }
}

fn record(key: String, backend: &str, results: Vec<WorkloadResult>) -> DeviceRecord {
    DeviceRecord {
        key,
        backend: backend.to_string(),
        label: backend.to_string(),
        software: false,
        measured: "2026-11-27T10:00:00+00:00".to_string(),
        kiln_version: "0.1.0".to_string(),
        results,
    }
}

/// A GPU with a large fixed cost per step (0.5 ms) and a high rate (10 TFLOP/s), and a CPU with
/// a small fixed cost (20 µs) and a low rate (50 GFLOP/s), as the doctor bench would record
/// them; written to and read from a record file as `auto` reads it.
fn fake_records(dir: &Path) -> BenchRecords {
    let mlp_flops = 506_880.0;
    let cnn_flops = 600_000.0;
    let gpu = record(
        gpu_key(&fake_adapter()),
        "wgpu",
        vec![
            timing("launch", ModelFamily::Mlp, 16, 1728.0, 0.5e-3),
            timing(
                "mlp",
                ModelFamily::Mlp,
                256,
                mlp_flops,
                0.5e-3 + 256.0 * mlp_flops / 10e12,
            ),
            timing(
                "cnn",
                ModelFamily::Cnn,
                128,
                cnn_flops,
                1.5e-3 + 128.0 * cnn_flops / 5e12,
            ),
        ],
    );
    let cpu = record(
        cpu_key(),
        "cpu",
        vec![
            timing("launch", ModelFamily::Mlp, 16, 1728.0, 20e-6),
            timing(
                "mlp",
                ModelFamily::Mlp,
                256,
                mlp_flops,
                20e-6 + 256.0 * mlp_flops / 50e9,
            ),
            timing(
                "cnn",
                ModelFamily::Cnn,
                128,
                cnn_flops,
                50e-6 + 128.0 * cnn_flops / 10e9,
            ),
        ],
    );
    let mut records = BenchRecords::default();
    records.upsert(gpu);
    records.upsert(cpu);
    let path = dir.join("device-bench.json");
    records.save(&path).unwrap();
    BenchRecords::load(&path).unwrap()
}

fn mlp_cost(widths: &[usize], batch: usize) -> ModelCost {
    let model = ModelConfig::Mlp(MlpConfig {
        hidden: widths[1..widths.len() - 1].to_vec(),
        ..MlpConfig::default()
    });
    ModelCost::of(
        &model,
        &InputShape::Flat(widths[0]),
        widths[widths.len() - 1],
        batch,
    )
}

#[test]
fn auto_picks_the_device_that_is_faster_for_the_model_at_hand() {
    let dir = tempfile::tempdir().unwrap();
    let records = fake_records(dir.path());
    let gpu = fake_adapter();

    // iris with Kiln's default MLP at batch 16: the GPU's fixed cost per step dominates.
    let small = compare_devices(&records, &gpu, &mlp_cost(&[4, 64, 64, 3], 16)).expect("compared");
    assert!(small.cpu_is_faster(), "{small:?}");
    assert!(
        small.explain().starts_with("the CPU is faster than the GPU NVIDIA H100 80GB HBM3 for this model by the doctor bench of 2026-11-27"),
        "{}",
        small.explain()
    );

    // A wide MLP at batch 1024: arithmetic dominates and the GPU wins.
    let wide =
        compare_devices(&records, &gpu, &mlp_cost(&[784, 1024, 1024, 10], 1024)).expect("compared");
    assert!(!wide.cpu_is_faster(), "{wide:?}");
    assert!(
        wide.explain()
            .starts_with("the GPU NVIDIA H100 80GB HBM3 is faster than the CPU")
    );
    // 10 TFLOP/s against 50 GFLOP/s, less the fixed costs: about 200× per sample.
    let ratio = wide.cpu_secs_per_sample / wide.gpu_secs_per_sample;
    assert!((100.0..250.0).contains(&ratio), "{ratio}");

    // The same per-step cost spread over a larger batch moves the same model to the GPU.
    let batch_16 = compare_devices(&records, &gpu, &mlp_cost(&[64, 256, 256, 10], 16)).unwrap();
    let batch_1024 = compare_devices(&records, &gpu, &mlp_cost(&[64, 256, 256, 10], 1024)).unwrap();
    assert!(batch_16.cpu_is_faster(), "{batch_16:?}");
    assert!(!batch_1024.cpu_is_faster(), "{batch_1024:?}");

    // The picks the doctor shows per model follow the same rule.
    let picks = auto_by_model(&records, &gpu);
    let iris = picks.iter().find(|p| p.model.contains("(iris)")).unwrap();
    assert_eq!(iris.device, "cpu");
    let wide = picks
        .iter()
        .find(|p| p.model.starts_with("mlp 784→1024→1024→10"))
        .unwrap();
    assert_eq!(wide.device, "wgpu (NVIDIA H100 80GB HBM3)");
}

#[test]
fn without_a_record_for_both_devices_auto_has_no_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = fake_records(dir.path());
    let cost = mlp_cost(&[4, 64, 64, 3], 16);
    let mut other_gpu = fake_adapter();
    other_gpu.device = 0x2335;
    assert_eq!(compare_devices(&records, &other_gpu, &cost), None);
    records.devices.retain(|d| d.backend != "cpu");
    assert_eq!(compare_devices(&records, &fake_adapter(), &cost), None);
    assert!(
        BenchRecords::load(&dir.path().join("none.json"))
            .unwrap()
            .devices
            .is_empty(),
        "no record file is an empty record"
    );
}

#[test]
fn doctor_reads_the_record_kiln_cache_dir_points_at() {
    let cache = tempfile::tempdir().unwrap();
    fake_records(cache.path());
    let report = json(&doctor(cache.path(), &["--json"], &[]));
    let devices = report["records"]["devices"].as_array().expect("records");
    assert_eq!(devices.len(), 2, "{}", report["records"]);

    std::fs::write(cache.path().join("device-bench.json"), "{ torn").unwrap();
    let report = json(&doctor(cache.path(), &["--json"], &[]));
    let error = report["records_error"]
        .as_str()
        .expect("a broken record is reported");
    assert!(error.contains("device-bench.json"), "{error}");
}
