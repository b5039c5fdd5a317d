//! Image datasets: a folder with one sub-folder per class (PNG/JPEG), or an MNIST IDX pair.
//!
//! Every image is decoded once, converted to the chosen channels and size, and kept as `u8`
//! pixels in channel-major (`[channels, height, width]`) order; normalisation happens later in
//! [`ImageTransform`], fitted on the training split only.

use std::path::{Path, PathBuf};

use image::DynamicImage;
use image::imageops::FilterType;
use serde::{Deserialize, Serialize};

use super::DataError;

/// File extensions read as images (case-insensitive); other files in class folders are ignored.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelMode {
    /// Grayscale when every image is grayscale, RGB otherwise.
    #[default]
    Auto,
    Gray,
    Rgb,
}

/// Random changes applied to training images each epoch (never to validation images).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Augmentation {
    #[serde(default)]
    pub flip_horizontal: bool,
    #[serde(default)]
    pub flip_vertical: bool,
    /// Shift each image by up to this many pixels in x and y, filling with black.
    #[serde(default)]
    pub max_shift_px: u32,
}

impl Augmentation {
    pub fn is_active(&self) -> bool {
        self.flip_horizontal || self.flip_vertical || self.max_shift_px > 0
    }
}

/// How to read an image dataset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageOptions {
    /// `[width, height]` to resize every image to; `None` keeps their own (common) size.
    #[serde(default)]
    pub size: Option<[u32; 2]>,
    #[serde(default)]
    pub channels: ChannelMode,
    #[serde(default)]
    pub augment: Augmentation,
    /// Leave out unreadable images (reported with a count) instead of failing.
    #[serde(default)]
    pub skip_bad_files: bool,
}

/// Channels, height and width of the images a model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.channels == 1 { "gray" } else { "RGB" };
        write!(f, "{}×{} {kind}", self.width, self.height)
    }
}

/// One image of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageItem {
    /// Path relative to the dataset root (or `file#index` for IDX), for messages and previews.
    pub name: String,
    pub label: usize,
}

/// A decoded image dataset.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub root: PathBuf,
    pub shape: ImageShape,
    pub classes: Vec<String>,
    pub items: Vec<ImageItem>,
    /// `items.len() × shape.pixels()` bytes, channel-major per image.
    pub pixels: Vec<u8>,
    /// Files left out because they could not be read, with the reason (only when asked to skip).
    pub skipped: Vec<String>,
    /// SHA-256 over every file's name and content (bad files included).
    pub content_sha256: String,
}

impl ImageSet {
    pub fn image(&self, index: usize) -> &[u8] {
        let size = self.shape.pixels();
        &self.pixels[index * size..(index + 1) * size]
    }

    pub fn labels(&self) -> Vec<usize> {
        self.items.iter().map(|item| item.label).collect()
    }

    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for item in &self.items {
            counts[item.label] += 1;
        }
        counts
    }
}

