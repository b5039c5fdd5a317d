//! The Analysis tab, for the runs of the table's filter (or of one sweep): parallel coordinates
//! (an axis per varying setting plus the metric; drag along an axis to brush it, which filters
//! the table and the plot), a scatter of the metric against one setting, and which settings
//! matter (see [`crate::analysis::parameter_importance`]).

use std::collections::HashSet;

use egui::{Color32, Pos2, Sense, Stroke, pos2, vec2};

use crate::analysis::{
    Axis, AxisKind, Brush, CellValue, Column, Filter, axes_for, brushed, parameter_importance,
    varying_keys,
};
use crate::runs::{Goal, RunSummary, Summary};

/// The narrowest parallel-coordinates plot worth drawing.
const MIN_PARALLEL_WIDTH: f32 = 300.0;
/// The closest axes may be (their titles are then staggered); closer, the plot scrolls.
const MIN_AXIS_SPACING: f32 = 80.0;
/// Axes closer than this stagger their titles over two lines.
const STAGGER_BELOW_SPACING: f32 = 125.0;
const STAGGER_OFFSET: f32 = 14.0;
/// The scatter (360 points wide) and the importance table beside it, with the gap before them.
const SIDE_COLUMN_WIDTH: f32 = 360.0 + 16.0 + 8.0;

#[derive(Default)]
pub struct AnalysisPanel {
    metric: Option<String>,
    /// Only this sweep's runs (else the table's filter).
    sweep: Option<String>,
    brushes: Vec<Brush>,
    /// A brush being dragged: (axis, start position 0–1).
    dragging: Option<(usize, f64)>,
    scatter_key: Option<String>,
    /// The runs the brushes keep, when any: the table and the plot show only these.
    pub kept: Option<HashSet<String>>,
}

/// Position 0–1 along an axis of `height` pixels starting at `top` (1 at the top).
fn to_t(y: f32, top: f32, height: f32) -> f64 {
    (1.0 - ((y - top) / height) as f64).clamp(0.0, 1.0)
}

/// A colour from low (blue) to high (orange) for a value's place among the runs.
fn ramp(t: f64) -> Color32 {
    let t = t.clamp(0.0, 1.0) as f32;
    let low = [0x4e as f32, 0x9a as f32, 0xf1 as f32];
    let high = [0xf5 as f32, 0x8b as f32, 0x3c as f32];
    let mix = |i: usize| (low[i] + (high[i] - low[i]) * t) as u8;
    Color32::from_rgb(mix(0), mix(1), mix(2))
}

