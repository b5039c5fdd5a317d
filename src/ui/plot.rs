//! Training curves: several runs overlaid, smoothing, log scale, checkpoint markers, NaN markers.

use egui::Color32;
use egui_plot::{Line, LineStyle, MarkerShape, Plot, PlotPoint, PlotPoints, Points};
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

    /// A position on this axis as people say it: "epoch 9", "step 1200", "12.5 s".
    pub fn describe(self, x: f64) -> String {
        match self {
            XAxis::Epoch => format!("epoch {}", x.round() as i64),
            XAxis::Step => format!("step {}", x.round() as i64),
            XAxis::WallTime => format!("{x:.1} s"),
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
    /// Draw runs that differ only in their seed as one mean line with a band.
    pub group_seeds: bool,
    pub band: crate::analysis::BandKind,
    /// With groups: draw the member runs too (faint).
    pub show_members: bool,
}

impl Default for PlotSettings {
    fn default() -> Self {
        Self {
            metric: "loss".to_string(),
            x_axis: XAxis::Epoch,
            smoothing: 0.0,
            log_y: false,
            group_seeds: false,
            band: crate::analysis::BandKind::Std,
            show_members: false,
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
    /// Picked in the table or the plot: drawn bold.
    pub highlighted: bool,
}

/// Runs that differ only in their seed, drawn as a mean line with a band.
pub struct PlotGroup<'a> {
    pub name: String,
    pub color: Color32,
    pub members: Vec<&'a RunCurves>,
    /// The members used different data (so they are not repeats of one thing).
    pub mixed_data: bool,
}

/// A checkpoint marker's place on screen, to find the one a click lands on.
struct Marker {
    run: String,
    epoch: usize,
    point: PlotPoint,
}

/// Palette colour `index` (runs get theirs from [`super::identity::RunColors`]).
pub fn run_color(index: usize) -> Color32 {
    super::identity::palette_color(index)
}

/// Above this many drawn training points (over all runs), training curves are drawn faded
/// instead of dashed: each dash is a shape of its own, and long noisy curves cut into dashes cost
/// up to hundreds of thousands of shapes a frame. Per-epoch curves stay well below it.
const DASHED_UP_TO_POINTS: usize = 5_000;

/// How a split's curves are drawn: validation solid, training dashed (or faded, with many
/// curves). The legend's key says which; the two stay apart in print and for colour-blind
/// readers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SplitLook {
    style: LineStyle,
    /// Multiplies the run's colour.
    fade: f32,
}

fn split_look(split: SplitName, dashed_train: bool) -> SplitLook {
    match split {
        SplitName::Valid => SplitLook {
            style: LineStyle::Solid,
            fade: 1.0,
        },
        SplitName::Train if dashed_train => SplitLook {
            style: LineStyle::dashed_dense(),
            fade: 1.0,
        },
        SplitName::Train => SplitLook {
            style: LineStyle::Solid,
            fade: 0.4,
        },
    }
}

/// What the plot reports back: a clicked checkpoint, and how many points it drew.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlotOutcome {
    pub clicked_checkpoint: Option<(String, usize)>,
    /// A curve clicked away from any checkpoint marker: its run.
    pub clicked_run: Option<String>,
    /// Groups drawn (seed groups on).
    pub groups_drawn: usize,
    /// The legend's entries: one name per drawn run.
    pub legend: Vec<String>,
    pub points_drawn: usize,
    pub markers_drawn: usize,
}

