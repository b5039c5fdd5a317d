//! The fuzz targets: every parser Kiln runs on files it did not write — CSV loading and schema
//! inference, IDX, image decoding, the run store's files, the model card and bundle loading.
//! Each takes arbitrary bytes and must return (an error is fine), never panic or hang.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln::data::{
    ChannelMode, ColumnChoices, DataSpec, ImageOptions, TaskOverride, decode_image, parse_idx,
    prepare_bytes, prepare_images,
};
use kiln::export::{ExportOptions, LoadedModel, ModelCard, export_checkpoint, verify_bundle};
use kiln::model::{MlpConfig, ModelConfig};
use kiln::runs::{
    CheckpointSelector, ConfusionLog, MetricsLog, RunStore, class_report, macro_precision_recall,
};
use kiln::train::{DeviceChoice, TrainConfig, TrainRequest, start};

use super::driver::Target;

#[allow(dead_code)] // the example lists them; the tests name each
pub const NAMES: [&str; 9] = [
    "csv",
    "idx",
    "image",
    "run_json",
    "index_json",
    "metrics_jsonl",
    "confusion_jsonl",
    "model_card",
    "bundle",
];

pub fn by_name(name: &str) -> Option<Target> {
    Some(match name {
        "csv" => csv(),
        "idx" => idx(),
        "image" => image(),
        "run_json" => run_json(),
        "index_json" => index_json(),
        "metrics_jsonl" => metrics_jsonl(),
        "confusion_jsonl" => confusion_jsonl(),
        "model_card" => model_card(),
        "bundle" => bundle(),
        _ => return None,
    })
}

const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e400",
    b"18446744073709551616",
    b"\"../../x\"",
    b"\"/etc/passwd\"",
    b"\"..\"",
    b"\"NaN\"",
    b"\"inf\"",
    b"1000000000000",
    b"\"\"",
    b"\\u0000",
];

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample_data")
        .join(name)
}

fn csv() -> Target {
    let iris = std::fs::read(sample("iris.csv")).unwrap_or_default();
    let head: Vec<u8> = iris
        .split(|&b| b == b'\n')
        .take(25)
        .collect::<Vec<_>>()
        .join(&b'\n');
    let seeds = vec![
        head.clone(),
        String::from_utf8_lossy(&head).replace('\n', "\r\n").into_bytes(),
        b"a,b,c,label\n1,x,\"multi\nline\",yes\n2,y,3,no\n3,x,4,yes\n4,y,5,no\n5,x,NaN,yes\n6,y,7,no\n".to_vec(),
        b"id,b,c,label\n1,1.5,red,0.5\n2,2.5,blue,1.5\n3,?,red,2.5\n4,4.5,,3.5\n5,inf,blue,4.5\n6,6.5,red,5.5\n".to_vec(),
    ];
    let run = |input: &[u8]| {
        let mut spec = DataSpec::new("fuzz.csv");
        let selector = input.first().copied().unwrap_or(0);
        spec.impute_missing = selector & 1 == 1;
        spec.task = match selector % 3 {
            0 => TaskOverride::Auto,
            1 => TaskOverride::Classification,
            _ => TaskOverride::Regression,
        };
        if selector & 4 == 4 {
            spec.columns = ColumnChoices {
                exclude: vec!["id".to_string()],
                categorical: vec!["c".to_string()],
                as_missing: vec!["b".to_string()],
                keep: Vec::new(),
            };
        }
        if let Ok(prepared) = prepare_bytes(&spec, input)
            && let Some(table) = prepared.table()
        {
            // The predict side: the same rows through the fitted preprocessing.
            let rows: Vec<usize> = (0..table.row_count()).collect();
            let _ = prepared
                .preprocessor
                .check_columns(table, &[prepared.schema.target.name.as_str()]);
            let _ = prepared.preprocessor.encode_inputs(table, &rows, false);
            let _ = prepared.golden_candidates(5, 8);
        }
    };
    Target {
        name: "csv",
        seeds,
        tokens: &[
            b",",
            b"\n",
            b"\r\n",
            b"\r",
            b"\"",
            b"\"\"",
            b"NaN",
            b"inf",
            b"-Infinity",
            b"1e39",
            b"?",
            b"NA",
            b"\xEF\xBB\xBF",
            b" ",
            b"0",
            b"-1.5e3",
            b"\xff",
        ],
        run: Box::new(run),
    }
}

fn idx_pair(count: u32, side: u32, labels: &[u8]) -> Vec<u8> {
    let mut images = 0x0000_0803u32.to_be_bytes().to_vec();
    for size in [count, side, side] {
        images.extend(size.to_be_bytes());
    }
    images.extend((0..count * side * side).map(|i| (i * 37 % 256) as u8));
    let mut label_bytes = 0x0000_0801u32.to_be_bytes().to_vec();
    label_bytes.extend(count.to_be_bytes());
    label_bytes.extend_from_slice(labels);
    // Input layout: two bytes giving the images part's length, then both parts.
    let mut input = (images.len() as u16).to_be_bytes().to_vec();
    input.extend(images);
    input.extend(label_bytes);
    input
}

