//! Seed groups: runs whose settings differ only in the seed are repeats of one configuration;
//! their curves are drawn as one mean line with a band (standard deviation, min–max, or a 95 %
//! confidence interval of the mean). A group whose runs used different data is flagged.

use std::collections::BTreeMap;

use crate::runs::RunSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BandKind {
    /// Mean ± one sample standard deviation.
    #[default]
    Std,
    MinMax,
    /// Mean ± 1.96 · std / √n (normal approximation: with a handful of seeds it is a rough
    /// guide, not an exact interval).
    Ci95,
}

impl BandKind {
    pub const ALL: [BandKind; 3] = [BandKind::Std, BandKind::MinMax, BandKind::Ci95];

    pub fn name(self) -> &'static str {
        match self {
            BandKind::Std => "± std",
            BandKind::MinMax => "min–max",
            BandKind::Ci95 => "95 % CI",
        }
    }
}

/// Runs that share every setting but the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedGroup {
    pub key: String,
    /// Run ids, in the order given.
    pub members: Vec<String>,
    /// The members used data with different fingerprints: not repeats of one thing.
    pub mixed_data: bool,
}

/// Groups `runs` by their settings minus the seed; groups of one run are kept (a band of zero).
pub fn seed_groups(runs: &[&RunSummary]) -> Vec<SeedGroup> {
    let mut by_key: BTreeMap<String, Vec<&RunSummary>> = BTreeMap::new();
    for run in runs {
        by_key.entry(run.group_key()).or_default().push(run);
    }
    by_key
        .into_iter()
        .map(|(key, members)| SeedGroup {
            mixed_data: members
                .iter()
                .any(|run| run.fingerprint != members[0].fingerprint),
            members: members.iter().map(|run| run.id.clone()).collect(),
            key,
        })
        .collect()
}

/// One x position of a group's curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub x: f64,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Runs with a value here.
    pub count: usize,
}

/// A group's mean curve and band, from its members' curves (`x → value`, e.g. by epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCurve {
    pub points: Vec<Band>,
}

impl GroupCurve {
    /// Combines the members' points at equal x (non-finite values are left out).
    pub fn of(members: &[Vec<[f64; 2]>], kind: BandKind) -> Self {
        let mut by_x: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
        for curve in members {
            for &[x, y] in curve {
                if y.is_finite() {
                    by_x.entry(x.to_bits()).or_insert((x, Vec::new())).1.push(y);
                }
            }
        }
        let mut points: Vec<Band> = by_x
            .into_values()
            .map(|(x, values)| band(x, &values, kind))
            .collect();
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        Self { points }
    }
}

fn band(x: f64, values: &[f64], kind: BandKind) -> Band {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let (low, high) = match kind {
        BandKind::Std => (mean - std, mean + std),
        BandKind::MinMax => (
            values.iter().copied().fold(f64::INFINITY, f64::min),
            values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ),
        BandKind::Ci95 => {
            let half = 1.96 * std / n.sqrt();
            (mean - half, mean + half)
        }
    };
    Band {
        x,
        mean,
        low,
        high,
        count: values.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_match_reference_numbers() {
        let members = vec![
            vec![[1.0, 1.0], [2.0, 0.5]],
            vec![[1.0, 2.0], [2.0, 0.7]],
            vec![[1.0, 4.0], [2.0, 0.9]],
        ];
        // Epoch 1: values 1, 2, 4 → mean 7/3, sample std √(7/3) = 1.527525…
        let std = GroupCurve::of(&members, BandKind::Std);
        let first = std.points[0];
        assert!((first.mean - 7.0 / 3.0).abs() < 1e-12);
        assert!((first.high - first.mean - 1.527_525_231_651_947).abs() < 1e-6);
        let minmax = GroupCurve::of(&members, BandKind::MinMax);
        assert_eq!((minmax.points[0].low, minmax.points[0].high), (1.0, 4.0));
        let ci = GroupCurve::of(&members, BandKind::Ci95);
        // 1.96 · 1.527525 / √3 = 1.728558…
        assert!((ci.points[0].high - ci.points[0].mean - 1.728_557_523).abs() < 1e-6);
        // Epoch 2: 0.5, 0.7, 0.9 → mean 0.7, std 0.2.
        assert!((std.points[1].mean - 0.7).abs() < 1e-12);
        assert!((std.points[1].high - 0.9).abs() < 1e-9);
        assert_eq!(std.points[1].count, 3);
    }
}
