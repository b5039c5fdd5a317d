//! A real, private Slurm cluster and SSH login host on this machine, for the cluster tests:
//! munged, slurmctld and slurmd (one node, as `slurmd -C` describes this machine) and an sshd
//! on a loopback port with its own host and client keys, everything in one temporary folder.
//! Nothing is mocked; the daemons are stopped by their process ids when the fixture drops.
//!
//! Needs (Debian): `apt-get install -y --no-install-recommends slurm-wlm munge openssh-server`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The programs the fixture starts or calls.
const PROGRAMS: [&str; 10] = [
    "munged",
    "mungekey",
    "slurmctld",
    "slurmd",
    "sbatch",
    "scontrol",
    "squeue",
    "sshd",
    "ssh",
    "ssh-keygen",
];

/// Why the cluster tests cannot run here (a program is missing), or `None`.
pub fn missing_programs() -> Option<String> {
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|program| find_program(program).is_none())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "skipped: {} not installed (apt-get install -y --no-install-recommends slurm-wlm munge openssh-server)",
            missing.join(", ")
        )
    })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| PathBuf::from(name))
}

/// One cluster test at a time: each starts its own daemons, and two trainings at once on a
/// small machine would only make each slower.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Cluster {
    /// Everything lives here (mode 0755: munged refuses a socket in a private folder).
    pub dir: PathBuf,
    _temp: tempfile::TempDir,
    pub slurm_conf: PathBuf,
    /// A copy of the `kiln` under test: the login host's and this machine's (same version).
    pub kiln: PathBuf,
    pub ssh_port: u16,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    /// The run store on the cluster side.
    pub remote_store: PathBuf,
    /// This machine's run store (the mirrors).
    pub local_store: PathBuf,
    pub targets_file: PathBuf,
    munged: Option<u32>,
    slurmctld: Option<u32>,
    slurmd: Option<u32>,
    sshd: Option<u32>,
}

