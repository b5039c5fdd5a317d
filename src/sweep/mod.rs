//! Hyperparameter sweeps: a spec (JSON) names the data, the base settings and the parameters to
//! search; the runner trains trials (ordinary runs, tagged with the sweep) a few at a time,
//! prunes the ones that lag, records everything in the store and survives being killed; the
//! winner's best checkpoint is promoted to a bundle (`export::promote`). Headless: the CLI and
//! the window are shells.

mod elsewhere;
mod planner;
mod pruner;
mod record;
mod runner;
mod space;
mod spec;

pub use elsewhere::{
    PlannedSweep, discard_sweep, plan_sweep_elsewhere, record_submitted, refresh_from_runs,
};
pub use planner::{Finished, Planner, Suggestion};
pub use pruner::{Pruner, metric_value};
pub use record::{
    SweepRecord, SweepState, SweepStore, SweepStoreError, TrialRecord, TrialStatus, TrialSummary,
    runner_alive,
};
pub use runner::{SweepError, SweepEvent, SweepHandle, request_stop, resume_sweep, start_sweep};
pub use space::{Assignment, CONV_CHANNELS, Domain, SearchSpace, apply};
pub use spec::{Method, PrunerSpec, SpecError, SweepSpec, metrics_for};