/// Whether a file's extension is one Kiln reads as an image.
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            IMAGE_EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if !is_hidden(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Image files in `dir` and in its sub-folders (one level down), sorted; hidden files and
/// other files are left out.
pub fn image_files_in(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            files.extend(
                sorted_entries(&path)?
                    .into_iter()
                    .filter(|file| file.is_file() && is_image_file(file)),
            );
        } else if path.is_file() && is_image_file(&path) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The class folders of an image-folder dataset and their image files, in sorted order.
pub fn list_class_folders(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, DataError> {
    let mut classes = Vec::new();
    for path in sorted_entries(root)? {
        if !path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let files: Vec<PathBuf> = sorted_entries(&path)?
            .into_iter()
            .filter(|file| file.is_file() && is_image_file(file))
            .collect();
        classes.push((name, files));
    }
    if classes.is_empty() {
        return Err(DataError::Invalid {
            path: root.to_path_buf(),
            message: "the folder has no class sub-folders; put each class's images in a sub-folder named after the class".to_string(),
        });
    }
    if let Some((name, _)) = classes.iter().find(|(_, files)| files.is_empty()) {
        return Err(DataError::Invalid {
            path: root.join(name),
            message: format!(
                "the class folder '{name}' has no images ({})",
                IMAGE_EXTENSIONS.join(", ")
            ),
        });
    }
    if classes.len() < 2 {
        return Err(DataError::SingleClass {
            path: root.to_path_buf(),
            column: "class folders".to_string(),
            class: classes[0].0.clone(),
        });
    }
    Ok(classes)
}

/// Largest image side Kiln decodes; a header claiming more is refused before allocating.
const MAX_IMAGE_SIDE: u32 = 16_384;
/// Most memory one image's decoding may allocate.
const MAX_IMAGE_ALLOC: u64 = 512 * 1024 * 1024;

/// Decodes image bytes; the error says what is wrong with the file.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let explain = |error: image::ImageError| match error {
        image::ImageError::Unsupported(_) => format!("not a PNG or JPEG image ({error})"),
        image::ImageError::Limits(_) => format!("the image is larger than Kiln reads ({error})"),
        other => format!("corrupt or unreadable image ({other})"),
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| format!("unreadable image ({error})"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(explain)
}

fn is_grayscale(image: &DynamicImage) -> bool {
    !image.color().has_color()
}

/// Converts a decoded image to `shape` (resizing if needed) as channel-major `u8` pixels.
pub fn to_pixels(image: &DynamicImage, shape: ImageShape) -> Vec<u8> {
    let (width, height) = (shape.width as u32, shape.height as u32);
    let resized;
    let image = if image.width() != width || image.height() != height {
        resized = image.resize_exact(width, height, FilterType::Triangle);
        &resized
    } else {
        image
    };
    let plane = shape.height * shape.width;
    if shape.channels == 1 {
        image.to_luma8().into_raw()
    } else {
        let rgb = image.to_rgb8();
        let mut pixels = vec![0u8; 3 * plane];
        for (index, pixel) in rgb.pixels().enumerate() {
            for channel in 0..3 {
                pixels[channel * plane + index] = pixel.0[channel];
            }
        }
        pixels
    }
}

/// Channels for a set of decoded images under `mode`.
pub fn channels_for<'a>(
    mode: ChannelMode,
    mut images: impl Iterator<Item = &'a DynamicImage>,
) -> usize {
    match mode {
        ChannelMode::Gray => 1,
        ChannelMode::Rgb => 3,
        ChannelMode::Auto if images.all(is_grayscale) => 1,
        ChannelMode::Auto => 3,
    }
}

/// Reads an image-folder dataset.
pub fn load_image_folder(root: &Path, options: &ImageOptions) -> Result<ImageSet, DataError> {
    use sha2::{Digest, Sha256};
    let folders = list_class_folders(root)?;
    let mut manifest = Sha256::new();
    let mut decoded: Vec<(ImageItem, DynamicImage)> = Vec::new();
    let mut bad: Vec<(PathBuf, String)> = Vec::new();
    let files: Vec<(usize, &PathBuf)> = folders
        .iter()
        .enumerate()
        .flat_map(|(label, (_, files))| files.iter().map(move |file| (label, file)))
        .collect();
    // Reading, hashing and decoding on every core; the results come back in the folders'
    // order, so the manifest (the fingerprint) and the images' order do not depend on it.
    let read = super::parallel::map_in_parallel(&files, |&(_, file)| {
        let bytes = std::fs::read(file).map_err(|source| DataError::Io {
            path: file.clone(),
            source,
        })?;
        Ok((Sha256::digest(&bytes), decode(&bytes)))
    });
    for (&(label, file), result) in files.iter().zip(read) {
        let (digest, image) = result?;
        let name = relative_name(root, file);
        manifest.update(name.as_bytes());
        manifest.update([0]);
        manifest.update(digest);
        match image {
            Ok(image) => decoded.push((ImageItem { name, label }, image)),
            Err(reason) => bad.push((file.clone(), reason)),
        }
    }
    let skipped = check_bad_files(bad, options.skip_bad_files)?;
    let classes: Vec<String> = folders.into_iter().map(|(name, _)| name).collect();
    let mut counts = vec![0usize; classes.len()];
    for (item, _) in &decoded {
        counts[item.label] += 1;
    }
    if let Some(empty) = counts.iter().position(|&count| count == 0) {
        return Err(DataError::Invalid {
            path: root.join(&classes[empty]),
            message: format!(
                "every image of class '{}' was unreadable and skipped; the class has nothing left to learn from",
                classes[empty]
            ),
        });
    }
    let shape = common_shape(root, &decoded, options)?;
    let mut pixels = Vec::with_capacity(decoded.len() * shape.pixels());
    for image_pixels in
        super::parallel::map_in_parallel(&decoded, |(_, image)| to_pixels(image, shape))
    {
        pixels.extend(image_pixels);
    }
    let items: Vec<ImageItem> = decoded.into_iter().map(|(item, _)| item).collect();
    Ok(ImageSet {
        root: root.to_path_buf(),
        shape,
        classes,
        items,
        pixels,
        skipped,
        content_sha256: super::fingerprint::hex(&manifest.finalize()),
    })
}

fn relative_name(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Fails on the first bad file unless skipping was asked for; returns what was skipped.
fn check_bad_files(bad: Vec<(PathBuf, String)>, skip: bool) -> Result<Vec<String>, DataError> {
    match bad.first() {
        Some((path, reason)) if !skip => Err(DataError::Invalid {
            path: path.clone(),
            message: if bad.len() == 1 {
                format!("{reason}; remove the file or choose to skip unreadable images")
            } else {
                format!(
                    "{reason}; {} unreadable images in all — remove them or choose to skip unreadable images",
                    bad.len()
                )
            },
        }),
        _ => Ok(bad
            .into_iter()
            .map(|(path, reason)| format!("{}: {reason}", path.display()))
            .collect()),
    }
}

/// Largest input edge Kiln resizes to; small models on small images are what it is for.
pub const MAX_IMAGE_EDGE_PX: u32 = 1024;

/// Checks a chosen input size (`[width, height]`).
pub fn check_size(path: &Path, [width, height]: [u32; 2]) -> Result<[u32; 2], DataError> {
    if width == 0 || height == 0 || width > MAX_IMAGE_EDGE_PX || height > MAX_IMAGE_EDGE_PX {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "an input size of {width}×{height} is not possible; choose 1 to {MAX_IMAGE_EDGE_PX} pixels a side"
            ),
        });
    }
    Ok([width, height])
}

/// The size every image becomes: the chosen size, or the images' own size when they all agree.
fn common_shape(
    root: &Path,
    decoded: &[(ImageItem, DynamicImage)],
    options: &ImageOptions,
) -> Result<ImageShape, DataError> {
    let channels = channels_for(options.channels, decoded.iter().map(|(_, image)| image));
    if let Some(size) = options.size {
        let [width, height] = check_size(root, size)?;
        return Ok(ImageShape {
            channels,
            height: height as usize,
            width: width as usize,
        });
    }
    let (first_item, first) = &decoded[0];
    let (width, height) = (first.width(), first.height());
    if let Some((item, image)) = decoded
        .iter()
        .find(|(_, image)| image.width() != width || image.height() != height)
    {
        return Err(DataError::Invalid {
            path: root.join(&item.name),
            message: format!(
                "the image is {}×{} but {} is {width}×{height}; choose an input size to resize every image to",
                image.width(),
                image.height(),
                first_item.name
            ),
        });
    }
    Ok(ImageShape {
        channels,
        height: height as usize,
        width: width as usize,
    })
}
