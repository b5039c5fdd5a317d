//! MNIST's IDX format: `*-images-idx3-ubyte` (u8 images) with `*-labels-idx1-ubyte` (u8
//! labels), each optionally gzipped. Read from local files only.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::DataError;
use super::images::{ImageItem, ImageOptions, ImageSet, ImageShape, check_size, to_pixels};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
const IMAGES_MARK: &str = "images-idx3-ubyte";
const LABELS_MARK: &str = "labels-idx1-ubyte";

/// Whether a file name looks like an IDX images file.
pub fn is_idx_images(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.contains(IMAGES_MARK))
}

/// The IDX images file inside a folder (preferring the training set), if there is one.
pub fn find_idx_images(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && is_idx_images(path))
        .collect();
    found.sort();
    let train = found.iter().position(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("train"))
    });
    match train {
        Some(index) => Some(found.swap_remove(index)),
        None => found.into_iter().next(),
    }
}

/// The labels file that goes with an images file (same name with `labels-idx1-ubyte`).
pub fn labels_path_for(images: &Path) -> Result<PathBuf, DataError> {
    let name = images
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let wanted = name.replace(IMAGES_MARK, LABELS_MARK);
    let candidates = [
        wanted.clone(),
        format!("{wanted}.gz"),
        wanted.trim_end_matches(".gz").to_string(),
    ];
    candidates
        .iter()
        .map(|candidate| images.with_file_name(candidate))
        .find(|path| path.is_file())
        .ok_or_else(|| DataError::Invalid {
            path: images.to_path_buf(),
            message: format!("no labels file '{wanted}' next to the images file"),
        })
}

/// Largest IDX content Kiln reads, after decompression (MNIST's training images are 47 MB).
const MAX_IDX_BYTES: u64 = 2 * 1024 * 1024 * 1024;

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The file's content, gunzipped when it is gzip (bounded, so a gzip bomb is refused).
fn gunzip_if_needed(path: &Path, raw: &[u8]) -> Result<Vec<u8>, DataError> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw.to_vec());
    }
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(MAX_IDX_BYTES + 1)
        .read_to_end(&mut plain)
        .map_err(|error| DataError::Invalid {
            path: path.to_path_buf(),
            message: format!("the gzip stream is corrupt or cut short ({error})"),
        })?;
    if plain.len() as u64 > MAX_IDX_BYTES {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            message: format!("it unpacks to more than {MAX_IDX_BYTES} bytes"),
        });
    }
    Ok(plain)
}

