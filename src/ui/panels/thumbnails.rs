//! The preview of an image dataset: a row of thumbnails per class, with its count.

use crate::data::{ImageSet, PreparedData};

/// Thumbnails shown per class.
const THUMBNAILS_PER_CLASS: usize = 14;
/// Displayed edge of a thumbnail; small images are scaled up without smoothing.
const THUMBNAIL_PX: f32 = 44.0;

/// Textures of the shown thumbnails, made once per dataset (keyed by its fingerprint).
#[derive(Default)]
pub struct ThumbnailCache {
    dataset_id: String,
    per_class: Vec<Vec<egui::TextureHandle>>,
}

impl ThumbnailCache {
    fn refresh(&mut self, ctx: &egui::Context, prepared: &PreparedData, set: &ImageSet) {
        if self.dataset_id == prepared.fingerprint.id {
            return;
        }
        self.dataset_id = prepared.fingerprint.id.clone();
        self.per_class = (0..set.classes.len())
            .map(|class| {
                set.items
                    .iter()
                    .enumerate()
                    .filter(|(_, item)| item.label == class)
                    .take(THUMBNAILS_PER_CLASS)
                    .map(|(index, item)| {
                        ctx.load_texture(
                            format!("thumbnail-{}", item.name),
                            color_image(set, index),
                            egui::TextureOptions::NEAREST,
                        )
                    })
                    .collect()
            })
            .collect();
    }
}

/// One image of the set as an egui image (channel-major pixels to interleaved RGB or gray).
pub(super) fn color_image(set: &ImageSet, index: usize) -> egui::ColorImage {
    let shape = set.shape;
    let pixels = set.image(index);
    let size = [shape.width, shape.height];
    if shape.channels == 1 {
        return egui::ColorImage::from_gray(size, pixels);
    }
    let plane = shape.width * shape.height;
    let rgb: Vec<u8> = (0..plane)
        .flat_map(|at| [pixels[at], pixels[plane + at], pixels[2 * plane + at]])
        .collect();
    egui::ColorImage::from_rgb(size, &rgb)
}

pub fn thumbnails_ui(ui: &mut egui::Ui, prepared: &PreparedData, cache: &mut ThumbnailCache) {
    let Some(set) = prepared.images() else {
        return;
    };
    cache.refresh(ui.ctx(), prepared, set);
    ui.label(format!(
        "{} — {} images in {} classes, {} (as the model sees them)",
        prepared.fingerprint.file_name,
        set.items.len(),
        set.classes.len(),
        set.shape
    ));
    let counts = set.class_counts();
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            egui::Grid::new("thumbnail_grid")
                .num_columns(2)
                .spacing([10.0, 6.0])
                .striped(true)
                .show(ui, |ui| {
                    for (class, textures) in cache.per_class.iter().enumerate() {
                        ui.vertical(|ui| {
                            ui.add(
                                egui::Label::new(egui::RichText::new(&set.classes[class]).strong())
                                    .truncate(),
                            );
                            ui.add(
                                egui::Label::new(
                                    egui::RichText::new(format!("{} images", counts[class])).weak(),
                                )
                                .extend(),
                            );
                        });
                        ui.horizontal(|ui| {
                            for texture in textures {
                                ui.add(
                                    egui::Image::new(texture)
                                        .fit_to_exact_size(egui::vec2(THUMBNAIL_PX, THUMBNAIL_PX)),
                                );
                            }
                        });
                        ui.end_row();
                    }
                });
        });
}