impl AnalysisPanel {
    /// Runs the brushes keep (for tests and the app).
    pub fn brush_count(&self) -> usize {
        self.brushes.len()
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, runs: &[RunSummary], filter_text: &str) {
        let filter = Filter::for_runs(filter_text, runs).unwrap_or_else(|_| Filter::all());
        let scope: Vec<&RunSummary> = runs
            .iter()
            .filter(|run| filter.matches(run))
            .filter(|run| {
                self.sweep
                    .as_ref()
                    .is_none_or(|sweep| run.sweep.as_ref().is_some_and(|(id, _)| id == sweep))
            })
            .collect();
        let metrics = crate::analysis::metric_names(scope.iter().copied());
        if self.metric.as_ref().is_none_or(|m| !metrics.contains(m)) {
            self.metric = ["valid_loss", "valid_accuracy", "valid_rmse"]
                .iter()
                .map(|m| m.to_string())
                .find(|m| metrics.contains(m))
                .or_else(|| metrics.first().cloned());
        }
        let sweeps: Vec<String> = {
            let set: std::collections::BTreeSet<String> = runs
                .iter()
                .filter_map(|run| run.sweep.as_ref().map(|(id, _)| id.clone()))
                .collect();
            set.into_iter().collect()
        };
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("Runs");
            egui::ComboBox::from_id_salt("analysis_scope")
                .selected_text(
                    self.sweep
                        .clone()
                        .unwrap_or_else(|| "the table's filter".into()),
                )
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.sweep, None, "the table's filter");
                    for sweep in &sweeps {
                        ui.selectable_value(&mut self.sweep, Some(sweep.clone()), sweep);
                    }
                })
                .response
                .labelled_by(label.id);
            let label = ui.label("Metric");
            egui::ComboBox::from_id_salt("analysis_metric")
                .selected_text(self.metric.clone().unwrap_or_default())
                .show_ui(ui, |ui| {
                    for metric in &metrics {
                        ui.selectable_value(&mut self.metric, Some(metric.clone()), metric);
                    }
                })
                .response
                .labelled_by(label.id);
            ui.label(crate::ui::widgets::count(scope.len(), "run", "runs"));
            if !self.brushes.is_empty() && ui.button("Clear brushes").clicked() {
                self.brushes.clear();
            }
        });
        let Some(metric) = self.metric.clone() else {
            ui.label("These runs have logged no metric yet.");
            self.kept = None;
            return;
        };
        let keys = varying_keys(scope.iter().copied());
        let metric_column = Column::Metric(metric.clone(), Summary::Best);
        let axes = axes_for(&scope, &keys, metric_column.clone());
        self.brushes.retain(|brush| brush.axis < axes.len());
        let kept: Vec<&RunSummary> = brushed(&scope, &axes, &self.brushes);
        self.kept =
            (!self.brushes.is_empty()).then(|| kept.iter().map(|run| run.id.clone()).collect());
        if keys.is_empty() {
            ui.label("No setting varies among these runs: nothing to compare them by.");
            return;
        }
        // The scatter and the importance table sit beside the axes when the panel is wide
        // enough for both, else below them (never cut off at the panel's edge).
        let side_by_side = ui.available_width() >= MIN_PARALLEL_WIDTH + SIDE_COLUMN_WIDTH;
        let parallel_width = if side_by_side {
            ui.available_width() - SIDE_COLUMN_WIDTH
        } else {
            ui.available_width()
        };
        let parallel = |panel: &mut Self, ui: &mut egui::Ui| {
            ui.vertical(|ui| {
                ui.strong("Parallel coordinates");
                ui.weak("Drag along an axis to keep only the runs in that range; click the axis to clear it.");
                panel.parallel_ui(ui, parallel_width, &scope, &axes, &kept, &metric);
            });
        };
        if side_by_side {
            ui.horizontal_top(|ui| {
                parallel(self, ui);
                ui.add_space(16.0);
                ui.vertical(|ui| self.side_ui(ui, &kept, &keys, &metric_column));
            });
        } else {
            parallel(self, ui);
            ui.add_space(8.0);
            self.side_ui(ui, &kept, &keys, &metric_column);
        }
    }

    fn side_ui(
        &mut self,
        ui: &mut egui::Ui,
        kept: &[&RunSummary],
        keys: &[String],
        metric_column: &Column,
    ) {
        self.scatter_ui(ui, kept, keys, metric_column);
        ui.add_space(8.0);
        importance_ui(ui, kept, keys, metric_column);
    }

    fn parallel_ui(
        &mut self,
        ui: &mut egui::Ui,
        max_width: f32,
        runs: &[&RunSummary],
        axes: &[Axis],
        kept: &[&RunSummary],
        metric: &str,
    ) {
        let axis_count = axes.len() as f32;
        let width = (axis_count * 150.0)
            .min(max_width)
            .max(axis_count * MIN_AXIS_SPACING)
            .max(MIN_PARALLEL_WIDTH);
        if width > max_width {
            // Too many axes for the panel: scroll sideways rather than pile their labels up.
            egui::ScrollArea::horizontal()
                .id_salt("parallel_coordinates")
                .max_width(max_width)
                .show(ui, |ui| {
                    self.parallel_plot(ui, width, runs, axes, kept, metric)
                });
        } else {
            self.parallel_plot(ui, width, runs, axes, kept, metric);
        }
    }

    fn parallel_plot(
        &mut self,
        ui: &mut egui::Ui,
        width: f32,
        runs: &[&RunSummary],
        axes: &[Axis],
        kept: &[&RunSummary],
        metric: &str,
    ) {
        let (rect, response) = ui.allocate_exact_size(vec2(width, 260.0), Sense::click_and_drag());
        let painter = ui.painter_at(rect);
        let plot = rect.shrink2(vec2(40.0, 24.0));
        // Close axes take turns for the title line, so neighbouring titles never overlap.
        let staggered =
            axes.len() > 1 && plot.width() / ((axes.len() - 1) as f32) < STAGGER_BELOW_SPACING;
        let plot = if staggered {
            plot.with_min_y(plot.top() + STAGGER_OFFSET)
        } else {
            plot
        };
        let x_of = |axis: usize| {
            if axes.len() < 2 {
                plot.center().x
            } else {
                plot.left() + plot.width() * axis as f32 / (axes.len() - 1) as f32
            }
        };
        let kept_ids: HashSet<&str> = kept.iter().map(|run| run.id.as_str()).collect();
        let metric_axis = axes.len().saturating_sub(1);
        let goal = Goal::natural(metric);
        // Faint lines first (brushed out), then the kept ones coloured by the metric.
        for pass in [false, true] {
            for run in runs {
                let inside = kept_ids.contains(run.id.as_str());
                if inside != pass {
                    continue;
                }
                let points: Vec<Pos2> = axes
                    .iter()
                    .enumerate()
                    .filter_map(|(i, axis)| {
                        let t = axis.position(run)?;
                        Some(pos2(x_of(i), plot.bottom() - plot.height() * t as f32))
                    })
                    .collect();
                if points.len() < 2 {
                    continue;
                }
                let color = if inside {
                    let t = axes[metric_axis].position(run).unwrap_or(0.5);
                    // Better runs in orange whichever way the metric goes.
                    ramp(if goal == Goal::Min { 1.0 - t } else { t }).gamma_multiply(0.8)
                } else {
                    ui.visuals().weak_text_color().gamma_multiply(0.25)
                };
                painter.add(egui::Shape::line(points, Stroke::new(1.2, color)));
            }
        }
        let text = ui.visuals().text_color();
        for (i, axis) in axes.iter().enumerate() {
            let x = x_of(i);
            painter.line_segment(
                [pos2(x, plot.top()), pos2(x, plot.bottom())],
                Stroke::new(1.5, text.gamma_multiply(0.6)),
            );
            let title = match &axis.column {
                Column::Config(key) => key.rsplit('.').next().unwrap_or(key).to_string(),
                other => other.title(),
            };
            let log = matches!(axis.kind, AxisKind::Numeric { log: true, .. });
            let title_offset = if staggered && i % 2 == 1 {
                STAGGER_OFFSET
            } else {
                0.0
            };
            painter.text(
                pos2(x, rect.top() + 2.0 + title_offset),
                egui::Align2::CENTER_TOP,
                if log { format!("{title} (log)") } else { title },
                egui::FontId::proportional(12.0),
                text,
            );
            for t in [0.0, 1.0] {
                painter.text(
                    pos2(x + 4.0, plot.bottom() - plot.height() * t as f32),
                    egui::Align2::LEFT_CENTER,
                    axis.label_at(t),
                    egui::FontId::proportional(10.0),
                    text.gamma_multiply(0.7),
                );
            }
            for brush in self.brushes.iter().filter(|brush| brush.axis == i) {
                let (low, high) = (brush.low.min(brush.high), brush.low.max(brush.high));
                let band = egui::Rect::from_x_y_ranges(
                    (x - 6.0)..=(x + 6.0),
                    (plot.bottom() - plot.height() * high as f32)
                        ..=(plot.bottom() - plot.height() * low as f32),
                );
                painter.rect_filled(
                    band,
                    2.0,
                    Color32::from_rgba_unmultiplied(255, 255, 255, 60),
                );
            }
        }
        // Brushing: press near an axis, drag along it.
        let nearest_axis = |pointer: Pos2| {
            (0..axes.len())
                .map(|i| (i, (x_of(i) - pointer.x).abs()))
                .filter(|(_, distance)| *distance < 20.0)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
        };
        if response.drag_started()
            && let Some(pointer) = response.interact_pointer_pos()
            && let Some(axis) = nearest_axis(pointer)
        {
            self.dragging = Some((axis, to_t(pointer.y, plot.top(), plot.height())));
        }
        if let Some((axis, start)) = self.dragging
            && let Some(pointer) = response.interact_pointer_pos()
        {
            let end = to_t(pointer.y, plot.top(), plot.height());
            self.brushes.retain(|brush| brush.axis != axis);
            self.brushes.push(Brush {
                axis,
                low: start,
                high: end,
            });
        }
        if response.drag_stopped() {
            self.dragging = None;
        }
        if response.clicked()
            && let Some(pointer) = response.interact_pointer_pos()
            && let Some(axis) = nearest_axis(pointer)
        {
            self.brushes.retain(|brush| brush.axis != axis);
        }
    }

    fn scatter_ui(
        &mut self,
        ui: &mut egui::Ui,
        runs: &[&RunSummary],
        keys: &[String],
        metric: &Column,
    ) {
        if self
            .scatter_key
            .as_ref()
            .is_none_or(|key| !keys.contains(key))
        {
            self.scatter_key = keys.first().cloned();
        }
        let Some(key) = self.scatter_key.clone() else {
            return;
        };
        ui.horizontal(|ui| {
            ui.strong(format!("{} against", metric.title()));
            egui::ComboBox::from_id_salt("scatter_key")
                .selected_text(key.as_str())
                .show_ui(ui, |ui| {
                    for candidate in keys {
                        ui.selectable_value(
                            &mut self.scatter_key,
                            Some(candidate.clone()),
                            candidate,
                        );
                    }
                });
        });
        let Some(axis) = Axis::for_column(Column::Config(key.clone()), runs) else {
            return;
        };
        let log = matches!(axis.kind, AxisKind::Numeric { log: true, .. });
        let points: Vec<[f64; 2]> = runs
            .iter()
            .filter_map(|run| {
                let y = CellValue::of(run, metric).as_number()?;
                let x = match CellValue::of(run, &Column::Config(key.clone())).as_number() {
                    Some(x) if log => x.log10(),
                    Some(x) => x,
                    // Categories sit at their place on the axis.
                    None => axis.position(run)?,
                };
                Some([x, y])
            })
            .collect();
        let x_label = if log {
            format!("{key} (log10)")
        } else {
            key.clone()
        };
        egui_plot::Plot::new("analysis_scatter")
            .width(360.0)
            .height(180.0)
            .x_axis_label(x_label)
            .y_axis_label(metric.title())
            .show(ui, |plot| {
                plot.points(
                    egui_plot::Points::new("runs", points)
                        .radius(3.0)
                        .color(ramp(1.0)),
                );
            });
    }
}

