//! Image datasets and the CNN: class folders and IDX files, bad input, fingerprints,
//! augmentation, training (CNN and MLP), resume with batch-norm, export and image prediction,
//! and the command line.

mod common;

use common::{kiln, sample, text};

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln::data::{
    Augmentation, DataSpec, ImageOptions, ImageSet, PreparedData, load_idx, prepare, write_idx,
};
use kiln::export::{ExportOptions, LoadedModel, export_checkpoint, predict_images, verify_bundle};
use kiln::model::{CnnConfig, MlpConfig, ModelConfig};
use kiln::runs::{RunStatus, RunStore, SplitName};
use kiln::train::{
    DeviceChoice, EpochMetrics, OptimizerConfig, Outcome, ResumeRequest, TrainConfig, TrainEvent,
    TrainRequest, resume, start,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn digits() -> PathBuf {
    sample("digits")
}

/// A CPU training request on `data` (Adam, lr 0.003, batch 32).
fn request(data: &Path, model: ModelConfig, runs_dir: &Path, epochs: usize) -> TrainRequest {
    TrainRequest {
        data: DataSpec::new(data),
        model,
        train: TrainConfig {
            optimizer: OptimizerConfig::Adam,
            learning_rate: 0.003,
            batch_size: 32,
            epochs,
            ..TrainConfig::default()
        },
        device: DeviceChoice::Cpu,
        name: None,
        runs_dir: runs_dir.to_path_buf(),
    }
}

fn cnn() -> ModelConfig {
    ModelConfig::Cnn(CnnConfig::default())
}

fn finished(events: &[TrainEvent]) -> (Outcome, usize, String) {
    events
        .iter()
        .find_map(|event| match event {
            TrainEvent::Finished {
                outcome,
                epochs_completed,
                message,
            } => Some((*outcome, *epochs_completed, message.clone())),
            _ => None,
        })
        .expect("a Finished event")
}

fn epochs(events: &[TrainEvent]) -> Vec<EpochMetrics> {
    events
        .iter()
        .filter_map(|event| match event {
            TrainEvent::Epoch(metrics) => Some(metrics.clone()),
            _ => None,
        })
        .collect()
}

fn best_accuracy(metrics: &[EpochMetrics]) -> f64 {
    metrics
        .iter()
        .filter_map(|m| m.valid_accuracy)
        .fold(0.0, f64::max)
}

/// Trains to the end and returns the run id and all events.
fn train(request: TrainRequest) -> (String, Vec<TrainEvent>) {
    let handle = start(request, None).expect("training starts");
    let run = handle.run_id.clone();
    let events = handle.wait();
    let (outcome, _, message) = finished(&events);
    assert_eq!(outcome, Outcome::Completed, "{message}");
    (run, events)
}

/// The first `count` PNG files of a digits class folder, sorted.
fn digit_files(class: &str, count: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(digits().join(class))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "png"))
        .collect();
    files.sort();
    files.truncate(count);
    assert_eq!(files.len(), count, "digits/{class} has {count} images");
    files
}

/// A class-folder dataset under `root`: `(folder name, digit class to copy, how many)`.
fn image_folder(root: &Path, classes: &[(&str, &str, usize)]) -> PathBuf {
    std::fs::create_dir_all(root).unwrap();
    for (folder, digit, count) in classes {
        let dir = root.join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        for file in digit_files(digit, *count) {
            std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
        }
    }
    root.to_path_buf()
}

fn image_spec(dir: &Path, options: ImageOptions) -> DataSpec {
    DataSpec {
        images: Some(options),
        ..DataSpec::new(dir)
    }
}

fn load_error(spec: &DataSpec) -> String {
    match prepare(spec) {
        Ok(data) => panic!(
            "expected {} to be refused, but it loaded {} images",
            spec.path.display(),
            data.images().map_or(0, |set| set.items.len())
        ),
        Err(error) => error.to_string(),
    }
}

