//! Using exported models: schema checks and drift warnings on new data.

mod common;

use common::sample;

use std::path::{Path, PathBuf};

use kiln::data::DataSpec;
use kiln::export::{ExportOptions, LoadedModel, export_checkpoint, predict_csv};
use kiln::model::{MlpConfig, ModelConfig};
use kiln::train::{DeviceChoice, TrainConfig, TrainRequest, start};

/// Trains an iris MLP on the CPU and returns the run id.
fn train_iris(runs: &Path, model: MlpConfig, epochs: usize) -> String {
    let handle = start(
        TrainRequest {
            data: DataSpec::new(sample("iris.csv")),
            model: ModelConfig::Mlp(model),
            train: TrainConfig {
                epochs,
                batch_size: 16,
                ..TrainConfig::default()
            },
            device: DeviceChoice::Cpu,
            name: None,
            runs_dir: runs.to_path_buf(),
        },
        None,
    )
    .unwrap();
    let run = handle.run_id.clone();
    handle.wait();
    run
}

/// Trains a small iris model and exports it (burnpack + safetensors) into `dir/bundle`.
fn iris_bundle(dir: &Path) -> LoadedModel {
    let runs = dir.join("runs");
    let run = train_iris(&runs, MlpConfig::default(), 10);
    let bundle = dir.join("bundle");
    let options = ExportOptions {
        onnx: false,
        ..ExportOptions::default()
    };
    export_checkpoint(&runs, &run, &bundle, &options).unwrap();
    LoadedModel::open(&bundle).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn schema_mismatches_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = iris_bundle(dir.path());

    let missing = write(
        dir.path(),
        "missing.csv",
        "sepal_length,sepal_width,petal_length\n5.1,3.5,1.4\n",
    );
    let error = predict_csv(&model, &missing).unwrap_err().to_string();
    assert!(error.contains("lacks the column(s) petal_width"), "{error}");

    let extra = write(
        dir.path(),
        "extra.csv",
        "sepal_length,sepal_width,petal_length,petal_width,colour\n5.1,3.5,1.4,0.2,red\n",
    );
    let error = predict_csv(&model, &extra).unwrap_err().to_string();
    assert!(
        error.contains("colour") && error.contains("does not know"),
        "{error}"
    );

    let mistyped = write(
        dir.path(),
        "mistyped.csv",
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,wide,1.4,0.2\n",
    );
    let error = predict_csv(&model, &mistyped).unwrap_err().to_string();
    assert!(
        error.contains("'sepal_width'") && error.contains("'wide'") && error.contains("line 2"),
        "{error}"
    );

    // The target column may be present (it is ignored), and columns may come in any order.
    let reordered = write(
        dir.path(),
        "reordered.csv",
        "species,petal_width,petal_length,sepal_width,sepal_length\nsetosa,0.2,1.4,3.5,5.1\n",
    );
    let report = predict_csv(&model, &reordered).unwrap();
    assert_eq!(report.predictions[0].class.as_deref(), Some("setosa"));
}

#[test]
fn drift_is_reported_per_feature() {
    let dir = tempfile::tempdir().unwrap();
    let model = iris_bundle(dir.path());
    let report = predict_csv(&model, &sample("iris.csv")).unwrap();
    assert!(
        report.drift.is_empty(),
        "the training data itself does not drift: {:?}",
        report.drift
    );

    let table = kiln::data::load_csv(&sample("iris.csv")).unwrap();
    let mut shifted = table.header.join(",") + "\n";
    for row in table.rows() {
        let sepal_length: f64 = row.get(0).parse().unwrap();
        shifted.push_str(&format!(
            "{},{},{},{},{}\n",
            sepal_length + 3.0,
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4)
        ));
    }
    let path = write(dir.path(), "shifted.csv", &shifted);
    let report = predict_csv(&model, &path).unwrap();
    let columns: Vec<&str> = report.drift.iter().map(|d| d.column.as_str()).collect();
    assert_eq!(columns, vec!["sepal_length"]);
    let message = report.drift[0].to_string();
    assert!(
        message.contains("sepal_length") && message.contains("training std"),
        "{message}"
    );
}

#[test]
fn a_corrupt_weight_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    iris_bundle(dir.path());
    let weights = dir.path().join("bundle/model.bpk");
    std::fs::write(&weights, b"not a burnpack file").unwrap();
    let error = LoadedModel::open(&dir.path().join("bundle"))
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("model.bpk"), "{error}");
    let card = dir.path().join("bundle/model.card.json");
    std::fs::write(&card, b"{").unwrap();
    let error = LoadedModel::open(&dir.path().join("bundle"))
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("not a Kiln model card"), "{error}");
}

