//! Checking a target before anything is sent there: the same `kiln` version, its devices, the
//! store folder, and (Slurm) the partitions.

use super::ClusterError;
use super::quote::quote_path;
use super::shell::Shell;
use super::slurm;
use super::targets::{Target, TargetKind};

/// What **Test connection** and `kiln targets test` show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionReport {
    pub target: String,
    pub place: String,
    pub kiln_version: String,
    /// `kiln devices` on the target: the devices training there would use.
    pub devices: String,
    /// The remote store as an absolute path.
    pub store: String,
    /// `sinfo`'s partitions (Slurm targets).
    pub partitions: Option<String>,
}

impl std::fmt::Display for ConnectionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "target:     {} ({})", self.target, self.place)?;
        writeln!(f, "kiln:       {}", self.kiln_version)?;
        writeln!(f, "store:      {}", self.store)?;
        writeln!(f, "devices:")?;
        for line in self.devices.lines() {
            writeln!(f, "  {line}")?;
        }
        if let Some(partitions) = &self.partitions {
            writeln!(f, "partitions:")?;
            for line in partitions.lines() {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

/// The target's `kiln --version`, refused unless it is this one's.
pub fn check_kiln(shell: &Shell) -> Result<String, ClusterError> {
    let target = shell.target();
    let ours = format!("kiln {}", env!("CARGO_PKG_VERSION"));
    let install = format!(
        "build it with `cargo build --release --no-default-features` from the same Kiln source and copy target/release/kiln there (docs/cluster.md), then set kiln = \"PATH\" for target '{}'",
        target.name
    );
    let reply = shell.run_with(
        &format!("{} --version", quote_path(&target.kiln)),
        None,
        std::time::Duration::from_secs(60),
    )?;
    let said = reply.stdout_text();
    let theirs = said.lines().next().unwrap_or("").trim().to_string();
    if !reply.ok() || !theirs.starts_with("kiln ") {
        return Err(ClusterError::Kiln {
            target: target.name.clone(),
            message: format!(
                "no working kiln at '{}' ({}); {install}",
                target.kiln,
                super::shell::last_lines(&format!("{}\n{said}", reply.stderr), 2)
            ),
        });
    }
    if theirs != ours {
        return Err(ClusterError::Kiln {
            target: target.name.clone(),
            message: format!(
                "'{}' is {theirs}, this is {ours}: runs must be trained by the same version; {install}",
                target.kiln
            ),
        });
    }
    Ok(theirs)
}

/// Creates the remote store (and its data cache and job folders) and returns its absolute path.
pub(crate) fn remote_store(shell: &Shell) -> Result<String, ClusterError> {
    let store = quote_path(&shell.target().store);
    let out = shell.run(
        "creating the remote store",
        &format!("mkdir -p {store}/.kiln-data {store}/.kiln-jobs && cd {store} && pwd -P"),
    )?;
    let path = out.lines().next().unwrap_or("").trim().to_string();
    if !path.starts_with('/') {
        return Err(ClusterError::Remote {
            target: shell.target().name.clone(),
            what: "creating the remote store".to_string(),
            message: format!("unexpected answer '{path}'"),
        });
    }
    Ok(path)
}

/// Connects and reports what the target offers; the first problem is the error.
pub fn test_connection(target: &Target) -> Result<ConnectionReport, ClusterError> {
    let mut report = ConnectionReport {
        target: target.name.clone(),
        place: target.describe(),
        ..ConnectionReport::default()
    };
    if target.kind == TargetKind::Local {
        report.kiln_version = format!("kiln {}", env!("CARGO_PKG_VERSION"));
        report.devices = crate::train::wgpu_adapters()
            .iter()
            .map(|a| {
                format!(
                    "wgpu: {} ({}){}",
                    a.name,
                    a.backend,
                    if a.software { ", software" } else { "" }
                )
            })
            .chain(std::iter::once("cpu: flex".to_string()))
            .collect::<Vec<_>>()
            .join("\n");
        report.store = "the local store".to_string();
        return Ok(report);
    }
    let shell = Shell::connect(target)?;
    report.kiln_version = check_kiln(&shell)?;
    report.store = remote_store(&shell)?;
    report.devices = shell
        .run(
            "listing devices",
            &format!("{} devices", quote_path(&target.kiln)),
        )?
        .trim()
        .to_string();
    if target.kind == TargetKind::Slurm {
        report.partitions = Some(slurm::partitions(&shell)?.trim().to_string());
    }
    Ok(report)
}