fn header(path: &Path, bytes: &[u8], magic: u32, dims: usize) -> Result<Vec<usize>, DataError> {
    let invalid = |message: String| DataError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let header_len = 4 + 4 * dims;
    if bytes.len() < header_len {
        return Err(invalid(format!(
            "the file is {} bytes, too short for an IDX header",
            bytes.len()
        )));
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        return Err(invalid(format!(
            "not an IDX file of this kind (magic number {found:#010x}, expected {magic:#010x})"
        )));
    }
    let sizes: Vec<usize> = (0..dims)
        .map(|dim| {
            let at = 4 + 4 * dim;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    let expected = sizes
        .iter()
        .try_fold(1usize, |product, &size| product.checked_mul(size))
        .and_then(|product| product.checked_add(header_len))
        .ok_or_else(|| {
            invalid(format!(
                "the header promises sizes {sizes:?}, more data than any file holds; it is not IDX"
            ))
        })?;
    if bytes.len() != expected {
        return Err(invalid(format!(
            "the header promises {expected} bytes but the file has {}; it is truncated or not IDX",
            bytes.len()
        )));
    }
    Ok(sizes)
}

/// Reads an IDX images file and its labels file.
pub fn load_idx(images_path: &Path, options: &ImageOptions) -> Result<ImageSet, DataError> {
    let labels_path = labels_path_for(images_path)?;
    let images_raw = read_file(images_path)?;
    let labels_raw = read_file(&labels_path)?;
    parse_idx(
        (images_path, &images_raw),
        (&labels_path, &labels_raw),
        options,
    )
}

/// Parses an IDX pair from the files' bytes (each possibly gzipped); the paths name them in
/// errors and the item names.
pub fn parse_idx(
    (images_path, images_raw): (&Path, &[u8]),
    (labels_path, labels_raw): (&Path, &[u8]),
    options: &ImageOptions,
) -> Result<ImageSet, DataError> {
    let labels_path = labels_path.to_path_buf();
    let images = gunzip_if_needed(images_path, images_raw)?;
    let labels = gunzip_if_needed(&labels_path, labels_raw)?;
    let sizes = header(images_path, &images, IMAGES_MAGIC, 3)?;
    let (count, height, width) = (sizes[0], sizes[1], sizes[2]);
    let label_count = header(&labels_path, &labels, LABELS_MAGIC, 1)?[0];
    if label_count != count {
        return Err(DataError::Invalid {
            path: labels_path,
            message: format!("{label_count} labels for {count} images"),
        });
    }
    let labels = &labels[8..];
    let mut values: Vec<u8> = labels.to_vec();
    values.sort_unstable();
    values.dedup();
    if values.len() < 2 {
        return Err(DataError::SingleClass {
            path: labels_path,
            column: "labels".to_string(),
            class: values.first().map(u8::to_string).unwrap_or_default(),
        });
    }
    let channels = match options.channels {
        super::ChannelMode::Rgb => 3,
        _ => 1,
    };
    let shape = match options.size {
        Some(size) => {
            let [w, h] = check_size(images_path, size)?;
            ImageShape {
                channels,
                height: h as usize,
                width: w as usize,
            }
        }
        None => ImageShape {
            channels,
            height,
            width,
        },
    };
    let file_name = images_path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plane = height * width;
    let mut pixels = Vec::with_capacity(count * shape.pixels());
    let mut items = Vec::with_capacity(count);
    for index in 0..count {
        let raw = &images[16 + index * plane..16 + (index + 1) * plane];
        if shape.channels == 1 && shape.height == height && shape.width == width {
            pixels.extend_from_slice(raw);
        } else {
            let gray = image::GrayImage::from_raw(width as u32, height as u32, raw.to_vec())
                .ok_or_else(|| DataError::Invalid {
                    path: images_path.to_path_buf(),
                    message: format!("image {index} does not fit its {width}×{height} header"),
                })?;
            pixels.extend(to_pixels(&image::DynamicImage::ImageLuma8(gray), shape));
        }
        let label = values.binary_search(&labels[index]).unwrap_or_default();
        items.push(ImageItem {
            name: format!("{file_name}#{index}"),
            label,
        });
    }
    let mut manifest = Sha256::new();
    manifest.update(Sha256::digest(images_raw));
    manifest.update(Sha256::digest(labels_raw));
    Ok(ImageSet {
        root: images_path.to_path_buf(),
        shape,
        classes: values.iter().map(u8::to_string).collect(),
        items,
        pixels,
        skipped: Vec::new(),
        content_sha256: super::fingerprint::hex(&manifest.finalize()),
    })
}

/// Writes an IDX pair (gzipped when a path ends in `.gz`): `images` holds `count` images of
/// `height × width` bytes each.
pub fn write_idx(
    images_path: &Path,
    labels_path: &Path,
    images: &[u8],
    height: usize,
    width: usize,
    labels: &[u8],
) -> std::io::Result<()> {
    let count = labels.len();
    if images.len() != count * height * width {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "image bytes do not match count × height × width",
        ));
    }
    let mut image_bytes = IMAGES_MAGIC.to_be_bytes().to_vec();
    for size in [count, height, width] {
        image_bytes.extend((size as u32).to_be_bytes());
    }
    image_bytes.extend_from_slice(images);
    let mut label_bytes = LABELS_MAGIC.to_be_bytes().to_vec();
    label_bytes.extend((count as u32).to_be_bytes());
    label_bytes.extend_from_slice(labels);
    write_maybe_gzipped(images_path, &image_bytes)?;
    write_maybe_gzipped(labels_path, &label_bytes)
}

fn write_maybe_gzipped(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if path.extension().is_some_and(|ext| ext == "gz") {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes)?;
        std::fs::write(path, encoder.finish()?)
    } else {
        std::fs::write(path, bytes)
    }
}