fn idx() -> Target {
    let run = |input: &[u8]| {
        if input.len() < 3 {
            return;
        }
        let split = (usize::from(u16::from_be_bytes([input[0], input[1]])) + 2).min(input.len());
        let options = ImageOptions {
            size: (input[2] & 1 == 1).then_some([4, 4]),
            channels: if input[2] & 2 == 2 {
                ChannelMode::Rgb
            } else {
                ChannelMode::Auto
            },
            ..ImageOptions::default()
        };
        let images = Path::new("fuzz-images-idx3-ubyte");
        let labels = Path::new("fuzz-labels-idx1-ubyte");
        if let Ok(set) = parse_idx(
            (images, &input[2..split]),
            (labels, &input[split..]),
            &options,
        ) {
            let spec = DataSpec {
                images: Some(options),
                ..DataSpec::new(images)
            };
            let _ = prepare_images(&spec, set);
        }
    };
    Target {
        name: "idx",
        seeds: vec![
            idx_pair(6, 4, &[0, 1, 0, 1, 0, 1]),
            idx_pair(10, 3, &[0, 1, 2, 0, 1, 2, 0, 1, 2, 9]),
        ],
        tokens: &[
            b"\x00\x00\x08\x03",
            b"\x00\x00\x08\x01",
            b"\xff\xff\xff\xff",
            b"\x00\x00\x00\x00",
            b"\x1f\x8b",
        ],
        run: Box::new(run),
    }
}

fn image() -> Target {
    let mut seeds: Vec<Vec<u8>> = ["digits/0/0000.png", "digits/1/0001.png"]
        .iter()
        .filter_map(|name| std::fs::read(sample(name)).ok())
        .collect();
    let picture = ::image::RgbImage::from_fn(6, 5, |x, y| {
        ::image::Rgb([(x * 40) as u8, (y * 50) as u8, 128])
    });
    for format in [::image::ImageFormat::Jpeg, ::image::ImageFormat::Png] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        if picture.write_to(&mut bytes, format).is_ok() {
            seeds.push(bytes.into_inner());
        }
    }
    Target {
        name: "image",
        seeds,
        tokens: &[
            b"\x89PNG\r\n\x1a\n",
            b"IHDR",
            b"IDAT",
            b"IEND",
            b"\xff\xd8\xff",
            b"\xff\xd9",
            b"\xff\xff\xff\x7f",
        ],
        run: Box::new(|input: &[u8]| {
            if let Ok(decoded) = decode_image(input) {
                let _ = decoded.to_luma8();
            }
        }),
    }
}

/// A trained iris run (2 epochs, CPU) and its exported bundle, shared by the store and bundle
/// targets as seeds.
struct Fixture {
    _dir: tempfile::TempDir,
    store: PathBuf,
    run_id: String,
    bundle: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = dir.path().join("runs");
        let handle = start(
            TrainRequest {
                data: DataSpec::new(sample("iris.csv")),
                model: ModelConfig::Mlp(MlpConfig::default()),
                train: TrainConfig {
                    epochs: 2,
                    batch_size: 16,
                    ..TrainConfig::default()
                },
                device: DeviceChoice::Cpu,
                name: Some("fuzz".to_string()),
                runs_dir: store.clone(),
            },
            None,
        )
        .expect("the fixture run starts");
        let run_id = handle.run_id.clone();
        handle.wait();
        let bundle = dir.path().join("bundle");
        export_checkpoint(&store, &run_id, &bundle, &ExportOptions::default())
            .expect("the fixture exports");
        Fixture {
            _dir: dir,
            store,
            run_id,
            bundle,
        }
    })
}

fn run_file(relative: &str) -> Vec<u8> {
    let fixture = fixture();
    std::fs::read(fixture.store.join(&fixture.run_id).join(relative)).unwrap_or_default()
}

/// A private copy of the fixture's run folder to write mutated files into.
fn scratch_store() -> (tempfile::TempDir, PathBuf) {
    let fixture = fixture();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let run = dir.path().join(&fixture.run_id);
    copy_dir(&fixture.store.join(&fixture.run_id), &run);
    (dir, run)
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::create_dir_all(to);
    for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            let _ = std::fs::copy(entry.path(), target);
        }
    }
}

fn run_json() -> Target {
    let (dir, run) = scratch_store();
    let root = dir.path().to_path_buf();
    Target {
        name: "run_json",
        seeds: vec![run_file("run.json")],
        tokens: JSON_TOKENS,
        run: Box::new(move |input: &[u8]| {
            let _keep = &dir;
            if std::fs::write(run.join("run.json"), input).is_err() {
                return;
            }
            let Ok(store) = RunStore::open(&root) else {
                return;
            };
            let _ = store.list();
            if let Ok(found) = store.find(&fixture().run_id) {
                let _ = found.status();
                if let Ok(record) = found.read_record() {
                    let _ = record.model_summary();
                    let _ = record.output_width();
                }
            }
        }),
    }
}