fn importance_ui(ui: &mut egui::Ui, runs: &[&RunSummary], keys: &[String], metric: &Column) {
    ui.strong("Which settings matter");
    let rows: Vec<(&RunSummary, f64)> = runs
        .iter()
        .filter_map(|run| {
            let value = CellValue::of(run, metric).as_number()?;
            value.is_finite().then_some((*run, value))
        })
        .collect();
    if rows.len() < 3 {
        ui.weak("At least 3 runs with this metric are needed.");
        return;
    }
    let axes: Vec<Axis> = keys
        .iter()
        .filter_map(|key| {
            let refs: Vec<&RunSummary> = rows.iter().map(|(run, _)| *run).collect();
            Axis::for_column(Column::Config(key.clone()), &refs)
        })
        .collect();
    let names: Vec<String> = axes.iter().map(|axis| axis.column.title()).collect();
    // Each setting as its place on its axis: log scale and categories handled alike.
    let features: Vec<Vec<f64>> = rows
        .iter()
        .map(|(run, _)| {
            axes.iter()
                .map(|axis| axis.position(run).unwrap_or(0.5))
                .collect()
        })
        .collect();
    let target: Vec<f64> = rows.iter().map(|(_, value)| *value).collect();
    let importance = parameter_importance(&names, &features, &target, 1);
    if rows.len() < crate::analysis::FEW_RUNS {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!("Only {} runs: read these as rough hints.", rows.len()),
        );
    }
    egui::Grid::new("importance_grid").striped(true).show(ui, |ui| {
        ui.strong("setting");
        ui.strong("importance")
            .on_hover_text("How much worse a random forest predicts the metric, on runs it did not train on, when this setting is shuffled (relative to the metric's variance)");
        ui.strong("rank corr.")
            .on_hover_text("Spearman's rank correlation with the metric");
        ui.end_row();
        let top = importance
            .iter()
            .map(|i| i.permutation)
            .fold(1e-9, f64::max);
        for item in &importance {
            ui.label(item.parameter.rsplit('.').next().unwrap_or(&item.parameter));
            let share = (item.permutation / top).clamp(0.0, 1.0) as f32;
            ui.add(
                egui::ProgressBar::new(share)
                    .desired_width(120.0)
                    .text(format!("{:.2}", item.permutation)),
            );
            ui.monospace(if item.spearman.is_nan() {
                "—".to_string()
            } else {
                format!("{:+.2}", item.spearman)
            });
            ui.end_row();
        }
    });
}
