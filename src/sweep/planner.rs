//! Choosing each trial's settings: grid order, seeded random draws, or TPE.
//!
//! Trial `k`'s settings depend only on the spec, its seed and (for TPE) the results of trials
//! `1..=k-concurrency`: the planner waits for those rather than use whichever trials happen to
//! have finished, so the same spec and seed give the same trials in the same order however the
//! timing of concurrent trials falls (given the trials' own results repeat, as they do on the CPU).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::space::{Assignment, SearchSpace, TpeDomain};
use super::spec::Method;

/// What the planner can say about the next trial.
#[derive(Debug, Clone, PartialEq)]
pub enum Suggestion {
    Ready(Assignment),
    /// Earlier trials must finish first (TPE learns from them).
    Wait,
    /// No more trials: the grid is done.
    Exhausted,
}

/// A finished trial as the planner learns from it: its settings and its cost (the metric turned
/// so that lower is better; `None` when every run of it failed or diverged).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub params: Assignment,
    pub cost: Option<f64>,
}

pub struct Planner {
    method: Method,
    space: SearchSpace,
    seed: u64,
    concurrency: usize,
    /// TPE's first trials are random draws.
    startup: usize,
}

impl Planner {
    pub fn new(
        method: Method,
        space: SearchSpace,
        seed: u64,
        concurrency: usize,
        max_trials: usize,
    ) -> Self {
        Self {
            method,
            space,
            seed,
            concurrency: concurrency.max(1),
            startup: (max_trials / 3).clamp(3, 10),
        }
    }

    /// The trials a grid has, if this is a grid.
    pub fn grid_size(&self) -> Option<usize> {
        (self.method == Method::Grid).then(|| self.space.grid_size())
    }

