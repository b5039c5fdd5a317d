//! `user.json`: the fields a person edits (the name; notes and tags later), in a file of their
//! own so the trainer, which rewrites `run.json` every epoch, never undoes a rename.

use serde::{Deserialize, Serialize};

pub const USER_FILE: &str = "user.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFields {
    /// Overrides the name in `run.json` (which keeps the name the run started with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