/// Deterministic bytes that are no image format at all.
fn garbage(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn write_gray_png(path: &Path, width: u32, height: u32, pixels: Vec<u8>) {
    image::GrayImage::from_raw(width, height, pixels)
        .expect("pixels fit the size")
        .save(path)
        .unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Training on the digits folder
// ---------------------------------------------------------------------------------------------

#[test]
fn cnn_learns_the_digits_folder_to_ninety_percent_on_the_cpu() {
    let runs = tempfile::tempdir().unwrap();
    let (run, events) = train(request(&digits(), cnn(), runs.path(), 10));

    let Some(TrainEvent::Started {
        train_rows,
        valid_rows,
        model,
        ..
    }) = events
        .iter()
        .find(|e| matches!(e, TrainEvent::Started { .. }))
    else {
        panic!("a Started event");
    };
    assert_eq!(train_rows + valid_rows, 1797);
    assert!(
        (340..380).contains(valid_rows),
        "{valid_rows} validation rows"
    );
    assert!(model.starts_with("cnn 1×8×8"), "{model}");

    let metrics = epochs(&events);
    assert_eq!(metrics.len(), 10);
    let best = best_accuracy(&metrics);
    assert!(best >= 0.9, "best validation accuracy {best}");

    let record = RunStore::open(runs.path())
        .unwrap()
        .find(&run)
        .unwrap()
        .read_record()
        .unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.device.backend, "cpu");
    assert_eq!(
        record.schema.target.classes,
        (0..10).map(|d| d.to_string()).collect::<Vec<_>>()
    );
    let image = record
        .preprocessor
        .image
        .as_ref()
        .expect("an image preprocessor");
    assert_eq!(
        (image.shape.channels, image.shape.height, image.shape.width),
        (1, 8, 8)
    );
    let recorded = record
        .best
        .and_then(|b| b.valid_accuracy)
        .expect("best accuracy");
    assert!(recorded >= 0.9, "run record best accuracy {recorded}");
    assert_eq!(
        record.fingerprint.class_counts.values().sum::<usize>(),
        1797
    );
}

#[test]
fn mlp_on_flattened_pixels_learns_the_digits_folder() {
    let runs = tempfile::tempdir().unwrap();
    let (_, events) = train(request(
        &digits(),
        ModelConfig::Mlp(MlpConfig::default()),
        runs.path(),
        10,
    ));
    let metrics = epochs(&events);
    assert_eq!(metrics.len(), 10);
    let best = best_accuracy(&metrics);
    assert!(best >= 0.85, "best validation accuracy {best}");
}

// ---------------------------------------------------------------------------------------------
// IDX files
// ---------------------------------------------------------------------------------------------

/// Six 2×3 images (height 2, width 3: not square, so swapped dimensions show) and their labels.
const IDX_HEIGHT: usize = 2;
const IDX_WIDTH: usize = 3;
const IDX_LABELS: [u8; 6] = [7, 3, 9, 3, 7, 9];

fn idx_pixels() -> Vec<u8> {
    (0..IDX_LABELS.len() * IDX_HEIGHT * IDX_WIDTH)
        .map(|i| (i * 7 + 1) as u8)
        .collect()
}

/// An IDX images file written byte by byte: magic 0x00000803, count, rows, columns (big-endian).
fn idx_images_bytes() -> Vec<u8> {
    let mut bytes = vec![0x00, 0x00, 0x08, 0x03];
    bytes.extend((IDX_LABELS.len() as u32).to_be_bytes());
    bytes.extend((IDX_HEIGHT as u32).to_be_bytes());
    bytes.extend((IDX_WIDTH as u32).to_be_bytes());
    bytes.extend(idx_pixels());
    bytes
}

/// An IDX labels file written byte by byte: magic 0x00000801, count.
fn idx_labels_bytes() -> Vec<u8> {
    let mut bytes = vec![0x00, 0x00, 0x08, 0x01];
    bytes.extend((IDX_LABELS.len() as u32).to_be_bytes());
    bytes.extend(IDX_LABELS);
    bytes
}

fn assert_is_the_idx_set(set: &ImageSet, file_name: &str) {
    assert_eq!(
        (set.shape.channels, set.shape.height, set.shape.width),
        (1, IDX_HEIGHT, IDX_WIDTH)
    );
    assert_eq!(set.pixels, idx_pixels());
    assert_eq!(set.classes, ["3", "7", "9"]);
    // Labels are indices into the sorted classes.
    assert_eq!(set.labels(), [1, 0, 2, 0, 1, 2]);
    for (index, item) in set.items.iter().enumerate() {
        assert_eq!(item.name, format!("{file_name}#{index}"));
        assert_eq!(
            set.classes[item.label],
            IDX_LABELS[index].to_string(),
            "item {index}"
        );
    }
    assert!(set.skipped.is_empty());
}

#[test]
fn hand_written_idx_files_load_exactly_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();

    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let images = plain.join("train-images-idx3-ubyte");
    std::fs::write(&images, idx_images_bytes()).unwrap();
    std::fs::write(plain.join("train-labels-idx1-ubyte"), idx_labels_bytes()).unwrap();
    let set = load_idx(&images, &ImageOptions::default()).expect("plain IDX loads");
    assert_is_the_idx_set(&set, "train-images-idx3-ubyte");

    let gzipped = dir.path().join("gzipped");
    std::fs::create_dir(&gzipped).unwrap();
    let gz_images = gzipped.join("t10k-images-idx3-ubyte.gz");
    std::fs::write(&gz_images, gzip(&idx_images_bytes())).unwrap();
    std::fs::write(
        gzipped.join("t10k-labels-idx1-ubyte.gz"),
        gzip(&idx_labels_bytes()),
    )
    .unwrap();
    let gz_set = load_idx(&gz_images, &ImageOptions::default()).expect("gzipped IDX loads");
    assert_is_the_idx_set(&gz_set, "t10k-images-idx3-ubyte.gz");

    // prepare() on the folder finds the pair, splits it stratified and encodes every pixel.
    for folder in [&plain, &gzipped] {
        let data = prepare(&DataSpec::new(folder)).expect("prepare reads the IDX folder");
        let set = data.images().expect("image data");
        assert_eq!(set.pixels, idx_pixels());
        assert_eq!(data.schema.target.classes, ["3", "7", "9"]);
        assert_eq!(data.train.rows + data.valid.rows, 6);
        assert_eq!(data.valid.rows, 3, "one image of each class held out");
        let transform = data.preprocessor.image.as_ref().unwrap();
        for (position, &index) in data.split.valid.iter().enumerate() {
            assert_eq!(data.valid.labels[position], set.items[index].label as i64);
            let pixels = &idx_pixels()[index * 6..(index + 1) * 6];
            for (value, &pixel) in data.valid.row(position).iter().zip(pixels) {
                let expected =
                    ((pixel as f64 / 255.0 - transform.mean[0]) / transform.std[0]) as f32;
                assert_eq!(*value, expected);
            }
        }
        for (position, &index) in data.split.train.iter().enumerate() {
            assert_eq!(data.train.labels[position], set.items[index].label as i64);
        }
    }

    // The images file named directly works too, and a different content gives another hash.
    let direct = prepare(&DataSpec::new(&gz_images)).expect("the images file itself loads");
    assert_eq!(direct.images().unwrap().pixels, idx_pixels());
    assert_ne!(set.content_sha256, gz_set.content_sha256);
}

#[test]
fn idx_writer_round_trips_and_matches_the_format_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("rt-images-idx3-ubyte");
    let labels = dir.path().join("rt-labels-idx1-ubyte");
    write_idx(
        &images,
        &labels,
        &idx_pixels(),
        IDX_HEIGHT,
        IDX_WIDTH,
        &IDX_LABELS,
    )
    .unwrap();
    assert_eq!(std::fs::read(&images).unwrap(), idx_images_bytes());
    assert_eq!(std::fs::read(&labels).unwrap(), idx_labels_bytes());
    let set = load_idx(&images, &ImageOptions::default()).unwrap();
    assert_is_the_idx_set(&set, "rt-images-idx3-ubyte");

    let gz_images = dir.path().join("gz-images-idx3-ubyte.gz");
    let gz_labels = dir.path().join("gz-labels-idx1-ubyte.gz");
    write_idx(
        &gz_images,
        &gz_labels,
        &idx_pixels(),
        IDX_HEIGHT,
        IDX_WIDTH,
        &IDX_LABELS,
    )
    .unwrap();
    let raw = std::fs::read(&gz_images).unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "a .gz path is written gzipped");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(raw.as_slice()),
        &mut plain,
    )
    .unwrap();
    assert_eq!(plain, idx_images_bytes());
    let set = load_idx(&gz_images, &ImageOptions::default()).unwrap();
    assert_is_the_idx_set(&set, "gz-images-idx3-ubyte.gz");

    // A pixel count that does not fit count × height × width is refused.
    assert!(
        write_idx(
            &dir.path().join("x-images-idx3-ubyte"),
            &dir.path().join("x-labels-idx1-ubyte"),
            &idx_pixels()[1..],
            IDX_HEIGHT,
            IDX_WIDTH,
            &IDX_LABELS,
        )
        .is_err()
    );
}