impl Cluster {
    /// Starts munged, slurmctld, slurmd and sshd; waits until the node is idle and ssh logs in.
    pub fn start() -> Cluster {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        set_mode(&dir, 0o755);
        let kiln = dir.join("bin").join("kiln");
        std::fs::create_dir_all(dir.join("bin")).expect("bin folder");
        std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &kiln).expect("kiln copied");
        // A target folder shared with another checkout may hold that checkout's kiln.
        let probe = Command::new(&kiln)
            .args(["targets", "--help"])
            .output()
            .expect("kiln runs");
        assert!(
            probe.status.success(),
            "{} is not this source's kiln (another checkout built into the same target folder?); build again",
            env!("CARGO_BIN_EXE_kiln")
        );
        let mut cluster = Cluster {
            slurm_conf: dir.join("slurm.conf"),
            kiln,
            ssh_port: free_port(),
            client_key: dir.join("client_key"),
            known_hosts: dir.join("known_hosts"),
            remote_store: dir.join("cluster store"),
            local_store: dir.join("local store"),
            targets_file: dir.join("targets.toml"),
            dir,
            _temp: temp,
            munged: None,
            slurmctld: None,
            slurmd: None,
            sshd: None,
        };
        cluster.start_munge();
        cluster.start_slurm();
        cluster.make_keys();
        cluster.start_sshd();
        cluster.write_targets(&[]);
        cluster
    }

    fn start_munge(&mut self) {
        let key = self.dir.join("munge.key");
        run_ok(
            Command::new(program("mungekey"))
                .arg("--create")
                .arg(format!("--keyfile={}", key.display())),
        );
        let pid_file = self.dir.join("munged.pid");
        run_ok(
            Command::new(program("munged"))
                .arg("--key-file")
                .arg(&key)
                .arg("--socket")
                .arg(self.dir.join("munge.sock"))
                .arg("--pid-file")
                .arg(&pid_file)
                .arg("--log-file")
                .arg(self.dir.join("munged.log"))
                .arg("--seed-file")
                .arg(self.dir.join("munge.seed")),
        );
        self.munged = Some(wait_pid_file(&pid_file));
    }

    fn start_slurm(&mut self) {
        let node = Command::new(program("slurmd"))
            .arg("-C")
            .output()
            .expect("slurmd -C runs");
        let node_line = String::from_utf8_lossy(&node.stdout)
            .lines()
            .find(|line| line.starts_with("NodeName="))
            .expect("slurmd -C names this node")
            .to_string();
        let d = self.dir.display();
        let ctld_port = free_port();
        let slurmd_port = free_port();
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(self.dir.join(sub)).expect("slurm folders");
        }
        // cred_expire also sets how long a requeued job waits before it may start again
        // (120 s by default).
        let conf = format!(
            "ClusterName=kilntest\n\
             SlurmctldHost=localhost\n\
             SlurmUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={d}/munge.sock,cred_expire=5\n\
             CredType=cred/munge\n\
             ProctrackType=proctrack/pgid\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             SchedulerParameters=batch_sched_delay=0\n\
             EnforcePartLimits=ALL\n\
             ReturnToService=2\n\
             MpiDefault=none\n\
             KillWait=10\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             {node_line} State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        );
        std::fs::write(&self.slurm_conf, conf).expect("slurm.conf written");
        run_ok(
            Command::new(program("slurmctld"))
                .arg("-f")
                .arg(&self.slurm_conf)
                .env("SLURM_CONF", &self.slurm_conf),
        );
        self.slurmctld = Some(wait_pid_file(&self.dir.join("slurmctld.pid")));
        run_ok(
            Command::new(program("slurmd"))
                .arg("-f")
                .arg(&self.slurm_conf)
                .env("SLURM_CONF", &self.slurm_conf),
        );
        self.slurmd = Some(wait_pid_file(&self.dir.join("slurmd.pid")));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.slurm("sinfo", &["-h", "-o", "%t"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "idle" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the test node is not idle after 30 s ({state}); slurmctld.log:\n{}",
                std::fs::read_to_string(self.dir.join("slurmctld.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn make_keys(&self) {
        for key in ["host_key", "client_key"] {
            run_ok(
                Command::new(program("ssh-keygen"))
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(self.dir.join(key)),
            );
        }
        let public = std::fs::read_to_string(self.dir.join("client_key.pub")).expect("key");
        std::fs::write(self.dir.join("authorized_keys"), public).expect("authorized_keys");
        let host = std::fs::read_to_string(self.dir.join("host_key.pub")).expect("host key");
        let host: Vec<&str> = host.split_whitespace().take(2).collect();
        std::fs::write(
            &self.known_hosts,
            format!("[127.0.0.1]:{} {}\n", self.ssh_port, host.join(" ")),
        )
        .expect("known_hosts");
    }

    /// Starts the login host's sshd (again, after [`Cluster::stop_sshd`]: same port and keys).
    pub fn start_sshd(&mut self) {
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let pid_file = self.dir.join("sshd.pid");
        let _ = std::fs::remove_file(&pid_file);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new(program("sshd"))
                .arg("-p")
                .arg(self.ssh_port.to_string())
                .args(["-o", "ListenAddress=127.0.0.1", "-o"])
                .arg(format!(
                    "AuthorizedKeysFile={}",
                    self.dir.join("authorized_keys").display()
                ))
                .args(["-o", "UsePAM=no", "-o", "StrictModes=no", "-h"])
                .arg(self.dir.join("host_key"))
                .arg("-o")
                .arg(format!("PidFile={}", pid_file.display()))
                .arg("-E")
                .arg(self.dir.join("sshd.log"))
                .output()
                .expect("sshd starts");
            if out.status.success() {
                break;
            }
            // Right after a stop the port may still be held for a moment.
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        self.sshd = Some(wait_pid_file(&pid_file));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.ssh(&["true"]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cannot log in to the test sshd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the sshd and every session it serves (the link drops, as on a network failure).
    pub fn stop_sshd(&mut self) {
        if let Some(pid) = self.sshd.take() {
            let mut family = descendants(pid);
            family.push(pid);
            for pid in family {
                signal(pid, libc::SIGKILL);
            }
            wait_gone(pid);
        }
    }

    /// Runs a Slurm client command against this cluster.
    pub fn slurm(&self, command: &str, args: &[&str]) -> Output {
        Command::new(program(command))
            .args(args)
            .env("SLURM_CONF", &self.slurm_conf)
            .output()
            .expect("a slurm command runs")
    }

    /// Runs a command on the login host through ssh (as the tests' user would).
    pub fn ssh(&self, command: &[&str]) -> Output {
        Command::new(program("ssh"))
            .args(self.ssh_options())
            .arg("127.0.0.1")
            .args(command)
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    }

    fn ssh_options(&self) -> Vec<String> {
        vec![
            "-p".to_string(),
            self.ssh_port.to_string(),
            "-i".to_string(),
            self.client_key.display().to_string(),
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-o".to_string(),
            "IdentitiesOnly=yes".to_string(),
            "-o".to_string(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
        ]
    }

    /// The targets file: `slurm` (this cluster through ssh, partition debug, 1 CPU), `gpu-box`
    /// (the same host as a plain ssh target), and `extra` entries as written.
    pub fn write_targets(&self, extra: &[&str]) {
        let mut text = self.target_entry("slurm", "slurm", self.ssh_port, &self.client_key);
        text.push_str("[target.slurm]\npartition = \"debug\"\ncpus = 1\nsignal_secs = 10\n\n");
        text.push_str(&self.target_entry("gpu-box", "ssh", self.ssh_port, &self.client_key));
        for entry in extra {
            text.push_str(entry);
            text.push('\n');
        }
        std::fs::write(&self.targets_file, text).expect("targets written");
    }

    /// One `[[target]]` entry pointing at this cluster's login host.
    pub fn target_entry(&self, name: &str, kind: &str, port: u16, key: &Path) -> String {
        format!(
            "[[target]]\nname = {name:?}\nkind = {kind:?}\nhost = \"127.0.0.1\"\nport = {port}\n\
             identity_file = {key:?}\nssh_options = [{known:?}]\nkiln = {kiln:?}\nstore = {store:?}\n\
             env = {{ SLURM_CONF = {conf:?} }}\n",
            key = key.display().to_string(),
            known = format!("UserKnownHostsFile={}", self.known_hosts.display()),
            kiln = self.kiln.display().to_string(),
            store = self.remote_store.display().to_string(),
            conf = self.slurm_conf.display().to_string(),
        )
    }

    /// Runs the kiln under test on this machine (local store and targets file set).
    pub fn kiln(&self, args: &[&str]) -> Output {
        self.kiln_command(args).output().expect("kiln runs")
    }

    pub fn kiln_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.kiln);
        command
            .args(args)
            .env("KILN_RUNS_DIR", &self.local_store)
            .env("KILN_TARGETS", &self.targets_file)
            .env_remove("SLURM_CONF")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        command
    }

    /// Run folders in the cluster's store (not its dataset cache or job files).
    pub fn remote_runs(&self) -> Vec<String> {
        folders(&self.remote_store)
    }

    /// Run folders in this machine's store.
    pub fn local_runs(&self) -> Vec<String> {
        folders(&self.local_store)
    }

    /// The Slurm job id of a mirrored run.
    pub fn job_of(&self, run: &str) -> String {
        let record = self.local_record(run);
        record["remote"]["job"]
            .as_str()
            .expect("a remote run has a job")
            .to_string()
    }

    pub fn local_record(&self, run: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.local_store.join(run).join("run.json"))
            .expect("the mirror has run.json");
        serde_json::from_str(&text).expect("run.json parses")
    }

    /// Epochs in a run folder's metrics.jsonl, as a count per epoch (valid loss lines), after
    /// applying its resume markers as the reader does: a resume from epoch k drops later ones.
    pub fn epoch_counts(run_dir: &Path) -> std::collections::BTreeMap<u64, usize> {
        let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap_or_default();
        let mut counts = std::collections::BTreeMap::new();
        for line in text.lines() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if value["split"] == "valid" && value["metric"] == "loss" {
                *counts
                    .entry(value["epoch"].as_u64().unwrap_or(0))
                    .or_insert(0) += 1;
            }
        }
        counts
    }

    /// The daemons' logs, for a failing test's message.
    pub fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log", "sshd.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {name}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_sshd();
        // Jobs still queued or running (a test that failed mid-run) go first.
        if self.slurmctld.is_some() {
            let _ = Command::new(program("scancel"))
                .args(["--user", "root", "--signal=KILL", "--full"])
                .env("SLURM_CONF", &self.slurm_conf)
                .output();
        }
        // slurmd first (it kills what still runs), then the controller, then munge.
        for pid in [
            self.slurmd.take(),
            self.slurmctld.take(),
            self.munged.take(),
        ]
        .into_iter()
        .flatten()
        {
            signal(pid, libc::SIGTERM);
            if !wait_gone(pid) {
                signal(pid, libc::SIGKILL);
                wait_gone(pid);
            }
        }
        // What is left of this cluster: job steps (slurmstepd outlives slurmd) and trainers,
        // known by this cluster's SLURM_CONF in their environment or by this folder's kiln.
        let conf = format!("SLURM_CONF={}", self.slurm_conf.display());
        for pid in processes_of(&self.kiln, &conf) {
            signal(pid, libc::SIGKILL);
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn run_ok(command: &mut Command) {
    let out = command.output().expect("a fixture program starts");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_pid_file(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP port free on the loopback right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill only sends a signal, to a process this fixture started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Waits up to 10 s for a process to end; whether it did.
fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for a parent that is not us.
        if stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Every process whose parent chain leads to `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if let Some(parent) = stat
                .rsplit(") ")
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok())
            {
                parents.push((child, parent));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let current = found[i];
        for (child, parent) in &parents {
            if *parent == current && !found.contains(child) {
                found.push(*child);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// Processes (not this one) whose executable is `path` or whose environment holds `variable`
/// (`NAME=value`).
fn processes_of(path: &Path, variable: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let runs_kiln =
                std::fs::read_link(entry.path().join("exe")).is_ok_and(|exe| exe == path);
            let in_cluster = std::fs::read(entry.path().join("environ")).is_ok_and(|environ| {
                environ
                    .split(|&b| b == 0)
                    .any(|entry| entry == variable.as_bytes())
            });
            if runs_kiln || in_cluster {
                pids.push(pid);
            }
        }
    }
    pids
}

fn folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().is_dir())
                .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
