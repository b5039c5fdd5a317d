//! Training curves: several runs overlaid, smoothing, log scale, checkpoint markers, NaN markers.

use egui::Color32;
use egui_plot::{Corner, Legend, Line, MarkerShape, Plot, PlotPoint, PlotPoints, Points};
use serde::{Deserialize, Serialize};

use super::cache::RunCurves;
use super::series::transform_y;
use crate::runs::{MetricPoint, SplitName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum XAxis {
    #[default]
    Epoch,
    Step,
    WallTime,
}

impl XAxis {
    pub const ALL: [XAxis; 3] = [XAxis::Epoch, XAxis::Step, XAxis::WallTime];

    pub fn label(self) -> &'static str {
        match self {
            XAxis::Epoch => "epoch",
            XAxis::Step => "step",
            XAxis::WallTime => "wall time (s)",
        }
    }

    pub(crate) fn of_point(self, point: &MetricPoint) -> f64 {
        match self {
            XAxis::Epoch => point.epoch as f64,
            XAxis::Step => point.step as f64,
            XAxis::WallTime => point.wall_secs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlotSettings {
    /// `loss`, `accuracy`, `rmse` or `batch_loss`.
    pub metric: String,
    pub x_axis: XAxis,
    /// EMA weight in [0, 1); 0 draws the raw curve only.
    pub smoothing: f64,
    pub log_y: bool,
}

impl Default for PlotSettings {
    fn default() -> Self {
        Self {
            metric: "loss".to_string(),
            x_axis: XAxis::Epoch,
            smoothing: 0.0,
            log_y: false,
        }
    }
}

/// Exponential moving average with bias correction (as TensorBoard draws it): early values are
/// not pulled towards zero. Non-finite values are passed through and do not disturb the average.
pub fn debiased_ema(values: &[f64], weight: f64) -> Vec<f64> {
    let mut average = 0.0;
    let mut count = 0i32;
    values
        .iter()
        .map(|&value| {
            if !value.is_finite() {
                return value;
            }
            count += 1;
            average = weight * average + (1.0 - weight) * value;
            average / (1.0 - weight.powi(count))
        })
        .collect()
}

/// One run to draw.
pub struct PlotRun<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub color: Color32,
    pub curves: &'a RunCurves,
}

/// A checkpoint marker's place on screen, to find the one a click lands on.
struct Marker {
    run: String,
    epoch: usize,
    point: PlotPoint,
}

/// Distinct, readable colours for runs, in order.
pub fn run_color(index: usize) -> Color32 {
    const PALETTE: [Color32; 8] = [
        Color32::from_rgb(0x4e, 0x9a, 0xf1),
        Color32::from_rgb(0xf5, 0x8b, 0x3c),
        Color32::from_rgb(0x5c, 0xc2, 0x6f),
        Color32::from_rgb(0xe0, 0x5a, 0x8a),
        Color32::from_rgb(0xb0, 0x8c, 0xf0),
        Color32::from_rgb(0xe6, 0xc3, 0x3d),
        Color32::from_rgb(0x3d, 0xc8, 0xc8),
        Color32::from_rgb(0xc8, 0x7d, 0x5a),
    ];
    PALETTE[index % PALETTE.len()]
}

/// What the plot reports back: a clicked checkpoint, and how many points it drew.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlotOutcome {
    pub clicked_checkpoint: Option<(String, usize)>,
    pub points_drawn: usize,
    pub markers_drawn: usize,
}

pub fn curves_ui(
    ui: &mut egui::Ui,
    settings: &PlotSettings,
    runs: &[PlotRun<'_>],
    selected: Option<(&str, usize)>,
) -> PlotOutcome {
    let log_y = settings.log_y;
    let x_axis = settings.x_axis;
    let metric = settings.metric.clone();
    let mut markers: Vec<Marker> = Vec::new();
    let mut outcome = PlotOutcome::default();
    let y_label = if log_y {
        format!("{metric} (log scale)")
    } else {
        metric.clone()
    };
    let plot = Plot::new("kiln_curves")
        .legend(
            Legend::default()
                .position(Corner::RightTop)
                .follow_insertion_order(true),
        )
        .x_axis_label(x_axis.label())
        .y_axis_label(y_label)
        .y_axis_formatter(move |mark, _range| {
            if log_y {
                format_log_tick(mark.value)
            } else {
                format!("{:.4}", mark.value)
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            }
        })
        .label_formatter(move |hover| match hover {
            egui_plot::HoverPosition::NearDataPoint {
                plot_name,
                position,
                ..
            } => {
                let y = if log_y {
                    10f64.powf(position.y)
                } else {
                    position.y
                };
                Some(format!(
                    "{plot_name}\n{} {:.4}\n{metric} {y:.5}",
                    x_axis.label(),
                    position.x
                ))
            }
            egui_plot::HoverPosition::Elsewhere { .. } => None,
        });

    let limit = super::series::points_per_series(runs.len() * 2);
    let response = plot.show(ui, |plot_ui| {
        for run in runs {
            let splits: &[SplitName] = if settings.metric == "batch_loss" {
                &[SplitName::Train]
            } else {
                &[SplitName::Train, SplitName::Valid]
            };
            for &split in splits {
                let prepared = run
                    .curves
                    .series
                    .get(&run.curves.log, split, settings, limit);
                if prepared.count == 0 {
                    continue;
                }
                let name = format!("{} · {}", run.name, split.name());
                let color = if split == SplitName::Train {
                    run.color.gamma_multiply(0.55)
                } else {
                    run.color
                };
                outcome.points_drawn += prepared.count;
                let raw_color = if prepared.smoothed.is_some() {
                    color.gamma_multiply(0.3)
                } else {
                    color
                };
                plot_ui.line(
                    Line::new(name.clone(), PlotPoints::new(prepared.raw.clone()))
                        .color(raw_color)
                        .width(if split == SplitName::Valid { 2.0 } else { 1.5 }),
                );
                if let Some(smoothed) = &prepared.smoothed {
                    plot_ui.line(
                        Line::new(name.clone(), PlotPoints::new(smoothed.clone()))
                            .color(color)
                            .width(2.0),
                    );
                }
                // Values that cannot be drawn on this scale are shown, not dropped.
                if !prepared.bad.is_empty() {
                    plot_ui.points(
                        Points::new(
                            format!("{name} (NaN/Inf)"),
                            PlotPoints::new(prepared.bad.clone()),
                        )
                        .shape(MarkerShape::Cross)
                        .radius(6.0)
                        .color(Color32::from_rgb(0xe5, 0x3e, 0x3e)),
                    );
                }
            }
            if settings.metric == "batch_loss" {
                continue;
            }
            let key = format!("valid_{}", settings.metric);
            let mut normal = Vec::new();
            for entry in &run.curves.index.checkpoints {
                let Some(y) = entry.metrics.get(&key).and_then(|v| transform_y(*v, log_y)) else {
                    continue;
                };
                let x = match x_axis {
                    XAxis::Epoch => entry.epoch as f64,
                    XAxis::Step => entry.step as f64,
                    XAxis::WallTime => entry.wall_secs,
                };
                markers.push(Marker {
                    run: run.id.to_string(),
                    epoch: entry.epoch,
                    point: PlotPoint::new(x, y),
                });
                let is_selected = selected == Some((run.id, entry.epoch));
                // Markers share the validation curve's name: one legend entry shows or hides both.
                let series_name = format!("{} · {}", run.name, SplitName::Valid.name());
                if entry.best || is_selected {
                    plot_ui.points(
                        Points::new(series_name, PlotPoints::new(vec![[x, y]]))
                            .shape(if entry.best {
                                MarkerShape::Diamond
                            } else {
                                MarkerShape::Circle
                            })
                            .radius(if is_selected { 9.0 } else { 7.0 })
                            // Selected: a larger hollow marker in the run's colour (which the
                            // legend entry it shares also shows).
                            .filled(!is_selected)
                            .color(run.color),
                    );
                } else {
                    normal.push([x, y]);
                }
            }
            outcome.markers_drawn += markers.iter().filter(|m| m.run == run.id).count();
            if !normal.is_empty() {
                plot_ui.points(
                    Points::new(
                        format!("{} · {}", run.name, SplitName::Valid.name()),
                        PlotPoints::new(normal),
                    )
                    .shape(MarkerShape::Circle)
                    .radius(3.5)
                    .filled(true)
                    .color(run.color),
                );
            }
        }
    });

    if response.response.clicked()
        && let Some(pointer) = response.response.interact_pointer_pos()
    {
        let nearest = markers
            .iter()
            .map(|marker| {
                let screen = response.transform.position_from_point(&marker.point);
                (marker, screen.distance(pointer))
            })
            .filter(|(_, distance)| *distance <= 10.0)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((marker, _)) = nearest {
            outcome.clicked_checkpoint = Some((marker.run.clone(), marker.epoch));
        }
    }
    outcome
}

fn format_log_tick(exponent: f64) -> String {
    let value = 10f64.powf(exponent);
    if (exponent - exponent.round()).abs() < 1e-9 {
        if (-3.0..=3.0).contains(&exponent) {
            format!("{}", value)
        } else {
            format!("1e{}", exponent.round() as i64)
        }
    } else {
        format!("{value:.3}")
    }
}