#[test]
fn broken_idx_files_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let options = ImageOptions::default();
    let pair = |name: &str, images: Vec<u8>, labels: Vec<u8>| -> PathBuf {
        let images_path = dir.path().join(format!("{name}-images-idx3-ubyte"));
        std::fs::write(&images_path, images).unwrap();
        std::fs::write(dir.path().join(format!("{name}-labels-idx1-ubyte")), labels).unwrap();
        images_path
    };

    // Truncated images: the header promises more bytes than the file has.
    let mut short = idx_images_bytes();
    short.truncate(short.len() - 4);
    let path = pair("short", short, idx_labels_bytes());
    let error = load_idx(&path, &options).unwrap_err().to_string();
    assert!(
        error.contains("short-images-idx3-ubyte") && error.contains("truncated"),
        "{error}"
    );

    // A file cut inside the header.
    let path = pair(
        "stub",
        idx_images_bytes()[..10].to_vec(),
        idx_labels_bytes(),
    );
    let error = load_idx(&path, &options).unwrap_err().to_string();
    assert!(
        error.contains("stub-images-idx3-ubyte") && error.contains("too short"),
        "{error}"
    );

    // Bad magic number in the labels file.
    let mut labels = idx_labels_bytes();
    labels[3] = 0x02;
    let path = pair("magic", idx_images_bytes(), labels);
    let error = load_idx(&path, &options).unwrap_err().to_string();
    assert!(
        error.contains("magic-labels-idx1-ubyte") && error.contains("magic number"),
        "{error}"
    );

    // Bad magic number in the images file (the labels file's magic).
    let mut images = idx_images_bytes();
    images[3] = 0x01;
    let path = pair("swapped", images, idx_labels_bytes());
    let error = load_idx(&path, &options).unwrap_err().to_string();
    assert!(
        error.contains("swapped-images-idx3-ubyte") && error.contains("magic number"),
        "{error}"
    );

    // Label count does not match the image count.
    let mut labels = idx_labels_bytes();
    labels[7] = 5;
    labels.pop();
    let path = pair("count", idx_images_bytes(), labels);
    let error = load_idx(&path, &options).unwrap_err().to_string();
    assert!(
        error.contains("count-labels-idx1-ubyte") && error.contains("5 labels for 6 images"),
        "{error}"
    );

    // A gzip stream cut short.
    let images_path = dir.path().join("cut-images-idx3-ubyte.gz");
    let mut cut = gzip(&idx_images_bytes());
    cut.truncate(cut.len() / 2);
    std::fs::write(&images_path, cut).unwrap();
    std::fs::write(
        dir.path().join("cut-labels-idx1-ubyte.gz"),
        gzip(&idx_labels_bytes()),
    )
    .unwrap();
    let error = load_idx(&images_path, &options).unwrap_err().to_string();
    assert!(
        error.contains("cut-images-idx3-ubyte.gz") && error.contains("gzip"),
        "{error}"
    );

    // No labels file next to the images.
    let lonely = dir.path().join("lonely-images-idx3-ubyte");
    std::fs::write(&lonely, idx_images_bytes()).unwrap();
    let error = load_idx(&lonely, &options).unwrap_err().to_string();
    assert!(
        error.contains("lonely-images-idx3-ubyte") && error.contains("no labels file"),
        "{error}"
    );

    // A single label value is a single class.
    let mut labels = idx_labels_bytes();
    for label in &mut labels[8..] {
        *label = 4;
    }
    let path = pair("single", idx_images_bytes(), labels);
    let error = load_idx(&path, &options).unwrap_err().to_string();
    assert!(error.contains("single class ('4')"), "{error}");
}

// A corrupt or hostile IDX header whose sizes overflow is a clear error naming the file.
#[test]
fn an_idx_header_whose_sizes_overflow_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("huge-images-idx3-ubyte");
    let count: u32 = 1 << 22;
    let mut header = vec![0x00, 0x00, 0x08, 0x03];
    for size in [count, 1 << 21, 1 << 21] {
        header.extend(size.to_be_bytes());
    }
    std::fs::write(&images, header).unwrap();
    let mut labels = vec![0x00, 0x00, 0x08, 0x01];
    labels.extend(count.to_be_bytes());
    labels.extend((0..count).map(|i| (i % 2) as u8));
    std::fs::write(dir.path().join("huge-labels-idx1-ubyte"), labels).unwrap();

    let result = std::panic::catch_unwind(|| load_idx(&images, &ImageOptions::default()));
    let error = result
        .expect("load_idx panicked on an IDX header whose sizes overflow")
        .expect_err("a 16-byte file cannot hold 2^64 pixels")
        .to_string();
    assert!(error.contains("huge-images-idx3-ubyte"), "{error}");
}

// IDX files refuse impossible input sizes as the class-folder loader does.
#[test]
fn an_impossible_size_option_is_refused_for_idx_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&images, idx_images_bytes()).unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx_labels_bytes(),
    )
    .unwrap();
    for size in [[0, 8], [8, 0], [2000, 2000]] {
        let options = ImageOptions {
            size: Some(size),
            ..ImageOptions::default()
        };
        match load_idx(&images, &options) {
            Ok(set) => panic!("size {size:?} accepted: the images became {:?}", set.shape),
            Err(error) => {
                let error = error.to_string();
                assert!(error.contains("not possible"), "{error}");
            }
        }
    }
    // Sizes in range still resize IDX images.
    let options = ImageOptions {
        size: Some([4, 4]),
        ..ImageOptions::default()
    };
    let set = load_idx(&images, &options).unwrap();
    assert_eq!((set.shape.height, set.shape.width), (4, 4));
    assert_eq!(set.pixels.len(), 6 * 16);
}

