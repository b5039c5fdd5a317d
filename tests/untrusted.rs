//! Bundles and run folders from elsewhere: file names stay inside their folder, sizes are
//! bounded before anything is allocated, and shapes must match the card (issue 14, part 2).

mod common;

use common::sample;

use std::path::{Path, PathBuf};

use kiln::data::DataSpec;
use kiln::export::{ExportOptions, LoadedModel, ModelCard, export_checkpoint, verify_bundle};
use kiln::model::{MlpConfig, ModelConfig};
use kiln::runs::RunStore;
use kiln::train::{DeviceChoice, TrainConfig, TrainRequest, start};

/// A trained iris run in `dir/runs` and its bundle (every format) in `dir/bundle`.
fn bundle(dir: &Path) -> (PathBuf, String, PathBuf) {
    let runs = dir.join("runs");
    let handle = start(
        TrainRequest {
            data: DataSpec::new(sample("iris.csv")),
            model: ModelConfig::Mlp(MlpConfig::default()),
            train: TrainConfig {
                epochs: 3,
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
    (runs, run, bundle)
}

fn edit_card(bundle: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = bundle.join("model.card.json");
    let mut card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut card);
    std::fs::write(&path, serde_json::to_vec(&card).unwrap()).unwrap();
}

fn refusal(bundle: &Path) -> String {
    let open = LoadedModel::open(bundle)
        .err()
        .expect("refused to open")
        .to_string();
    let verify = verify_bundle(bundle)
        .expect_err("refused to verify")
        .to_string();
    assert_eq!(open, verify);
    open
}

#[test]
fn card_file_names_must_be_plain_names_inside_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bundle) = bundle(dir.path());
    // A weights file outside the bundle, which a crafted card points at.
    std::fs::copy(bundle.join("model.bpk"), dir.path().join("outside.bpk")).unwrap();
    let outside = dir.path().join("outside.bpk").display().to_string();
    for name in ["../outside.bpk", outside.as_str(), "sub/model.bpk", ".."] {
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = copy_dir.path().join("bundle");
        copy_folder(&bundle, &copy);
        edit_card(&copy, |card| {
            card["files"]["burnpack"]["file"] = name.into()
        });
        let message = refusal(&copy);
        assert!(
            message.contains("not a plain file name"),
            "{name}: {message}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_link_leading_out_of_the_bundle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bundle) = bundle(dir.path());
    let outside = dir.path().join("outside.bpk");
    std::fs::rename(bundle.join("model.bpk"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, bundle.join("model.bpk")).unwrap();
    let message = LoadedModel::open(&bundle)
        .err()
        .expect("refused")
        .to_string();
    assert!(message.contains("link leading outside"), "{message}");
    let report = verify_bundle(&bundle).unwrap();
    assert!(!report.ok());
    assert!(
        report
            .bad_files
            .iter()
            .any(|(file, why)| file == "model.bpk" && why.contains("link"))
    );
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A change made to a card, as a crafted bundle would have it.
type CardEdit = Box<dyn Fn(&mut serde_json::Value)>;

/// Sets the MLP's hidden widths and a layer list that matches them (as a crafted card would).
fn claim_hidden(card: &mut serde_json::Value, hidden: &[u64]) {
    let mut widths = vec![4u64];
    widths.extend(hidden);
    widths.push(3);
    let layers: Vec<serde_json::Value> = widths
        .windows(2)
        .enumerate()
        .map(|(index, pair)| {
            serde_json::json!({
                "name": format!("layers.{index}"), "kind": "linear",
                "inputs": pair[0], "outputs": pair[1],
                "safetensors_weight_shape": [pair[1], pair[0]],
                "burnpack_weight_shape": [pair[0], pair[1]],
            })
        })
        .collect();
    card["model"]["hidden"] = serde_json::json!(hidden);
    card["layers"] = serde_json::json!(layers);
}

#[test]
fn absurd_sizes_in_a_card_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bundle) = bundle(dir.path());
    let copy_with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = copy_dir.path().join("bundle");
        copy_folder(&bundle, &copy);
        edit_card(&copy, edit);
        (copy_dir, copy)
    };
    // Models the weights file cannot hold, or that Kiln does not build: refused when opened,
    // and reported (not run) by verify.
    let models: [(&str, Vec<u64>); 3] = [
        ("too few for the", vec![16_384, 16_384, 16_384]),
        ("width 1000000000000", vec![1_000_000_000_000]),
        ("claims 100 layers", vec![4; 100]),
    ];
    for (expected, hidden) in models {
        let (_keep, copy) = copy_with(&|card| claim_hidden(card, &hidden));
        let message = LoadedModel::open(&copy).err().expect("refused").to_string();
        assert!(message.contains(expected), "{expected}: {message}");
        let report = verify_bundle(&copy).unwrap();
        assert!(!report.ok());
        let burnpack = report
            .formats
            .iter()
            .find(|c| c.format == "burnpack")
            .unwrap();
        assert!(
            burnpack
                .problem
                .as_deref()
                .unwrap_or_default()
                .contains(expected),
            "{burnpack:?}"
        );
    }
    // Cards that contradict themselves are refused before any file they name is read.
    let cards: Vec<(&str, CardEdit)> = vec![
        (
            "golden rows",
            Box::new(|card| {
                card["golden"]["inputs"] = serde_json::json!(vec![vec![0.0; 4]; 10_001]);
                card["golden"]["outputs"] = serde_json::json!(vec![vec![0.0; 3]; 10_001]);
            }),
        ),
        (
            "has 1 inputs",
            Box::new(|card| card["golden"]["inputs"][0] = serde_json::json!([1.0])),
        ),
        (
            "layer list",
            Box::new(|card| {
                card["layers"][0]["safetensors_weight_shape"] = serde_json::json!([64, 5])
            }),
        ),
    ];
    for (expected, edit) in cards {
        let (_keep, copy) = copy_with(&*edit);
        let message = refusal(&copy);
        assert!(message.contains(expected), "{expected}: {message}");
    }
    // A card file larger than Kiln reads is refused by its size alone.
    let (_keep, copy) = copy_with(&|_| {});
    let file = std::fs::File::create(copy.join("model.card.json")).unwrap();
    file.set_len(65 * 1024 * 1024).unwrap();
    let message = ModelCard::locate(&copy).expect_err("refused").to_string();
    assert!(message.contains("more than"), "{message}");
}

#[test]
fn a_safetensors_header_claiming_2_pow_60_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bundle) = bundle(dir.path());
    let path = bundle.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    // The card's hash must match for the contents to be read at all: re-hash as an attacker would.
    let sha = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    edit_card(&bundle, |card| {
        card["files"]["safetensors"]["sha256"] = sha.into()
    });
    let report = verify_bundle(&bundle).unwrap();
    assert!(!report.ok());
    let check = report
        .formats
        .iter()
        .find(|c| c.format == "safetensors")
        .unwrap();
    let problem = check.problem.as_deref().unwrap_or_default();
    assert!(
        problem.contains("header claims 1152921504606846976 bytes"),
        "{problem}"
    );
    // The other formats still verify.
    for format in ["burnpack", "onnx"] {
        let check = report.formats.iter().find(|c| c.format == format).unwrap();
        assert!(
            check.problem.is_none() && check.max_error.unwrap() < 1e-4,
            "{check:?}"
        );
    }
}