pub fn curves_ui(
    ui: &mut egui::Ui,
    settings: &PlotSettings,
    runs: &[PlotRun<'_>],
    groups: &[PlotGroup<'_>],
    selected: Option<(&str, usize)>,
) -> PlotOutcome {
    let log_y = settings.log_y;
    let x_axis = settings.x_axis;
    let metric = settings.metric.clone();
    let mut markers: Vec<Marker> = Vec::new();
    let mut outcome = PlotOutcome {
        legend: runs.iter().map(|run| run.name.to_string()).collect(),
        ..PlotOutcome::default()
    };
    let limit = super::series::points_per_series(runs.len() * 2);
    let train_points: usize = runs
        .iter()
        .map(|run| {
            let prepared =
                run.curves
                    .series
                    .get(&run.curves.log, SplitName::Train, settings, limit);
            prepared.raw.len() + prepared.smoothed.as_ref().map_or(0, Vec::len)
        })
        .sum();
    let dashed_train = train_points <= DASHED_UP_TO_POINTS;
    // The legend sits above the plot, never on the data.
    if settings.group_seeds {
        groups_legend_ui(ui, groups, settings.band);
        outcome.legend = groups.iter().map(|group| group.name.clone()).collect();
        outcome.groups_drawn = groups.len();
    } else {
        legend_ui(ui, runs, settings.metric != "batch_loss", dashed_train);
    }
    let y_label = if log_y {
        format!("{metric} (log scale)")
    } else {
        metric.clone()
    };
    let plot = Plot::new("kiln_curves")
        .x_axis_label(x_axis.label())
        .y_axis_label(y_label)
        .y_axis_formatter(move |mark, range| {
            if log_y {
                format_log_tick(mark.value, *range.end() - *range.start())
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
                    "{plot_name}\n{}\n{metric} {y:.5}",
                    x_axis.describe(position.x)
                ))
            }
            egui_plot::HoverPosition::Elsewhere { .. } => None,
        });

    let run_ids: Vec<(egui_plot::ItemId, &str)> = runs
        .iter()
        .flat_map(|run| {
            [SplitName::Train, SplitName::Valid]
                .into_iter()
                .flat_map(move |split| {
                    ["raw", "smoothed"]
                        .map(|kind| (egui_plot::ItemId::new((run.id, split.name(), kind)), run.id))
                })
        })
        .collect();
    let response = plot.show(ui, |plot_ui| {
        if settings.group_seeds {
            draw_groups(plot_ui, groups, settings);
            if !settings.show_members {
                return;
            }
        }
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
                // Group members are drawn faint behind their group's mean.
                let color = if settings.group_seeds {
                    run.color.gamma_multiply(0.35)
                } else {
                    run.color
                };
                let bold = if run.highlighted { 1.5 } else { 0.0 };
                let look = split_look(split, dashed_train);
                let color = color.gamma_multiply(look.fade);
                outcome.points_drawn += prepared.count;
                // With smoothing the raw curve stays faint behind the smoothed one.
                let raw_color = if prepared.smoothed.is_some() {
                    color.gamma_multiply(0.3)
                } else {
                    color
                };
                plot_ui.line(
                    Line::new(name.clone(), PlotPoints::new(prepared.raw.clone()))
                        .id((run.id, split.name(), "raw"))
                        .color(raw_color)
                        .style(look.style)
                        .width(bold + if split == SplitName::Valid { 2.0 } else { 1.5 }),
                );
                if let Some(smoothed) = &prepared.smoothed {
                    plot_ui.line(
                        Line::new(name.clone(), PlotPoints::new(smoothed.clone()))
                            .id((run.id, split.name(), "smoothed"))
                            .color(color)
                            .style(look.style)
                            .width(bold + 2.0),
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
        } else if let Some(hovered) = response.hovered_plot_item {
            outcome.clicked_run = run_ids
                .iter()
                .find(|(id, _)| *id == hovered)
                .map(|(_, run)| run.to_string());
        }
    }
    outcome
}

/// Steps of a seed group's band drawn at most (its mean line keeps every point).
const MAX_BAND_STEPS: usize = 300;

/// Each group's mean line (validation solid, train dashed) with its band.
fn draw_groups(
    plot_ui: &mut egui_plot::PlotUi<'_>,
    groups: &[PlotGroup<'_>],
    settings: &PlotSettings,
) {
    let splits: &[SplitName] = if settings.metric == "batch_loss" {
        &[SplitName::Train]
    } else {
        &[SplitName::Train, SplitName::Valid]
    };
    for group in groups {
        for &split in splits {
            let members: Vec<Vec<[f64; 2]>> = group
                .members
                .iter()
                .map(|curves| {
                    curves
                        .log
                        .series(split, &settings.metric)
                        .filter_map(|point| {
                            Some([
                                settings.x_axis.of_point(point),
                                transform_y(point.value, settings.log_y)?,
                            ])
                        })
                        .collect()
                })
                .collect();
            let curve = crate::analysis::GroupCurve::of(&members, settings.band);
            if curve.points.is_empty() {
                continue;
            }
            let name = format!("{} · {}", group.name, split.name());
            // egui fills only convex polygons, so the band is drawn as one trapezoid per step
            // (at most MAX_BAND_STEPS of them); a single run has no band.
            if group.members.len() > 1 {
                let stride = curve.points.len().div_ceil(MAX_BAND_STEPS).max(1);
                let mut corners: Vec<&crate::analysis::Band> =
                    curve.points.iter().step_by(stride).collect();
                if let Some(last) = curve.points.last()
                    && corners
                        .last()
                        .is_none_or(|shown| !std::ptr::eq(*shown, last))
                {
                    corners.push(last);
                }
                for pair in corners.windows(2) {
                    let (a, b) = (pair[0], pair[1]);
                    let quad = vec![[a.x, a.low], [b.x, b.low], [b.x, b.high], [a.x, a.high]];
                    plot_ui.polygon(
                        egui_plot::Polygon::new(format!("{name} band"), PlotPoints::new(quad))
                            .fill_color(group.color.gamma_multiply(0.18))
                            .stroke(egui::Stroke::NONE),
                    );
                }
            }
            plot_ui.line(
                Line::new(
                    name,
                    PlotPoints::new(curve.points.iter().map(|b| [b.x, b.mean]).collect()),
                )
                .color(group.color)
                // A handful of group means: always dashed.
                .style(split_look(split, true).style)
                .width(2.5),
            );
        }
    }
}

fn groups_legend_ui(ui: &mut egui::Ui, groups: &[PlotGroup<'_>], band: crate::analysis::BandKind) {
    ui.horizontal_wrapped(|ui| {
        for group in groups {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().rect_filled(rect.shrink(1.0), 2.0, group.color);
            let text = format!(
                "{} ({})",
                group.name,
                super::widgets::count(group.members.len(), "run", "runs")
            );
            if group.mixed_data {
                ui.colored_label(ui.visuals().warn_fg_color, format!("{text} ⚠ mixed data"))
                    .on_hover_text("These runs differ only in their seed but used different data: not repeats of one experiment");
            } else {
                ui.label(text);
            }
            ui.add_space(8.0);
        }
        ui.weak(format!("mean, band {}", band.name()));
    });
}

/// One entry per run (its colour and name) and a key telling the line styles apart.
fn legend_ui(ui: &mut egui::Ui, runs: &[PlotRun<'_>], both_splits: bool, dashed_train: bool) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 6.0;
        for run in runs {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().rect_filled(rect.shrink(1.0), 2.0, run.color);
            ui.label(run.name).on_hover_text(run.id);
            ui.add_space(8.0);
        }
        if both_splits {
            ui.separator();
            for split in [SplitName::Valid, SplitName::Train] {
                line_sample(ui, split_look(split, dashed_train));
                ui.weak(match split {
                    SplitName::Valid => "validation",
                    SplitName::Train => "train",
                });
            }
        }
    });
}

/// A short stretch of the line a split is drawn with.
fn line_sample(ui: &mut egui::Ui, look: SplitLook) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(22.0, 12.0), egui::Sense::hover());
    let stroke = egui::Stroke::new(2.0, ui.visuals().text_color().gamma_multiply(look.fade));
    let (left, right) = (rect.left_center(), rect.right_center());
    if look.style == LineStyle::Solid {
        ui.painter().line_segment([left, right], stroke);
    } else {
        ui.painter()
            .extend(egui::Shape::dashed_line(&[left, right], stroke, 5.0, 4.0));
    }
}

/// A tick of the log-scaled axis (the plot works in exponents). Over a span where it fits,
/// only 1, 2 and 5 times a power of ten are labelled: the grid's marks fall at steps of the
/// exponent (10^0.1 = 1.26, …), whose labels would crowd and overlap in a short plot.
fn format_log_tick(exponent: f64, visible_exponents: f64) -> String {
    let decade = exponent.floor();
    let mantissa = 10f64.powf(exponent - decade);
    let nice = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|nice| (mantissa / nice - 1.0).abs() < 0.01);
    let value = match nice {
        Some(nice) => nice * 10f64.powf(decade),
        // Between 1, 2 and 5 there is always one of them within 0.4 of an exponent.
        None if visible_exponents >= 0.4 => return String::new(),
        None => 10f64.powf(exponent),
    };
    if nice.is_some() && !(1e-3..1e4).contains(&value) {
        format!("{:.0e}", value)
    } else {
        format!("{:.3}", value)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod log_tick_tests {
    use super::format_log_tick;

    #[test]
    fn wide_log_axes_label_one_two_five_and_short_ones_every_mark() {
        let labels: Vec<String> = [-2.0, -1.9, -1.699, -1.5, -1.3, -1.0, 0.0, 2.0, 5.0, -6.0]
            .iter()
            .map(|&exponent| format_log_tick(exponent, 3.0))
            .collect();
        assert_eq!(
            labels,
            [
                "0.01", "", "0.02", "", "0.05", "0.1", "1", "100", "1e5", "1e-6"
            ]
        );
        assert_eq!(format_log_tick(-1.45, 0.2), "0.035");
    }
}