// ---------------------------------------------------------------------------------------------
// Bad input in class folders
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unreadable_image_is_named_and_can_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = image_folder(
        &dir.path().join("data"),
        &[("zero", "0", 5), ("one", "1", 5)],
    );
    std::fs::write(root.join("one/broken.png"), garbage(300)).unwrap();
    // Files that are not images by extension are ignored, not errors.
    std::fs::write(root.join("one/notes.txt"), b"not an image").unwrap();

    let error = load_error(&image_spec(&root, ImageOptions::default()));
    assert!(error.contains("broken.png"), "{error}");
    assert!(error.contains("skip"), "{error}");

    let skipping = ImageOptions {
        skip_bad_files: true,
        ..ImageOptions::default()
    };
    let data = prepare(&image_spec(&root, skipping.clone())).expect("loads, skipping the file");
    let set = data.images().unwrap();
    assert_eq!(set.items.len(), 10);
    assert_eq!(set.class_counts(), [5, 5]);
    assert_eq!(set.skipped.len(), 1);
    assert!(set.skipped[0].contains("broken.png"), "{:?}", set.skipped);
    assert_eq!(data.warnings.len(), 1, "{:?}", data.warnings);
    assert!(
        data.warnings[0].contains("skipped 1") && data.warnings[0].contains("broken.png"),
        "{:?}",
        data.warnings
    );

    // A PNG cut short is corrupt, and two bad files are counted.
    let whole = std::fs::read(
        root.join("zero")
            .join(digit_files("0", 1)[0].file_name().unwrap()),
    )
    .unwrap();
    std::fs::write(root.join("zero/cut.png"), &whole[..whole.len() / 2]).unwrap();
    let error = load_error(&image_spec(&root, ImageOptions::default()));
    assert!(
        error.contains("cut.png") || error.contains("broken.png"),
        "{error}"
    );
    assert!(error.contains("2 unreadable images"), "{error}");
    let data = prepare(&image_spec(&root, skipping.clone())).unwrap();
    assert!(
        data.warnings[0].contains("skipped 2"),
        "{:?}",
        data.warnings
    );

    // When every image of a class is unreadable, skipping leaves the class empty: an error.
    let bad_class = image_folder(&dir.path().join("bad-class"), &[("zero", "0", 3)]);
    std::fs::create_dir(bad_class.join("junk")).unwrap();
    std::fs::write(bad_class.join("junk/a.png"), garbage(64)).unwrap();
    let error = load_error(&image_spec(&bad_class, skipping));
    assert!(
        error.contains("'junk'") && error.contains("unreadable"),
        "{error}"
    );
}

#[test]
fn folder_layout_mistakes_get_clear_messages() {
    let dir = tempfile::tempdir().unwrap();

    let single = image_folder(&dir.path().join("single"), &[("cats", "3", 4)]);
    let error = load_error(&image_spec(&single, ImageOptions::default()));
    assert!(
        error.contains("single class") && error.contains("'cats'"),
        "{error}"
    );

    let empty = image_folder(
        &dir.path().join("empty"),
        &[("cats", "3", 4), ("dogs", "5", 4)],
    );
    std::fs::create_dir(empty.join("birds")).unwrap();
    std::fs::write(empty.join("birds/readme.txt"), b"no pictures yet").unwrap();
    let error = load_error(&image_spec(&empty, ImageOptions::default()));
    assert!(
        error.contains("'birds'") && error.contains("no images"),
        "{error}"
    );

    let flat = dir.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    for file in digit_files("2", 3) {
        std::fs::copy(&file, flat.join(file.file_name().unwrap())).unwrap();
    }
    let error = load_error(&image_spec(&flat, ImageOptions::default()));
    assert!(error.contains("no class sub-folders"), "{error}");

    // Hidden folders are not classes.
    let hidden = image_folder(
        &dir.path().join("hidden"),
        &[("cats", "3", 4), (".cache", "5", 2)],
    );
    let error = load_error(&image_spec(&hidden, ImageOptions::default()));
    assert!(error.contains("single class"), "{error}");
}

#[test]
fn mixed_image_sizes_need_a_size_option_and_then_load() {
    let dir = tempfile::tempdir().unwrap();
    let root = image_folder(
        &dir.path().join("mixed"),
        &[("cats", "3", 4), ("dogs", "5", 4)],
    );
    let pixels: Vec<u8> = (0..10 * 12).map(|i| (i * 2) as u8).collect();
    write_gray_png(&root.join("dogs/wide.png"), 12, 10, pixels);

    let error = load_error(&image_spec(&root, ImageOptions::default()));
    assert!(error.contains("wide.png"), "{error}");
    assert!(error.contains("12×10"), "{error}");
    assert!(error.contains("input size"), "{error}");

    let sized = ImageOptions {
        size: Some([8, 8]),
        ..ImageOptions::default()
    };
    let data = prepare(&image_spec(&root, sized)).expect("resized to 8×8");
    let set = data.images().unwrap();
    assert_eq!(set.items.len(), 9);
    assert_eq!((set.shape.height, set.shape.width), (8, 8));
    assert_eq!(set.pixels.len(), 9 * 64);
    assert_eq!(data.input_width(), 64);

    // Another size resizes everything, and keeps width and height apart.
    let other = ImageOptions {
        size: Some([6, 4]),
        ..ImageOptions::default()
    };
    let data = prepare(&image_spec(&root, other)).expect("resized to 6×4");
    let shape = data.image_shape().unwrap();
    assert_eq!((shape.width, shape.height), (6, 4));
    assert_eq!(data.input_width(), 24);

    let impossible = ImageOptions {
        size: Some([0, 8]),
        ..ImageOptions::default()
    };
    let error = load_error(&image_spec(&root, impossible));
    assert!(error.contains("not possible"), "{error}");
}

#[test]
fn channels_are_gray_or_rgb_and_stored_channel_major() {
    let dir = tempfile::tempdir().unwrap();
    let root = image_folder(
        &dir.path().join("colour"),
        &[("cats", "3", 4), ("dogs", "5", 3)],
    );
    let red: Vec<u8> = (0..64).flat_map(|_| [255u8, 0, 0]).collect();
    image::RgbImage::from_raw(8, 8, red)
        .unwrap()
        .save(root.join("dogs/red.png"))
        .unwrap();

    // Auto: one colour image makes the whole set RGB.
    let data = prepare(&image_spec(&root, ImageOptions::default())).unwrap();
    let set = data.images().unwrap();
    assert_eq!(set.shape.channels, 3);
    assert_eq!(data.input_width(), 3 * 64);
    assert_eq!(data.preprocessor.image.as_ref().unwrap().mean.len(), 3);
    let red_index = set
        .items
        .iter()
        .position(|item| item.name == "dogs/red.png")
        .expect("the red image is an item");
    let red = set.image(red_index);
    assert!(red[..64].iter().all(|&p| p == 255), "red plane first");
    assert!(red[64..].iter().all(|&p| p == 0), "no green or blue");
    // A gray image has three equal planes.
    let gray = set.image(0);
    assert_eq!(gray[..64], gray[64..128]);
    assert_eq!(gray[..64], gray[128..]);

    // Gray on request.
    let options = ImageOptions {
        channels: kiln::data::ChannelMode::Gray,
        ..ImageOptions::default()
    };
    let data = prepare(&image_spec(&root, options)).unwrap();
    assert_eq!(data.image_shape().unwrap().channels, 1);
    assert_eq!(data.input_width(), 64);
}

