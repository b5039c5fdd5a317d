//! Kiln: load a dataset, train a small model with Burn, keep and compare runs, export models.
//!
//! Layers, each using only the ones above it in this list:
//! [`data`] → [`model`] → [`train`] (engine) ↔ [`runs`] (store) → [`sweep`] → [`cluster`]
//! (compute targets) → [`export`];
//! [`analysis`] looks at many runs at once (columns, filters, seed groups, importance);
//! the CLI ([`cli`]) and the desktop app (`ui`, the `gui` feature, on by default) are thin
//! shells over them.

pub mod analysis;
pub mod cli;
pub mod cluster;
pub mod data;
pub mod export;
pub mod model;
pub mod runs;
pub mod sweep;
pub mod train;
#[cfg(feature = "gui")]
pub mod ui;

/// The burn version Kiln is built against (recorded in runs and model cards).
pub const BURN_VERSION: &str = "0.22.1";
