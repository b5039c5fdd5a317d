//! The window's layout rules in one place: how big each region may get, so every panel stays
//! usable from 1024×640 up (the plot never shrinks to a sliver, long content scrolls, and the
//! splitters can be seen).

use egui::{Rangef, Rect};

/// The smallest window the layout is designed for.
pub const MIN_WINDOW: [f32; 2] = [1024.0, 640.0];
/// The plot keeps at least this height (its toolbar and legend not counted).
pub const MIN_PLOT_HEIGHT: f32 = 180.0;
/// Height of the plot's toolbar and legend rows together, roughly.
const PLOT_CHROME_HEIGHT: f32 = 60.0;
/// The details panel (runs, preview, compare, checkpoint, model) never gets smaller than this.
pub const MIN_DETAILS_HEIGHT: f32 = 150.0;
/// The details panel's share of the height at first launch.
const DEFAULT_DETAILS_SHARE: f32 = 0.42;
/// The setup column (data, model, training).
pub const DEFAULT_SETUP_WIDTH: f32 = 330.0;
pub const MIN_SETUP_WIDTH: f32 = 270.0;
/// The plot keeps at least this width beside the setup column.
const MIN_PLOT_WIDTH: f32 = 420.0;
/// Space the Train/Stop block takes at most; the form above it scrolls.
pub const MAX_TRAIN_CONTROLS_FRACTION: f32 = 0.5;

/// Sizes the details panel may take in a window whose central area is `available` high.
pub fn details_height_range(available: f32) -> Rangef {
    let max = (available - MIN_PLOT_HEIGHT - PLOT_CHROME_HEIGHT).max(MIN_DETAILS_HEIGHT);
    Rangef::new(MIN_DETAILS_HEIGHT, max)
}

/// The details panel's height at first launch (then the user's splitter decides).
pub fn default_details_height(available: f32) -> f32 {
    let range = details_height_range(available);
    (available * DEFAULT_DETAILS_SHARE).clamp(range.min, range.max)
}

/// Widths the setup column may take in a window `available` wide.
pub fn setup_width_range(available: f32) -> Rangef {
    let max = (available - MIN_PLOT_WIDTH).max(MIN_SETUP_WIDTH);
    Rangef::new(MIN_SETUP_WIDTH, max)
}

/// Whether two blocks fit side by side in `ui` (else they stack).
pub fn fits_side_by_side(ui: &egui::Ui, left_width: f32, right_width: f32) -> bool {
    ui.available_width() >= left_width + right_width + ui.spacing().item_spacing.x * 4.0
}

/// Which edge of a panel can be dragged.
#[derive(Clone, Copy)]
pub enum Edge {
    Top,
    Right,
}

/// Draws a small grip on a panel's draggable edge so users find the splitter without hovering.
pub fn splitter_grip(ctx: &egui::Context, panel: Rect, edge: Edge) {
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Middle,
        egui::Id::unique("kiln_splitter_grips"),
    ));
    let color = ctx
        .global_style()
        .visuals
        .widgets
        .noninteractive
        .fg_stroke
        .color;
    let stroke = egui::Stroke::new(1.5, color.gamma_multiply(0.6));
    match edge {
        Edge::Top => {
            let center = egui::pos2(panel.center().x, panel.top());
            for offset in [-2.5, 2.5] {
                painter.line_segment(
                    [
                        center + egui::vec2(-14.0, offset),
                        center + egui::vec2(14.0, offset),
                    ],
                    stroke,
                );
            }
        }
        Edge::Right => {
            let center = egui::pos2(panel.right(), panel.center().y);
            for offset in [-2.5, 2.5] {
                painter.line_segment(
                    [
                        center + egui::vec2(offset, -14.0),
                        center + egui::vec2(offset, 14.0),
                    ],
                    stroke,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_keeps_its_minimum_height_in_the_smallest_window() {
        // 640 high minus the top bar and the status bar.
        let central = MIN_WINDOW[1] - 60.0;
        let range = details_height_range(central);
        assert!(central - range.max >= MIN_PLOT_HEIGHT + PLOT_CHROME_HEIGHT - 0.5);
        assert!(range.min <= range.max);
    }

    #[test]
    fn the_setup_column_leaves_room_for_the_plot() {
        let range = setup_width_range(MIN_WINDOW[0]);
        assert!(MIN_WINDOW[0] - range.max >= MIN_PLOT_WIDTH);
    }
}