#[test]
fn cnn_configs_that_do_not_fit_the_images_are_refused_before_training() {
    let runs = tempfile::tempdir().unwrap();
    let block = kiln::model::ConvBlock {
        channels: 4,
        kernel_size: 3,
        pool: true,
    };
    // 8 → 4 → 2 → 1, and a fourth pool has nothing left to pool.
    let too_deep = ModelConfig::Cnn(CnnConfig {
        blocks: vec![block; 4],
        ..CnnConfig::default()
    });
    let error = start(request(&digits(), too_deep, runs.path(), 1), None)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("conv block 4") && error.contains("1×1"),
        "{error}"
    );
    let even = ModelConfig::Cnn(CnnConfig {
        blocks: vec![kiln::model::ConvBlock {
            kernel_size: 4,
            ..block
        }],
        ..CnnConfig::default()
    });
    let error = start(request(&digits(), even, runs.path(), 1), None)
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("kernel size 4"), "{error}");
    assert!(
        RunStore::open(runs.path())
            .unwrap()
            .list()
            .unwrap()
            .is_empty(),
        "no run folder for a refused request"
    );
}

// ---------------------------------------------------------------------------------------------
// Fingerprints
// ---------------------------------------------------------------------------------------------

#[test]
fn image_fingerprints_follow_content_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let root = image_folder(
        &dir.path().join("data"),
        &[("cats", "3", 6), ("dogs", "5", 6)],
    );
    let fingerprint = |path: &Path, options: ImageOptions| {
        prepare(&image_spec(path, options))
            .expect("loads")
            .fingerprint
    };
    let base = fingerprint(&root, ImageOptions::default());
    assert_eq!(base.rows, 12);
    assert_eq!(base.class_counts["cats"], 6);

    let again = fingerprint(&root, ImageOptions::default());
    assert_eq!(again.id, base.id, "same data twice, same id");
    assert_eq!(again.content_sha256, base.content_sha256);

    // The same files somewhere else are the same data (names are relative to the root).
    let copy = image_folder(
        &dir.path().join("copy"),
        &[("cats", "3", 6), ("dogs", "5", 6)],
    );
    assert_eq!(fingerprint(&copy, ImageOptions::default()).id, base.id);

    // Changing one image's bytes changes both hashes; putting it back restores them.
    let target = root
        .join("cats")
        .join(digit_files("3", 1)[0].file_name().unwrap());
    let original = std::fs::read(&target).unwrap();
    std::fs::copy(&digit_files("8", 1)[0], &target).unwrap();
    let changed = fingerprint(&root, ImageOptions::default());
    assert_ne!(changed.id, base.id);
    assert_ne!(changed.content_sha256, base.content_sha256);
    std::fs::write(&target, &original).unwrap();
    assert_eq!(fingerprint(&root, ImageOptions::default()).id, base.id);

    // Moving an image to another class changes the data.
    let moved_from = root
        .join("dogs")
        .join(digit_files("5", 1)[0].file_name().unwrap());
    let moved_to = root.join("cats/moved.png");
    std::fs::rename(&moved_from, &moved_to).unwrap();
    let moved = fingerprint(&root, ImageOptions::default());
    assert_ne!(moved.content_sha256, base.content_sha256);
    assert_ne!(moved.id, base.id);
    std::fs::rename(&moved_to, &moved_from).unwrap();

    // Options change the id but not the content hash.
    let resized = fingerprint(
        &root,
        ImageOptions {
            size: Some([6, 6]),
            ..ImageOptions::default()
        },
    );
    assert_ne!(resized.id, base.id);
    assert_eq!(resized.content_sha256, base.content_sha256);
    let augmented = fingerprint(
        &root,
        ImageOptions {
            augment: Augmentation {
                flip_horizontal: true,
                ..Augmentation::default()
            },
            ..ImageOptions::default()
        },
    );
    assert_ne!(augmented.id, base.id);
    assert_ne!(augmented.id, resized.id);
    assert_eq!(augmented.content_sha256, base.content_sha256);
}

// ---------------------------------------------------------------------------------------------
// Augmentation
// ---------------------------------------------------------------------------------------------

fn with_augment(augment: Augmentation) -> PreparedData {
    prepare(&image_spec(
        &digits(),
        ImageOptions {
            augment,
            ..ImageOptions::default()
        },
    ))
    .expect("digits load")
}

/// Row `row` of an 8×8 image as seen through a horizontal flip and a shift, black filled.
fn transformed(row: &[f32], flip: bool, dx: i64, dy: i64, black: f32) -> Vec<f32> {
    let mut out = vec![black; 64];
    for y in 0..8i64 {
        for x in 0..8i64 {
            let (sx, sy) = (x - dx, y - dy);
            if !(0..8).contains(&sx) || !(0..8).contains(&sy) {
                continue;
            }
            let sx = if flip { 7 - sx } else { sx };
            out[(y * 8 + x) as usize] = row[(sy * 8 + sx) as usize];
        }
    }
    out
}

