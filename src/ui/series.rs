//! Curves prepared for drawing: transformed, smoothed and decimated once, then reused every frame
//! until the data or the plot settings change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::plot::{PlotSettings, XAxis, debiased_ema};
use crate::runs::{MetricPoint, MetricsLog, SplitName};

/// Series longer than this are drawn decimated: per bucket its first, lowest, highest and last
/// point, so spikes survive while a 100k-point curve costs what a few thousand do.
pub const MAX_DRAWN_POINTS: usize = 4000;
/// Points drawn per frame over all series; with many runs each series gets a share of it.
pub const DRAWN_POINTS_BUDGET: usize = 60_000;
/// No series is cut below this, however many are shown.
pub const MIN_DRAWN_POINTS: usize = 150;

/// The decimation limit for one of `series_count` series shown together.
pub fn points_per_series(series_count: usize) -> usize {
    (DRAWN_POINTS_BUDGET / series_count.max(1)).clamp(MIN_DRAWN_POINTS, MAX_DRAWN_POINTS)
}

#[derive(Debug, Clone, Default)]
pub struct PreparedSeries {
    /// Points with a drawable y (finite, and positive on a log scale), decimated.
    pub raw: Vec<[f64; 2]>,
    pub smoothed: Option<Vec<[f64; 2]>>,
    /// Values that cannot be drawn on this scale (NaN, ±inf, ≤ 0 on log), at the curve's top.
    pub bad: Vec<[f64; 2]>,
    /// Data points represented (before decimation).
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    split: SplitName,
    metric: String,
    x_axis: XAxis,
    log_y: bool,
    smoothing_bits: u64,
    limit: usize,
    /// The log only grows (or is replaced), so its length tells whether it changed.
    log_len: usize,
}

/// Prepared series of one run, keyed by what they depend on.
#[derive(Debug, Default)]
pub struct SeriesCache {
    entries: Mutex<HashMap<SeriesKey, Arc<PreparedSeries>>>,
}

impl Clone for SeriesCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl SeriesCache {
    pub fn get(
        &self,
        log: &MetricsLog,
        split: SplitName,
        settings: &PlotSettings,
        limit: usize,
    ) -> Arc<PreparedSeries> {
        let key = SeriesKey {
            split,
            metric: settings.metric.clone(),
            x_axis: settings.x_axis,
            log_y: settings.log_y,
            smoothing_bits: settings.smoothing.to_bits(),
            limit,
            log_len: log.points.len(),
        };
        let Ok(mut entries) = self.entries.lock() else {
            return Arc::new(prepare(
                log.series(split, &settings.metric).collect(),
                settings,
                limit,
            ));
        };
        if let Some(found) = entries.get(&key) {
            return found.clone();
        }
        // Entries for an older log length are stale; drop them as the log grows.
        entries.retain(|k, _| k.log_len == key.log_len);
        let prepared = Arc::new(prepare(
            log.series(split, &settings.metric).collect(),
            settings,
            limit,
        ));
        entries.insert(key, prepared.clone());
        prepared
    }
}

pub fn transform_y(value: f64, log_y: bool) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    if log_y {
        (value > 0.0).then(|| value.log10())
    } else {
        Some(value)
    }
}

fn prepare(series: Vec<&MetricPoint>, settings: &PlotSettings, limit: usize) -> PreparedSeries {
    let log_y = settings.log_y;
    let xs: Vec<f64> = series.iter().map(|p| settings.x_axis.of_point(p)).collect();
    let ys: Vec<f64> = series.iter().map(|p| p.value).collect();
    let drawable = |values: &[f64]| -> Vec<[f64; 2]> {
        xs.iter()
            .zip(values)
            .filter_map(|(&x, &y)| Some([x, transform_y(y, log_y)?]))
            .collect()
    };
    let raw = drawable(&ys);
    let top = raw.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max);
    let bad = xs
        .iter()
        .zip(&ys)
        .filter(|(_, y)| transform_y(**y, log_y).is_none())
        .map(|(&x, _)| [x, if top.is_finite() { top } else { 0.0 }])
        .collect();
    let smoothed = (settings.smoothing > 0.0)
        .then(|| decimate(drawable(&debiased_ema(&ys, settings.smoothing)), limit));
    PreparedSeries {
        raw: decimate(raw, limit),
        smoothed,
        bad,
        count: series.len(),
    }
}

/// Keeps at most `limit` points: first, min, max and last of equal-count buckets, in order.
pub fn decimate(points: Vec<[f64; 2]>, limit: usize) -> Vec<[f64; 2]> {
    if points.len() <= limit || limit < 4 {
        return points;
    }
    let buckets = limit / 4;
    let size = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(limit);
    for chunk in points.chunks(size) {
        let (mut low, mut high) = (0, 0);
        for (index, point) in chunk.iter().enumerate() {
            if point[1] < chunk[low][1] {
                low = index;
            }
            if point[1] > chunk[high][1] {
                high = index;
            }
        }
        let mut picks = [0, low.min(high), low.max(high), chunk.len() - 1];
        picks.sort_unstable();
        let mut last = usize::MAX;
        for pick in picks {
            if pick != last {
                out.push(chunk[pick]);
                last = pick;
            }
        }
    }
    out
}