#[test]
fn a_safetensors_tensor_of_the_wrong_shape_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, bundle) = bundle(dir.path());
    let path = bundle.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let header_length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_length].to_vec()).unwrap();
    // Same byte count, transposed shape: [64, 4] -> [4, 64].
    let changed = header.replacen("[64,4]", "[4,64]", 1);
    assert_ne!(header, changed, "{header}");
    let mut edited = bytes[..8].to_vec();
    edited.extend(changed.as_bytes());
    edited.extend(&bytes[8 + header_length..]);
    std::fs::write(&path, &edited).unwrap();
    let sha = {
        use sha2::Digest;
        sha2::Sha256::digest(&edited)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    edit_card(&bundle, |card| {
        card["files"]["safetensors"]["sha256"] = sha.into()
    });
    let report = verify_bundle(&bundle).unwrap();
    let check = report
        .formats
        .iter()
        .find(|c| c.format == "safetensors")
        .unwrap();
    let problem = check.problem.as_deref().unwrap_or_default();
    assert!(
        problem.contains("layers.0.weight") && problem.contains("[4, 64]"),
        "{problem}"
    );
}

#[test]
fn checkpoint_names_in_index_json_never_lead_out_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (runs, run, _) = bundle(dir.path());
    let victim = dir.path().join("victim.bpk");
    std::fs::write(&victim, b"precious").unwrap();
    let store = RunStore::open(&runs).unwrap();
    let found = store.find(&run).unwrap();
    let mut index = found.read_index().unwrap();
    for entry in &mut index.checkpoints {
        entry.model_file = "../../../victim.bpk".to_string();
        entry.optimizer_file = victim.display().to_string();
    }
    found.write_index(&index).unwrap();
    let error = export_checkpoint(
        &runs,
        &run,
        &dir.path().join("out"),
        &ExportOptions::default(),
    )
    .expect_err("refused");
    assert!(
        error.to_string().contains("not a plain file name"),
        "{error}"
    );
    assert!(found.read_checkpoint_file("../../../victim.bpk").is_err());
    // Dropping checkpoints never deletes what their names point at outside.
    found.truncate_checkpoints_after(0).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(
        !dir.path().join("out").exists(),
        "a refused export leaves nothing"
    );
}

#[test]
fn run_ids_never_lead_out_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (runs, run, _) = bundle(dir.path());
    // A run folder one level up, which `..` or a link would reach.
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(runs.join(&run).join("run.json"), outside.join("run.json")).unwrap();
    std::fs::copy(
        runs.join(&run).join("run.json"),
        dir.path().join("run.json"),
    )
    .unwrap();
    let store = RunStore::open(&runs).unwrap();
    for query in ["..", "../elsewhere", "/"] {
        assert!(store.find(query).is_err(), "{query} found");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, runs.join("linked")).unwrap();
        assert!(store.find("linked").is_err());
        let listing = store.list().unwrap();
        assert!(listing.iter().any(|l| matches!(l, kiln::runs::RunListing::Broken { id, error, .. } if id == "linked" && error.contains("link"))));
    }
}

/// A PNG chunk: length, type, data and CRC.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    chunk.extend(crc.sum().to_be_bytes());
    chunk
}

#[test]
fn an_image_claiming_100000_pixels_a_side_is_refused_before_decoding() {
    let mut header = Vec::new();
    header.extend(100_000u32.to_be_bytes());
    header.extend(100_000u32.to_be_bytes());
    header.extend([8, 0, 0, 0, 0]); // 8-bit grayscale
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &header));
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    let error = kiln::data::decode_image(&png).expect_err("refused");
    assert!(error.contains("larger than Kiln reads"), "{error}");
}