#[test]
fn augmentation_is_seeded_keeps_labels_and_leaves_validation_alone() {
    let plain = prepare(&DataSpec::new(digits())).unwrap();
    assert!(
        plain.augmented_train(1).is_none(),
        "no options, no augmentation"
    );
    let inactive = with_augment(Augmentation::default());
    assert!(inactive.augmented_train(1).is_none(), "nothing switched on");

    // Flips only: every row is the original or its mirror image, and both happen.
    let flips = with_augment(Augmentation {
        flip_horizontal: true,
        ..Augmentation::default()
    });
    let flipped = flips.augmented_train(7).expect("augmented");
    let (mut same, mut mirrored) = (0, 0);
    for row in 0..flips.train.rows {
        let original = flips.train.row(row);
        let got = flipped.row(row);
        if got == original {
            same += 1;
        } else {
            assert_eq!(got, transformed(original, true, 0, 0, 0.0), "row {row}");
            mirrored += 1;
        }
    }
    assert!(
        same > 400 && mirrored > 400,
        "{same} unchanged, {mirrored} mirrored"
    );

    // Shifts only: every row is the original moved by at most one pixel, filled with black.
    let shifts = with_augment(Augmentation {
        max_shift_px: 1,
        ..Augmentation::default()
    });
    let image = shifts.preprocessor.image.as_ref().unwrap();
    let black = ((0.0 - image.mean[0]) / image.std[0]) as f32;
    let shifted = shifts.augmented_train(7).unwrap();
    let mut moved = 0;
    for row in 0..shifts.train.rows {
        let original = shifts.train.row(row);
        let got = shifted.row(row).to_vec();
        let candidates: Vec<(i64, i64)> = (-1..=1)
            .flat_map(|dx| (-1..=1).map(move |dy| (dx, dy)))
            .filter(|&(dx, dy)| transformed(original, false, dx, dy, black) == got)
            .collect();
        assert!(!candidates.is_empty(), "row {row} is no one-pixel shift");
        if !candidates.contains(&(0, 0)) {
            moved += 1;
        }
    }
    assert!(moved > shifts.train.rows / 2, "{moved} rows moved");

    // Flips and shifts together: deterministic per seed, different across seeds.
    let both = with_augment(Augmentation {
        flip_horizontal: true,
        flip_vertical: true,
        max_shift_px: 2,
    });
    let a = both.augmented_train(11).unwrap();
    let b = both.augmented_train(11).unwrap();
    let c = both.augmented_train(12).unwrap();
    assert_eq!(a, b, "the same seed gives the same epoch");
    assert_ne!(a.inputs, c.inputs, "another seed gives another epoch");
    assert_ne!(a.inputs, both.train.inputs);
    for matrix in [&a, &c] {
        assert_eq!(matrix.rows, both.train.rows);
        assert_eq!(matrix.width, both.train.width);
        assert_eq!(matrix.labels, both.train.labels);
        assert_eq!(matrix.inputs.len(), both.train.inputs.len());
    }
    // Augmentation touches training images only: the split, the normalisation and the
    // validation matrix are those of the plain dataset.
    assert_eq!(both.split, plain.split);
    assert_eq!(both.preprocessor, plain.preprocessor);
    assert_eq!(both.valid, plain.valid);
    assert_eq!(both.train, plain.train);
}

#[test]
fn cnn_trains_with_augmentation_on() {
    let runs = tempfile::tempdir().unwrap();
    let mut req = request(&digits(), cnn(), runs.path(), 6);
    req.data.images = Some(ImageOptions {
        augment: Augmentation {
            max_shift_px: 1,
            ..Augmentation::default()
        },
        ..ImageOptions::default()
    });
    let (_, events) = train(req);
    let best = best_accuracy(&epochs(&events));
    assert!(best >= 0.85, "best validation accuracy {best}");
}

// ---------------------------------------------------------------------------------------------
// Stop and resume with batch-norm
// ---------------------------------------------------------------------------------------------

