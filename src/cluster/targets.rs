//! Compute targets and the file that lists them (`targets.toml` in Kiln's config folder, or
//! `$KILN_TARGETS`). A target is `local` (this machine, as without a target), `ssh` (a host
//! that runs `kiln` directly, e.g. a GPU box) or `slurm` (jobs go through `sbatch`, on this
//! machine when Kiln runs on a login node, or on a login host over SSH).
//!
//! Nothing secret is kept here: SSH authenticates with keys or the agent, as the user's ssh
//! config says; the file names at most an identity file's path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClusterError;

/// The name `--on` and the window use for this machine (no file entry needed).
pub const LOCAL: &str = "local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Local,
    #[default]
    Ssh,
    Slurm,
}

impl TargetKind {
    pub const ALL: [TargetKind; 3] = [TargetKind::Local, TargetKind::Ssh, TargetKind::Slurm];

    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Local => "local",
            TargetKind::Ssh => "ssh",
            TargetKind::Slurm => "slurm",
        }
    }
}

/// One compute target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    /// The SSH host (a name from `~/.ssh/config` works). Slurm without a host: `sbatch` runs on
    /// this machine (Kiln on the login node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// A private key file; without it ssh uses the agent and the user's ssh config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<String>,
    /// Extra `-o` options for ssh, e.g. `UserKnownHostsFile=~/.ssh/cluster_hosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_options: Vec<String>,
    /// The `kiln` binary on the target (same version as this one).
    #[serde(default = "default_kiln")]
    pub kiln: String,
    /// The run store on the target (runs train there; this machine keeps a mirror).
    #[serde(default = "default_store")]
    pub store: String,
    /// Environment for every command on the target (e.g. `SLURM_CONF`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmSettings>,
}

fn default_kiln() -> String {
    "kiln".to_string()
}

fn default_store() -> String {
    "~/kiln-runs".to_string()
}

/// What a Slurm job asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlurmSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--gres`, e.g. `gpu:1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// `--cpus-per-task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--mem`, e.g. `8G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// `--time`, e.g. `02:00:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Seconds before the time limit at which Slurm sends SIGTERM (`--signal=B:TERM@N`), so the
    /// trainer checkpoints and exits in time.
    #[serde(default = "default_signal_secs")]
    pub signal_secs: u32,
    /// More `#SBATCH` options, one per entry, e.g. `--account=ml-lab`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
}

fn default_signal_secs() -> u32 {
    120
}

impl Default for SlurmSettings {
    fn default() -> Self {
        Self {
            partition: None,
            gres: None,
            cpus: None,
            mem: None,
            time: None,
            signal_secs: default_signal_secs(),
            extra: Vec::new(),
        }
    }
}

impl Target {
    /// A new target of `kind` with the usual defaults.
    pub fn new(name: &str, kind: TargetKind) -> Self {
        Self {
            name: name.to_string(),
            kind,
            host: None,
            user: None,
            port: None,
            identity_file: None,
            ssh_options: Vec::new(),
            kiln: default_kiln(),
            store: default_store(),
            env: BTreeMap::new(),
            slurm: (kind == TargetKind::Slurm).then(SlurmSettings::default),
        }
    }

    /// Whether commands go over SSH (else they run on this machine).
    pub fn uses_ssh(&self) -> bool {
        self.kind == TargetKind::Ssh || self.host.as_deref().is_some_and(|h| !h.is_empty())
    }

    /// Where it is, in words: `slurm via user@host:port`, `ssh host`, `this machine`.
    pub fn describe(&self) -> String {
        let place = match &self.host {
            Some(host) if !host.is_empty() => {
                let user = self
                    .user
                    .as_ref()
                    .map(|u| format!("{u}@"))
                    .unwrap_or_default();
                let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{user}{host}{port}")
            }
            _ => "this machine".to_string(),
        };
        match self.kind {
            TargetKind::Local => "this machine".to_string(),
            TargetKind::Ssh => format!("ssh {place}"),
            TargetKind::Slurm => format!("slurm on {place}"),
        }
    }

