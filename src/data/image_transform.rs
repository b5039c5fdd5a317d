//! Turning decoded image pixels into model inputs: per-channel normalisation fitted on the
//! training images, and the random flips and shifts of training-time augmentation.

use serde::{Deserialize, Serialize};

use super::images::{Augmentation, ImageSet, ImageShape, decode, to_pixels};

/// Per-channel normalisation fitted on training images: `(pixel / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageTransform {
    pub shape: ImageShape,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl ImageTransform {
    pub fn fit(set: &ImageSet, rows: &[usize]) -> Self {
        let shape = set.shape;
        let plane = shape.height * shape.width;
        let mut mean = vec![0.0; shape.channels];
        let mut std = vec![1.0; shape.channels];
        for channel in 0..shape.channels {
            let (mut sum, mut sum_sq, mut count) = (0.0f64, 0.0f64, 0usize);
            for &row in rows {
                for &pixel in &set.image(row)[channel * plane..(channel + 1) * plane] {
                    let value = pixel as f64 / 255.0;
                    sum += value;
                    sum_sq += value * value;
                    count += 1;
                }
            }
            if count > 0 {
                let m = sum / count as f64;
                let variance = (sum_sq / count as f64 - m * m).max(0.0);
                mean[channel] = m;
                // A blank channel carries nothing; dividing by 1 keeps it at zero, not NaN.
                std[channel] = if variance.sqrt() > 1e-6 {
                    variance.sqrt()
                } else {
                    1.0
                };
            }
        }
        Self { shape, mean, std }
    }

    /// Appends one image's model inputs to `out`.
    pub fn encode_into(&self, pixels: &[u8], out: &mut Vec<f32>) {
        let plane = self.shape.height * self.shape.width;
        for channel in 0..self.shape.channels {
            let (mean, std) = (self.mean[channel], self.std[channel]);
            out.extend(
                pixels[channel * plane..(channel + 1) * plane]
                    .iter()
                    .map(|&pixel| ((pixel as f64 / 255.0 - mean) / std) as f32),
            );
        }
    }

    /// Model inputs for an image file's bytes, resized and converted like the training images.
    pub fn encode_file_bytes(&self, bytes: &[u8]) -> Result<Vec<f32>, String> {
        let image = decode(bytes)?;
        let mut out = Vec::with_capacity(self.shape.pixels());
        self.encode_into(&to_pixels(&image, self.shape), &mut out);
        Ok(out)
    }
}

/// Applies random flips and shifts to one channel-major image.
pub fn augment_image(
    pixels: &[u8],
    shape: ImageShape,
    augment: &Augmentation,
    rng: &mut impl rand::Rng,
) -> Vec<u8> {
    use rand::RngExt;
    let flip_x = augment.flip_horizontal && rng.random_bool(0.5);
    let flip_y = augment.flip_vertical && rng.random_bool(0.5);
    let max = augment.max_shift_px as i64;
    let (dx, dy) = if max > 0 {
        (rng.random_range(-max..=max), rng.random_range(-max..=max))
    } else {
        (0, 0)
    };
    let (w, h) = (shape.width as i64, shape.height as i64);
    let mut out = vec![0u8; pixels.len()];
    for channel in 0..shape.channels {
        let base = channel * shape.height * shape.width;
        for y in 0..h {
            for x in 0..w {
                // The source pixel that lands at (x, y) after the shift and the flips.
                let (sx, sy) = (x - dx, y - dy);
                if !(0..w).contains(&sx) || !(0..h).contains(&sy) {
                    continue;
                }
                let sx = if flip_x { w - 1 - sx } else { sx };
                let sy = if flip_y { h - 1 - sy } else { sy };
                out[base + (y * w + x) as usize] = pixels[base + (sy * w + sx) as usize];
            }
        }
    }
    out
}