#[test]
fn a_batch_norm_cnn_stops_after_an_epoch_and_resumes_to_the_end() {
    const PLANNED: usize = 6;
    let runs = tempfile::tempdir().unwrap();
    let config = CnnConfig {
        batch_norm: true,
        ..CnnConfig::default()
    };
    let handle = start(
        request(&digits(), ModelConfig::Cnn(config), runs.path(), PLANNED),
        None,
    )
    .unwrap();
    let mut seen = Vec::new();
    for event in handle.events().iter() {
        let checkpoint = matches!(event, TrainEvent::Checkpoint { .. });
        seen.push(event);
        if checkpoint {
            handle.stop();
            break;
        }
    }
    let run = handle.run_id.clone();
    seen.extend(handle.wait());
    let (outcome, done, message) = finished(&seen);
    assert_eq!(outcome, Outcome::Stopped, "{message}");
    assert!((1..PLANNED).contains(&done), "stopped after epoch {done}");
    let first = epochs(&seen);
    assert_eq!(first.len(), done);

    let store = RunStore::open(runs.path()).unwrap();
    let dir = store.find(&run).unwrap();
    let record = dir.read_record().unwrap();
    assert_eq!(record.status, RunStatus::Stopped);
    assert_eq!(record.epochs_completed, done);

    // The checkpoint to resume from holds the batch-norm running statistics: loaded back, it
    // scores the validation split exactly as training measured it.
    let checkpoint = dir.read_index().unwrap();
    let entry = checkpoint
        .checkpoints
        .iter()
        .find(|c| c.epoch == done)
        .expect("a checkpoint for the last epoch");
    let bundle = runs.path().join("stopped-bundle");
    let options = ExportOptions {
        onnx: false,
        ..ExportOptions::default()
    };
    export_checkpoint(runs.path(), &format!("{run}@{done}"), &bundle, &options).unwrap();
    let model = LoadedModel::open(&bundle).unwrap();
    let data = prepare(&record.data).unwrap();
    let predictions = model.predict_encoded(&data.valid.inputs).unwrap();
    let right = predictions
        .iter()
        .zip(&data.valid.labels)
        .filter(|(p, label)| {
            p.class.as_deref() == Some(data.schema.target.classes[**label as usize].as_str())
        })
        .count();
    let accuracy = right as f64 / data.valid.rows as f64;
    assert!(
        (accuracy - entry.metrics["valid_accuracy"]).abs() < 1.5 / data.valid.rows as f64,
        "checkpoint accuracy {} vs reloaded {accuracy}",
        entry.metrics["valid_accuracy"]
    );

    let resumed = resume(
        ResumeRequest {
            runs_dir: runs.path().to_path_buf(),
            run: run.clone(),
            extra_epochs: None,
            device: None,
            learning_rate: None,
        },
        None,
    )
    .expect("resumes");
    let events = resumed.wait();
    let (outcome, completed, message) = finished(&events);
    assert_eq!(outcome, Outcome::Completed, "{message}");
    assert_eq!(completed, PLANNED);
    assert!(events.iter().any(|e| matches!(
        e,
        TrainEvent::Started { start_epoch, total_epochs, .. }
            if *start_epoch == done && *total_epochs == PLANNED
    )));
    let rest = epochs(&events);
    assert_eq!(
        rest.iter().map(|m| m.epoch).collect::<Vec<_>>(),
        (done + 1..=PLANNED).collect::<Vec<_>>()
    );
    // The model continues from the checkpoint rather than from scratch.
    // (From scratch, an epoch's mean training loss is about that of epoch 1 again.)
    assert!(
        rest[0].train_loss < 0.6 * first[0].train_loss,
        "train loss {} at epoch 1, {} at resumed epoch {}",
        first[0].train_loss,
        rest[0].train_loss,
        rest[0].epoch
    );
    assert!(rest[0].valid_loss < first[0].valid_loss);
    assert!(rest[0].step > first.last().unwrap().step);

    let record = dir.read_record().unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.epochs_completed, PLANNED);
    assert!(record.best.and_then(|b| b.valid_accuracy).unwrap() >= 0.9);
    let log = dir.read_metrics().unwrap();
    let curve: Vec<(usize, u64, f64)> = log
        .series(SplitName::Valid, "accuracy")
        .map(|p| (p.epoch, p.step, p.wall_secs))
        .collect();
    assert_eq!(
        curve.iter().map(|c| c.0).collect::<Vec<_>>(),
        (1..=PLANNED).collect::<Vec<_>>(),
        "one continuous curve"
    );
    assert!(
        curve
            .windows(2)
            .all(|w| w[0].1 < w[1].1 && w[0].2 <= w[1].2),
        "steps and wall time increase: {curve:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Export and prediction on image files
// ---------------------------------------------------------------------------------------------

#[test]
fn an_exported_cnn_predicts_image_files_as_in_the_app() {
    let work = tempfile::tempdir().unwrap();
    let runs = work.path().join("runs");
    let (run, _) = train(request(&digits(), cnn(), &runs, 5));
    let bundle = work.path().join("bundle");
    let paths = export_checkpoint(&runs, &run, &bundle, &ExportOptions::default()).unwrap();
    for file in [
        &paths.card,
        &paths.burnpack,
        &paths.safetensors,
        &paths.onnx,
    ] {
        assert!(file.is_file(), "{} written", file.display());
    }

    let model = LoadedModel::open(&bundle).unwrap();
    assert!(model.takes_images());
    let card = &model.card;
    assert_eq!(card.files.len(), 3);
    assert_eq!(card.output_kind, "probabilities");
    assert_eq!(card.input_names.len(), 64);
    assert_eq!(card.input_names[9], "c0_y1_x1");
    assert_eq!(card.layers[0].name, "blocks.0.conv");
    assert_eq!(card.layers[0].safetensors_weight_shape, [16, 1, 3, 3]);
    assert_eq!(card.layers.last().unwrap().name, "head.1");
    assert_eq!(card.layers.last().unwrap().outputs, 10);
    assert_eq!(card.golden.inputs.len(), 8);
    assert_eq!(card.golden.raw.len(), 8);

    // Each golden row names a real file (relative to the dataset root); predicting that file
    // from disk gives the golden inputs and outputs computed in the app.
    let transform = card.preprocessor.image.as_ref().unwrap();
    for (index, raw) in card.golden.raw.iter().enumerate() {
        let relative = &raw["file"];
        let file = digits().join(relative);
        assert!(file.is_file(), "{relative} exists");
        assert!(
            relative.starts_with(&format!("{}/", raw["class"])),
            "{relative} is in its class folder"
        );
        let encoded = transform
            .encode_file_bytes(&std::fs::read(&file).unwrap())
            .unwrap();
        assert_eq!(encoded, card.golden.inputs[index], "inputs of {relative}");
        let report = predict_images(&model, &file).unwrap();
        assert_eq!(report.images.len(), 1);
        let image = &report.images[0];
        assert_eq!(image.actual.as_deref(), Some(raw["class"].as_str()));
        let prediction = image.result.as_ref().expect("predicted");
        assert_eq!(prediction.probabilities.len(), 10);
        for (got, want) in prediction
            .probabilities
            .iter()
            .zip(&card.golden.outputs[index])
        {
            assert!((got - want).abs() < 1e-5, "{relative}: {got} vs {want}");
        }
    }

    let verified = verify_bundle(&bundle).unwrap();
    assert!(verified.ok(), "{verified:?}");
    assert_eq!(verified.files_checked, 3);
    assert_eq!(verified.golden_rows, 8);

    // The whole dataset folder: every image is labelled with its class folder, most are
    // right, and the training data itself does not drift.
    let report = predict_images(&model, &digits()).unwrap();
    assert_eq!(report.images.len(), 1797);
    assert_eq!(report.unreadable(), 0);
    assert!(report.images.iter().all(|i| {
        let folder = i.file.parent().unwrap().file_name().unwrap();
        i.actual.as_deref() == folder.to_str()
    }));
    let (accuracy, labelled) = report.accuracy().unwrap();
    assert_eq!(labelled, 1797);
    assert!(accuracy > 0.9, "accuracy on the digits: {accuracy}");
    assert!(report.drift.is_empty(), "{:?}", report.drift);

    // An unreadable file gets its own error and does not stop the others; inverted images
    // (white background) are flagged as unlike the training data.
    let odd = work.path().join("odd");
    std::fs::create_dir(&odd).unwrap();
    for (index, file) in digit_files("6", 12).iter().enumerate() {
        let gray = image::open(file).unwrap().to_luma8();
        let inverted: Vec<u8> = gray.as_raw().iter().map(|p| 255 - p).collect();
        write_gray_png(
            &odd.join(format!("inverted-{index:02}.png")),
            8,
            8,
            inverted,
        );
    }
    std::fs::write(odd.join("zz-broken.png"), garbage(100)).unwrap();
    let report = predict_images(&model, &odd).unwrap();
    assert_eq!(report.images.len(), 13);
    assert_eq!(report.unreadable(), 1);
    let broken = report.images.last().unwrap();
    assert!(broken.file.ends_with("zz-broken.png"));
    assert!(broken.result.is_err());
    assert!(report.accuracy().is_none(), "'odd' is not a class name");
    assert_eq!(report.drift.len(), 1, "{:?}", report.drift);
    assert_eq!(report.drift[0].column, "pixel brightness");
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

#[test]
fn cli_trains_exports_and_predicts_a_cnn_on_image_folders() {
    let work = tempfile::tempdir().unwrap();
    let runs = work.path().join("runs");
    let data = digits();
    let out = kiln(
        &runs,
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--model",
            "cnn",
            "--epochs",
            "3",
            "--device",
            "cpu",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cnn 1×8×8"), "{stderr}");
    assert!(stderr.contains("epoch    3"), "{stderr}");
    let run = text(&out.stdout).trim().to_string();
    assert!(!run.is_empty());

    let bundle = work.path().join("bundle");
    let out = kiln(&runs, &["export", &run, "--out", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("onnx:"), "{}", text(&out.stdout));

    let class = data.join("7");
    let out = kiln(
        &runs,
        &[
            "predict",
            "--model",
            bundle.to_str().unwrap(),
            "--data",
            class.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("file,actual,prediction"), "{header}");
    assert_eq!(header.split(',').count(), 3 + 10);
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), std::fs::read_dir(&class).unwrap().count());
    for row in &rows {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), 13, "{row}");
        assert!(cells[0].ends_with(".png"), "{row}");
        assert_eq!(cells[1], "7", "{row}");
        let total: f64 = cells[3..].iter().map(|p| p.parse::<f64>().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-4, "{row}");
    }
    let stderr = text(&out.stderr);
    let accuracy: f64 = stderr
        .lines()
        .find_map(|line| {
            line.strip_prefix(&format!(
                "accuracy on {} image(s) in class-named folders: ",
                rows.len()
            ))
        })
        .and_then(|rest| rest.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("an accuracy line: {stderr}"));
    assert!(accuracy > 50.0, "{stderr}");

    // One image file: no class folder of the model's, so no `actual` column.
    let single = work.path().join("one.png");
    std::fs::copy(&digit_files("7", 1)[0], &single).unwrap();
    let out = kiln(
        &runs,
        &[
            "predict",
            "--model",
            bundle.to_str().unwrap(),
            "--data",
            single.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert!(csv.starts_with("file,prediction,p_0"), "{csv}");
    assert_eq!(csv.lines().count(), 2);

    let out = kiln(&runs, &["verify", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn cli_refuses_a_cnn_on_a_csv_file() {
    let runs = tempfile::tempdir().unwrap();
    let iris = sample("iris.csv");
    let out = kiln(
        runs.path(),
        &[
            "train",
            "--data",
            iris.to_str().unwrap(),
            "--model",
            "cnn",
            "--epochs",
            "1",
            "--device",
            "cpu",
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("a CNN needs image data"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing was trained.
    let out = kiln(runs.path(), &["runs", "--json"]);
    assert_eq!(text(&out.stdout).trim(), "[]");
}

#[test]
fn every_validation_epoch_keeps_its_confusion_matrix_and_show_reports_any_epoch() {
    let runs = tempfile::tempdir().unwrap();
    let (run, events) = train(request(&digits(), cnn(), runs.path(), 3));
    let metrics = epochs(&events);
    let dir = RunStore::open(runs.path()).unwrap().find(&run).unwrap();
    let log = dir.read_confusions(3).unwrap();
    assert_eq!(log.by_epoch.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    for m in &metrics {
        // The logged matrix is the one the epoch event carried, over every validation image.
        assert_eq!(log.by_epoch.get(&m.epoch), m.confusion.as_ref());
        let total: u64 = log.by_epoch[&m.epoch].iter().flatten().sum();
        assert_eq!(total, 359);
    }
    let best = dir.read_index().unwrap().best().cloned().unwrap();
    assert_eq!(best.confusion.as_ref(), log.by_epoch.get(&best.epoch));

    // A later epoch than the run reached (left by an interrupted session) and a torn line are
    // ignored; a repeated epoch (a resumed session) replaces the earlier matrix.
    let stale = "{\"epoch\":4,\"confusion\":[[1]]}\n{\"epoch\":2,\"confusion\":[[9]]}\n{\"epo";
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.confusion_path())
        .unwrap();
    file.write_all(stale.as_bytes()).unwrap();
    let log = dir.read_confusions(3).unwrap();
    assert_eq!(log.by_epoch.len(), 3);
    assert_eq!(log.by_epoch[&2], vec![vec![9]]);
    assert_eq!(log.bad_lines, vec![6]);

    let out = kiln(runs.path(), &["show", &format!("{run}@1")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("epoch 1 (chosen), validation per class:"),
        "{shown}"
    );
    assert_eq!(shown.matches(" precision ").count(), 10, "{shown}");
}

#[test]
fn a_checkpoint_evaluated_again_gives_its_confusion_matrix_and_lists_its_mistakes() {
    let runs = tempfile::tempdir().unwrap();
    let (run, _) = train(request(&digits(), cnn(), runs.path(), 2));
    let dir = RunStore::open(runs.path()).unwrap().find(&run).unwrap();
    let best = dir.read_index().unwrap().best().cloned().unwrap();
    let evaluation = kiln::export::evaluate_checkpoint(runs.path(), &run, best.epoch).unwrap();
    assert_eq!(evaluation.predictions.len(), 359);
    // The checkpoint reloaded on the CPU answers exactly as it did during training.
    let mut confusion = vec![vec![0u64; 10]; 10];
    for p in &evaluation.predictions {
        confusion[p.actual][p.predicted] += 1;
        assert!(evaluation.data.images().unwrap().items[p.row].label == p.actual);
    }
    assert_eq!(Some(&confusion), best.confusion.as_ref());
    let wrong = evaluation.misclassified();
    let off_diagonal: u64 = (0..10)
        .flat_map(|a| (0..10).filter(move |&b| b != a).map(move |b| (a, b)))
        .map(|(a, b)| confusion[a][b])
        .sum();
    assert_eq!(wrong.len() as u64, off_diagonal);
    assert!(wrong.windows(2).all(|w| w[0].confidence >= w[1].confidence));

    // A regression run has no mistakes to list.
    let diabetes = RunStore::open(runs.path()).unwrap();
    let (regression, _) = train(request(
        &sample("diabetes.csv"),
        ModelConfig::Mlp(MlpConfig::default()),
        diabetes.root(),
        1,
    ));
    let error = kiln::export::evaluate_checkpoint(runs.path(), &regression, 1)
        .err()
        .expect("refused");
    assert!(error.to_string().contains("only classification"), "{error}");
}
