//! Stopping trials that lag behind: the median rule and asynchronous successive halving (ASHA).
//! Both compare a trial's best value so far with the other trials' at the same epoch; they read
//! the validation metric only (never the test split).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::spec::PrunerSpec;
use crate::runs::Goal;
use crate::train::EpochMetrics;

/// A run of a sweep: (trial, repeat).
pub type JobKey = (usize, usize);

/// The median rule compares with at least this many other runs at the same epoch.
const MEDIAN_MIN_OTHERS: usize = 2;

pub struct Pruner {
    spec: PrunerSpec,
    metric: String,
    goal: Goal,
    /// Each run's costs (lower is better) by epoch, 1-based at index 0.
    costs: Mutex<BTreeMap<JobKey, Vec<f64>>>,
}

impl Pruner {
    pub fn new(spec: PrunerSpec, metric: &str, goal: Goal) -> Self {
        Self {
            spec,
            metric: metric.to_string(),
            goal,
            costs: Mutex::new(BTreeMap::new()),
        }
    }

    /// The sweep metric's value in an epoch's metrics.
    pub fn value_of(&self, metrics: &EpochMetrics) -> Option<f64> {
        metric_value(&self.metric, metrics)
    }

    /// Teaches the pruner what an earlier session of the sweep saw (on resume).
    pub fn remember(&self, job: JobKey, values: &[f64]) {
        if let Ok(mut costs) = self.costs.lock() {
            costs.insert(job, values.iter().map(|v| self.cost(*v)).collect());
        }
    }

    fn cost(&self, value: f64) -> f64 {
        let cost = self.goal.as_cost(value);
        // NaN and ±inf rank last.
        if cost.is_finite() {
            cost
        } else {
            f64::INFINITY
        }
    }

    /// Records `job`'s value at `epoch` and says why it should stop, if it should.
    pub fn judge(&self, job: JobKey, epoch: usize, value: f64) -> Option<String> {
        let Ok(mut costs) = self.costs.lock() else {
            return None;
        };
        let series = costs.entry(job).or_default();
        series.truncate(epoch.saturating_sub(1));
        series.resize(epoch.saturating_sub(1), f64::INFINITY);
        series.push(self.cost(value));
        let best_so_far = |series: &[f64], epoch: usize| {
            series[..epoch.min(series.len())]
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min)
        };
        let mine = best_so_far(series, epoch);
        let others: Vec<f64> = costs
            .iter()
            .filter(|(key, series)| **key != job && series.len() >= epoch)
            .map(|(_, series)| best_so_far(series, epoch))
            .collect();
        let shown = |cost: f64| self.goal.as_cost(cost);
        match self.spec {
            PrunerSpec::None => None,
            PrunerSpec::Median { min_epochs } => {
                if epoch < min_epochs || others.len() < MEDIAN_MIN_OTHERS {
                    return None;
                }
                let median = median(&others);
                (mine > median).then(|| {
                    format!(
                        "pruned at epoch {epoch}: its best {} so far, {:.4}, is worse than the median {:.4} of {} other trials at this epoch",
                        self.metric,
                        shown(mine),
                        shown(median),
                        others.len()
                    )
                })
            }
            PrunerSpec::Asha { min_epochs, eta } => {
                if !is_rung(epoch, min_epochs, eta) {
                    return None;
                }
                let reached = others.len() + 1;
                if reached < eta {
                    // Too few trials at this rung to judge; go on (asynchronous halving).
                    return None;
                }
                let keep = (reached / eta).max(1);
                let rank = others.iter().filter(|&&other| other < mine).count();
                (rank >= keep).then(|| {
                    format!(
                        "pruned at epoch {epoch} (a halving rung): {} {:.4} ranks {} of {reached}; only the best {keep} go on",
                        self.metric,
                        shown(mine),
                        rank + 1
                    )
                })
            }
        }
    }
}

/// The rungs of successive halving: `min_epochs · eta^k`.
fn is_rung(epoch: usize, min_epochs: usize, eta: usize) -> bool {
    let mut rung = min_epochs.max(1);
    while rung < epoch {
        rung = rung.saturating_mul(eta.max(2));
    }
    rung == epoch
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// `valid_loss`, `valid_accuracy`, `valid_rmse`, `valid_precision` or `valid_recall` of an epoch.
pub fn metric_value(metric: &str, metrics: &EpochMetrics) -> Option<f64> {
    match metric {
        "valid_loss" => Some(metrics.valid_loss),
        "valid_accuracy" => metrics.valid_accuracy,
        "valid_rmse" => metrics.valid_rmse,
        _ => {
            let name = metric.strip_prefix("valid_")?;
            metrics
                .points()
                .into_iter()
                .find(|point| point.split == crate::runs::SplitName::Valid && point.metric == name)
                .map(|point| point.value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_rule_stops_a_trial_worse_than_the_others() {
        let pruner = Pruner::new(
            PrunerSpec::Median { min_epochs: 2 },
            "valid_loss",
            Goal::Min,
        );
        for (trial, loss) in [(1, 0.3), (2, 0.4), (3, 0.35)] {
            for epoch in 1..=3 {
                assert_eq!(pruner.judge((trial, 0), epoch, loss), None);
            }
        }
        // Epoch 1 is below min_epochs; at epoch 2 it is worse than the median 0.35.
        assert_eq!(pruner.judge((4, 0), 1, 2.0), None);
        let reason = pruner.judge((4, 0), 2, 2.0).expect("pruned");
        assert!(reason.contains("median"), "{reason}");
        // A good one goes on.
        assert_eq!(pruner.judge((5, 0), 2, 0.1), None);
    }

    #[test]
    fn asha_keeps_the_best_third_at_each_rung() {
        assert!(is_rung(1, 1, 3) && is_rung(3, 1, 3) && is_rung(9, 1, 3));
        assert!(!is_rung(2, 1, 3) && !is_rung(4, 1, 3));
        let pruner = Pruner::new(
            PrunerSpec::Asha {
                min_epochs: 1,
                eta: 3,
            },
            "valid_accuracy",
            Goal::Max,
        );
        // Fewer than eta at the rung: go on.
        assert_eq!(pruner.judge((1, 0), 1, 0.9), None);
        assert_eq!(pruner.judge((2, 0), 1, 0.5), None);
        // Third at the rung with the worst accuracy: pruned (keep 1 of 3).
        assert!(pruner.judge((3, 0), 1, 0.4).is_some());
        // The best so far always goes on.
        assert_eq!(pruner.judge((4, 0), 1, 0.95), None);
        // Not a rung: no decision.
        assert_eq!(pruner.judge((3, 0), 2, 0.1), None);
    }
}