fn index_json() -> Target {
    let (dir, run) = scratch_store();
    let root = dir.path().to_path_buf();
    Target {
        name: "index_json",
        seeds: vec![run_file("checkpoints/index.json")],
        tokens: JSON_TOKENS,
        run: Box::new(move |input: &[u8]| {
            let _keep = &dir;
            if std::fs::write(run.join("checkpoints/index.json"), input).is_err() {
                return;
            }
            let Ok(found) = RunStore::open(&root).and_then(|store| store.find(&fixture().run_id))
            else {
                return;
            };
            for selector in [
                CheckpointSelector::Best,
                CheckpointSelector::Last,
                CheckpointSelector::Epoch(1),
            ] {
                if let Ok(entry) = found.checkpoint(&selector) {
                    let _ = found.read_checkpoint_file(&entry.model_file);
                    let _ = entry.class_report();
                }
            }
            // The keep policy, in memory only: fuzzing never deletes files.
            if let Ok(mut index) = found.read_index()
                && let Some(entry) = index.checkpoints.first().cloned()
            {
                let _ = index.insert(entry, 2);
                let _ = index.truncate_after(1);
            }
        }),
    }
}

fn metrics_jsonl() -> Target {
    Target {
        name: "metrics_jsonl",
        seeds: vec![run_file("metrics.jsonl")],
        tokens: JSON_TOKENS,
        run: Box::new(|input: &[u8]| {
            let log = MetricsLog::parse(&String::from_utf8_lossy(input));
            for name in log.metric_names() {
                let _ = log.series(kiln::runs::SplitName::Valid, &name).count();
            }
        }),
    }
}

fn confusion_jsonl() -> Target {
    Target {
        name: "confusion_jsonl",
        seeds: vec![run_file("confusion.jsonl")],
        tokens: JSON_TOKENS,
        run: Box::new(|input: &[u8]| {
            let log = ConfusionLog::parse(&String::from_utf8_lossy(input), usize::MAX);
            for matrix in log.by_epoch.values() {
                let _ = class_report(matrix);
                let _ = macro_precision_recall(matrix);
            }
        }),
    }
}

/// A private copy of the fixture's bundle to write mutated files into.
fn scratch_bundle() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let bundle = dir.path().join("bundle");
    copy_dir(&fixture().bundle, &bundle);
    (dir, bundle)
}

/// Everything a user does with a bundle: open it, predict its golden rows, verify it.
fn use_bundle(bundle: &Path) {
    let _ = ModelCard::locate(bundle);
    if let Ok(model) = LoadedModel::open(bundle) {
        let flat: Vec<f32> = model.card.golden.inputs.iter().flatten().copied().collect();
        let _ = model.predict_encoded(&flat);
    }
    let _ = verify_bundle(bundle);
}

fn model_card() -> Target {
    let (dir, bundle) = scratch_bundle();
    Target {
        name: "model_card",
        seeds: vec![std::fs::read(fixture().bundle.join("model.card.json")).unwrap_or_default()],
        tokens: JSON_TOKENS,
        run: Box::new(move |input: &[u8]| {
            let _keep = &dir;
            if std::fs::write(bundle.join("model.card.json"), input).is_ok() {
                use_bundle(&bundle);
            }
        }),
    }
}

const BUNDLE_FILES: [(&str, &str); 3] = [
    ("burnpack", "model.bpk"),
    ("safetensors", "model.safetensors"),
    ("onnx", "model.onnx"),
];

fn bundle() -> Target {
    let (dir, bundle) = scratch_bundle();
    // Input layout: one byte choosing the weights file, then that file's new content.
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture().bundle.join("model.card.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    let seeds = BUNDLE_FILES
        .iter()
        .enumerate()
        .map(|(index, (_, name))| {
            let mut seed = vec![index as u8];
            seed.extend(std::fs::read(fixture().bundle.join(name)).unwrap_or_default());
            seed
        })
        .collect();
    Target {
        name: "bundle",
        seeds,
        tokens: &[
            b"\x00\x00\x00\x00",
            b"\xff\xff\xff\xff\xff\xff\xff\x7f",
            b"{\"",
            b"F32",
            b"shape",
            b"data_offsets",
        ],
        run: Box::new(move |input: &[u8]| {
            let _keep = &dir;
            let Some((&choice, content)) = input.split_first() else {
                return;
            };
            let (format, name) = BUNDLE_FILES[usize::from(choice) % BUNDLE_FILES.len()];
            for (_, original) in BUNDLE_FILES {
                let _ = std::fs::copy(fixture().bundle.join(original), bundle.join(original));
            }
            // The card vouches for the new file, as an attacker's would, so that every parser
            // reads it rather than stopping at the hash.
            let mut card = card.clone();
            card["files"][format]["sha256"] = serde_json::json!(sha256(content));
            card["files"][format]["bytes"] = serde_json::json!(content.len());
            let card_bytes = serde_json::to_vec(&card).unwrap_or_default();
            if std::fs::write(bundle.join(name), content).is_ok()
                && std::fs::write(bundle.join("model.card.json"), card_bytes).is_ok()
            {
                use_bundle(&bundle);
            }
        }),
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
