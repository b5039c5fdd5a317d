//! Many runs at once, headless: which settings vary, table columns and their values, a filter
//! language over them, seed groups with bands, parameter importance, and parallel-coordinate
//! axes with brushing. The run table, the plot and `kiln runs --filter` share it.

mod columns;
mod filter;
mod groups;
mod importance;
mod parallel;

pub use columns::{CellValue, Column, config_columns, metric_names, varying_keys};
pub use filter::{Filter, FilterError};
pub use groups::{Band, BandKind, GroupCurve, SeedGroup, seed_groups};
pub use importance::{FEW_RUNS, Importance, parameter_importance, spearman};
pub use parallel::{Axis, AxisKind, Brush, axes_for, brushed};