#[test]
fn a_gelu_model_exports_without_onnx_and_says_why_onnx_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let gelu = MlpConfig {
        activation: kiln::model::Activation::Gelu,
        ..MlpConfig::default()
    };
    let run = train_iris(&runs, gelu, 2);
    let error = export_checkpoint(
        &runs,
        &run,
        &dir.path().join("a"),
        &ExportOptions::default(),
    )
    .expect_err("refused")
    .to_string();
    assert!(error.contains("gelu"), "{error}");
    assert!(!dir.path().join("a").exists(), "nothing half-written");
    let options = ExportOptions {
        onnx: false,
        ..ExportOptions::default()
    };
    export_checkpoint(&runs, &run, &dir.path().join("b"), &options).unwrap();
    assert!(LoadedModel::open(&dir.path().join("b")).is_ok());
}

#[test]
fn an_export_failing_at_its_last_step_leaves_nothing_and_keeps_what_it_would_replace() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let run = train_iris(&runs, MlpConfig::default(), 2);
    let bundle = dir.path().join("bundle");
    // The card is written last; a folder in its way makes that last step fail.
    std::fs::create_dir_all(bundle.join("model.card.json")).unwrap();
    std::fs::write(bundle.join("model.onnx"), b"an older export").unwrap();
    let options = ExportOptions {
        force: true,
        ..ExportOptions::default()
    };
    let error = export_checkpoint(&runs, &run, &bundle, &options)
        .expect_err("the card cannot be written")
        .to_string();
    assert!(error.contains("model.card.json"), "{error}");
    let mut left: Vec<String> = std::fs::read_dir(&bundle)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["model.card.json", "model.onnx"],
        "no weights, no temp files"
    );
    assert_eq!(
        std::fs::read(bundle.join("model.onnx")).unwrap(),
        b"an older export"
    );
}

/// Trains on iris with one validation row 5,700 training deviations out and exports it.
fn outlier_bundle(dir: &Path) -> (PathBuf, LoadedModel) {
    let (data, outlier) = common::iris_with_outlier(dir);
    let runs = dir.join("runs");
    let handle = start(
        TrainRequest {
            data: DataSpec::new(&data),
            model: ModelConfig::Mlp(MlpConfig::default()),
            train: TrainConfig {
                epochs: 30,
                batch_size: 16,
                ..TrainConfig::default()
            },
            device: DeviceChoice::Cpu,
            name: None,
            runs_dir: runs.clone(),
        },
        None,
    )
    .unwrap();
    let run = handle.run_id.clone();
    handle.wait();
    let bundle = dir.join("bundle");
    export_checkpoint(&runs, &run, &bundle, &ExportOptions::default()).unwrap();
    let model = LoadedModel::open(&bundle).unwrap();
    let golden = &model.card.golden;
    assert!(
        golden
            .raw
            .iter()
            .skip(5)
            .any(|row| row["petal_length"] == outlier),
        "the outlier is among the golden rows: {:?}",
        golden.raw
    );
    (bundle, model)
}

#[test]
fn golden_rows_include_the_largest_logits_and_every_format_reproduces_them_without_nan() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, model) = outlier_bundle(dir.path());
    let golden = &model.card.golden;
    let flat: Vec<f32> = golden.inputs.iter().flatten().copied().collect();
    let logits = model.raw_outputs(&flat).unwrap();
    let largest = logits.iter().fold(0f32, |max, v| max.max(v.abs()));
    assert!(largest >= 1000.0, "logits reach ±1000: {logits:?}");
    assert!(golden.outputs.iter().flatten().all(|p| p.is_finite()));

    let report = kiln::export::verify_bundle(&bundle).unwrap();
    assert!(report.ok(), "{report:?}");
    let formats: Vec<&str> = report.formats.iter().map(|c| c.format.as_str()).collect();
    assert_eq!(formats, ["burnpack", "onnx", "safetensors"]);
    for check in &report.formats {
        assert!(check.max_error.is_some_and(|e| e <= 1e-4), "{check:?}");
    }
    // The same through the command line, one line per format.
    let out = common::kiln(dir.path(), &["verify", bundle.to_str().unwrap()]);
    let stdout = common::text(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        common::text(&out.stderr)
    );
    for format in ["burnpack", "onnx", "safetensors"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(format) && l.contains("largest difference")),
            "{stdout}"
        );
    }
}

#[test]
fn verify_catches_an_onnx_graph_that_disagrees() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, _) = outlier_bundle(dir.path());
    // Change the golden outputs of the extreme row as a NaN-producing graph would have them.
    let path = bundle.join("model.card.json");
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let last = card["golden"]["outputs"].as_array().unwrap().len() - 1;
    card["golden"]["outputs"][last][0] = serde_json::json!(0.5);
    std::fs::write(&path, serde_json::to_vec(&card).unwrap()).unwrap();
    let report = kiln::export::verify_bundle(&bundle).unwrap();
    assert!(!report.ok());
    assert!(
        report
            .formats
            .iter()
            .all(|c| c.max_error.is_some_and(|e| e > 0.1)),
        "{report:?}"
    );
}