    /// Every problem with the settings, as one message (`None` when usable).
    pub fn problems(&self) -> Option<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("a target needs a name".to_string());
        } else if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            problems.push(format!(
                "target name '{}': use letters, digits, '-', '_' and '.'",
                self.name
            ));
        }
        let host = self.host.as_deref().unwrap_or("");
        if self.kind == TargetKind::Ssh && host.is_empty() {
            problems.push("an ssh target needs a host".to_string());
        }
        // A host or user starting with '-' would be read by ssh as an option.
        for (what, value) in [("host", host), ("user", self.user.as_deref().unwrap_or(""))] {
            if value.starts_with('-') || value.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                problems.push(format!("{what} '{value}' is not a host or user name"));
            }
        }
        if self.kiln.trim().is_empty() {
            problems.push("the kiln path is empty".to_string());
        }
        if self.store.trim().is_empty() {
            problems.push("the remote store folder is empty".to_string());
        }
        for key in self.env.keys() {
            let valid = key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                problems.push(format!("environment variable name '{key}' is not valid"));
            }
        }
        for option in &self.ssh_options {
            if option.starts_with('-') || option.contains('\n') {
                problems.push(format!("ssh option '{option}': write it as Name=value"));
            }
        }
        if let Some(slurm) = &self.slurm {
            let lines = [&slurm.partition, &slurm.gres, &slurm.mem, &slurm.time]
                .into_iter()
                .flatten()
                .chain(&slurm.extra);
            for value in lines {
                if value.contains(['\n', '\r']) {
                    problems.push(format!("Slurm setting '{value}' spans lines"));
                }
            }
            if slurm.cpus == Some(0) {
                problems.push("cpus must be at least 1".to_string());
            }
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }
}

/// The targets file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetsFile {
    #[serde(default, rename = "target")]
    pub targets: Vec<Target>,
}

/// `$KILN_TARGETS`, else `targets.toml` in the platform config folder
/// (`$XDG_CONFIG_HOME/kiln/targets.toml`, i.e. `~/.config/kiln/targets.toml` on Linux).
pub fn default_targets_path() -> PathBuf {
    if let Some(path) = std::env::var_os("KILN_TARGETS").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("kiln")
        .join("targets.toml")
}

impl TargetsFile {
    /// Reads the file; a missing file is an empty list.
    pub fn read(path: &Path) -> Result<Self, ClusterError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(error) => {
                return Err(ClusterError::Config(format!("{}: {error}", path.display())));
            }
        };
        let file: Self = toml::from_str(&text)
            .map_err(|error| ClusterError::Config(format!("{}: {error}", path.display())))?;
        let mut seen = std::collections::BTreeSet::new();
        for target in &file.targets {
            if let Some(problem) = target.problems() {
                return Err(ClusterError::Config(format!(
                    "{}: target '{}': {problem}",
                    path.display(),
                    target.name
                )));
            }
            if !seen.insert(target.name.as_str()) {
                return Err(ClusterError::Config(format!(
                    "{}: two targets are named '{}'",
                    path.display(),
                    target.name
                )));
            }
        }
        Ok(file)
    }

    /// Writes the file atomically (creating its folder).
    pub fn write(&self, path: &Path) -> Result<(), ClusterError> {
        let text = toml::to_string_pretty(self)
            .map_err(|error| ClusterError::Config(error.to_string()))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| ClusterError::Config(format!("{}: {error}", parent.display())))?;
        }
        crate::runs::atomic::write_atomic(path, text.as_bytes())
            .map_err(|error| ClusterError::Config(format!("{}: {error}", path.display())))
    }

    /// The target named `name` (`local` always exists).
    pub fn get(&self, name: &str) -> Result<Target, ClusterError> {
        if let Some(target) = self.targets.iter().find(|t| t.name == name) {
            return Ok(target.clone());
        }
        if name == LOCAL {
            return Ok(Target::new(LOCAL, TargetKind::Local));
        }
        let known: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        Err(ClusterError::Config(format!(
            "no target named '{name}' (known: {}); add it to the targets file (see `kiln targets list`)",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commented_file_reads_and_round_trips() {
        let text = r#"
# A GPU box that runs kiln directly.
[[target]]
name = "gpu-box"
kind = "ssh"
host = "gpu.example.org"
store = "~/kiln runs"

[[target]]
name = "cluster"
kind = "slurm"
host = "login.example.org"
env = { SLURM_CONF = "/etc/slurm/slurm.conf" }
[target.slurm]
partition = "gpu"
cpus = 4
extra = ["--account=ml"]
"#;
        let file: TargetsFile = toml::from_str(text).expect("parses");
        assert_eq!(file.targets.len(), 2);
        assert_eq!(file.targets[0].kiln, "kiln");
        let slurm = file.targets[1].slurm.clone().expect("slurm settings");
        assert_eq!(slurm.signal_secs, 120);
        assert_eq!(slurm.partition.as_deref(), Some("gpu"));
        let again: TargetsFile =
            toml::from_str(&toml::to_string_pretty(&file).expect("writes")).expect("reads back");
        assert_eq!(again, file);
    }

    #[test]
    fn hosts_that_look_like_options_are_refused() {
        let mut target = Target::new("t", TargetKind::Ssh);
        target.host = Some("-oProxyCommand=touch x".to_string());
        assert!(target.problems().is_some());
        target.host = Some("login".to_string());
        assert_eq!(target.problems(), None);
    }
}