    fn rng(&self, trial: usize) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ (trial as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Settings for trial `trial` (1-based), given the finished trials by number.
    pub fn suggest(&self, trial: usize, finished: &BTreeMap<usize, Finished>) -> Suggestion {
        match self.method {
            Method::Grid => match self.space.grid_point(trial - 1) {
                Some(point) => Suggestion::Ready(point),
                None => Suggestion::Exhausted,
            },
            Method::Random => Suggestion::Ready(self.space.sample(&mut self.rng(trial))),
            Method::Tpe if trial <= self.startup => {
                Suggestion::Ready(self.space.sample(&mut self.rng(trial)))
            }
            Method::Tpe => {
                let known = trial.saturating_sub(self.concurrency);
                if (1..=known).any(|earlier| !finished.contains_key(&earlier)) {
                    return Suggestion::Wait;
                }
                let history: Vec<&Finished> =
                    (1..=known).filter_map(|t| finished.get(&t)).collect();
                Suggestion::Ready(self.tpe(trial, &history))
            }
        }
    }

    /// One independent TPE per parameter (as Optuna's default sampler), fed the earlier trials.
    /// Failed or diverged trials count as the worst result seen, so TPE learns to avoid them.
    fn tpe(&self, trial: usize, history: &[&Finished]) -> Assignment {
        let mut rng = self.rng(trial);
        let worst = history
            .iter()
            .filter_map(|f| f.cost.filter(|c| c.is_finite()))
            .fold(f64::NEG_INFINITY, f64::max);
        let mut assignment = Assignment::new();
        for (path, domain) in &self.space.parameters {
            let range = domain.tpe_range();
            let optimizer = match range {
                TpeDomain::Categorical(count) if count >= 2 => tpe::categorical_range(count)
                    .map(|range| tpe::TpeOptimizer::new(tpe::histogram_estimator(), range)),
                TpeDomain::Continuous { low, high } if high > low => tpe::range(low, high)
                    .map(|range| tpe::TpeOptimizer::new(tpe::parzen_estimator(), range)),
                // One possible value: nothing to learn.
                TpeDomain::Continuous { low, .. } => {
                    assignment.insert(path.clone(), domain.value_of_tpe(low));
                    continue;
                }
                TpeDomain::Categorical(_) => {
                    assignment.insert(path.clone(), domain.value_of_tpe(0.0));
                    continue;
                }
            };
            let Ok(mut optimizer) = optimizer else {
                return self.space.sample(&mut rng);
            };
            for finished in history {
                let cost = match finished.cost {
                    Some(cost) if cost.is_finite() => cost,
                    _ if worst.is_finite() => worst,
                    _ => continue,
                };
                if let Some(x) = finished.params.get(path).and_then(|v| domain.to_tpe(v)) {
                    // A value outside the current range (an edited spec) teaches nothing.
                    let _ = optimizer.tell(x, cost);
                }
            }
            let value = match optimizer.ask(&mut rng) {
                Ok(x) => domain.value_of_tpe(x),
                Err(_) => return self.space.sample(&mut rng),
            };
            assignment.insert(path.clone(), value);
        }
        assignment
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::space::Domain;
    use serde_json::json;

    fn space() -> SearchSpace {
        SearchSpace {
            parameters: vec![(
                "train.learning_rate".to_string(),
                Domain::Float {
                    low: 1e-4,
                    high: 1.0,
                    log: true,
                    steps: None,
                },
            )],
        }
    }

    #[test]
    fn random_draws_repeat_for_the_same_seed() {
        let a = Planner::new(Method::Random, space(), 7, 1, 10);
        let b = Planner::new(Method::Random, space(), 7, 1, 10);
        let none = BTreeMap::new();
        for trial in 1..=5 {
            assert_eq!(a.suggest(trial, &none), b.suggest(trial, &none));
        }
        let c = Planner::new(Method::Random, space(), 8, 1, 10);
        assert_ne!(a.suggest(1, &none), c.suggest(1, &none));
    }

    #[test]
    fn tpe_waits_for_the_trials_it_learns_from_then_moves_towards_good_ones() {
        let planner = Planner::new(Method::Tpe, space(), 1, 2, 30);
        let mut finished = BTreeMap::new();
        // The cost is best near 0.01.
        let cost = |lr: f64| (lr.log10() + 2.0).abs();
        for trial in 1..=10 {
            let Suggestion::Ready(params) = planner.suggest(trial, &finished) else {
                panic!("startup trials are random and ready at once")
            };
            let lr = params["train.learning_rate"].as_f64().unwrap();
            finished.insert(
                trial,
                Finished {
                    params,
                    cost: Some(cost(lr)),
                },
            );
        }
        // Trial 13 with concurrency 2 needs trials 1..=11.
        assert_eq!(planner.suggest(13, &finished), Suggestion::Wait);
        let mut near = 0;
        for trial in 11..=30 {
            let Suggestion::Ready(params) = planner.suggest(trial, &finished) else {
                panic!("trial {trial} has what it needs")
            };
            let lr = params["train.learning_rate"].as_f64().unwrap();
            if cost(lr) < 1.0 {
                near += 1;
            }
            finished.insert(
                trial,
                Finished {
                    params,
                    cost: Some(cost(lr)),
                },
            );
        }
        assert!(
            near >= 12,
            "TPE concentrates near the optimum: {near} of 20"
        );
        assert_eq!(
            planner.suggest(31, &finished),
            Planner::new(Method::Tpe, space(), 1, 2, 30).suggest(31, &finished),
            "the same history gives the same suggestion"
        );
    }

    #[test]
    fn the_grid_ends() {
        let grid = SearchSpace {
            parameters: vec![("a".to_string(), Domain::Values(vec![json!(1), json!(2)]))],
        };
        let planner = Planner::new(Method::Grid, grid, 0, 1, 10);
        let none = BTreeMap::new();
        assert!(matches!(planner.suggest(2, &none), Suggestion::Ready(_)));
        assert_eq!(planner.suggest(3, &none), Suggestion::Exhausted);
    }
}
