//! Running commands on a target: through the system `ssh` client (so the user's ssh config,
//! agent and known hosts apply) over one multiplexed connection per [`Shell`], or with `sh` on
//! this machine for a Slurm login node Kiln runs on. Files go both ways through the same
//! connection (`cat` on the other end), so no path is ever handed to a second parser.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ClusterError;
use super::quote::{quote, quote_path};
use super::targets::Target;

/// What one remote command gave back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The command's exit status; `None` when it was killed (a timeout).
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// ssh's own exit status when the connection (not the remote command) failed.
const SSH_FAILED: i32 = 255;
/// Output kept from one command (remote output is untrusted; nothing here needs more).
pub const MAX_REPLY_BYTES: u64 = 256 * 1024 * 1024;
/// Seconds a single command may take unless a caller says otherwise.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A way to run shell commands on a target.
pub struct Shell {
    target: Target,
    ssh: Option<SshLink>,
}

/// The multiplexed SSH connection: a master process on a private control socket.
struct SshLink {
    control_path: PathBuf,
    /// The options every ssh call gets (host, port, user, key, BatchMode, …) before the host.
    options: Vec<String>,
    host: String,
}

impl Shell {
    /// Opens the connection to `target` (for SSH targets: starts the master and checks that
    /// it authenticates). Fails with a message that says what ssh said.
    pub fn connect(target: &Target) -> Result<Self, ClusterError> {
        if let Some(problem) = target.problems() {
            return Err(ClusterError::Config(format!(
                "target '{}': {problem}",
                target.name
            )));
        }
        let ssh = if target.uses_ssh() {
            let link = SshLink::new(target)?;
            link.start_master(&target.name)?;
            Some(link)
        } else {
            None
        };
        Ok(Self {
            target: target.clone(),
            ssh,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Runs `script` (a POSIX shell command line whose words are quoted) with the target's
    /// environment; `input` is fed to its standard input.
    pub fn run_with(
        &self,
        script: &str,
        input: Option<&mut dyn Read>,
        timeout: Duration,
    ) -> Result<Reply, ClusterError> {
        let script = format!("{}{script}", self.env_prefix());
        let mut reply = self.run_once(&script, input.is_some(), input, timeout)?;
        // A dropped master (network blip, sshd restarted): reconnect once and retry. Commands
        // with input are not retried (the input was consumed); their callers retry whole.
        if reply.code == Some(SSH_FAILED)
            && let Some(link) = &self.ssh
        {
            link.start_master(&self.target.name)?;
            reply = self.run_once(&script, false, None, timeout)?;
        }
        if reply.code == Some(SSH_FAILED) && self.ssh.is_some() {
            return Err(ClusterError::Connect {
                target: self.target.name.clone(),
                message: last_lines(&reply.stderr, 3),
            });
        }
        Ok(reply)
    }

    /// Runs `script` and returns its output; a non-zero exit is an error naming `what`.
    pub fn run(&self, what: &str, script: &str) -> Result<String, ClusterError> {
        let reply = self.run_with(script, None, COMMAND_TIMEOUT)?;
        if !reply.ok() {
            return Err(self.failed(what, &reply));
        }
        Ok(reply.stdout_text())
    }

    /// The error for a command that ran but failed.
    pub fn failed(&self, what: &str, reply: &Reply) -> ClusterError {
        let said = if reply.stderr.trim().is_empty() {
            last_lines(&reply.stdout_text(), 3)
        } else {
            last_lines(&reply.stderr, 5)
        };
        ClusterError::Remote {
            target: self.target.name.clone(),
            what: what.to_string(),
            message: match reply.code {
                Some(code) => format!("exit status {code}: {said}"),
                None => format!("no answer in time: {said}"),
            },
        }
    }

    /// Writes `local` (a file) to `remote_path`, through a temporary name so a reader never
    /// sees half a file.
    pub fn upload_file(&self, local: &Path, remote_path: &str) -> Result<(), ClusterError> {
        let mut file = std::fs::File::open(local)
            .map_err(|error| ClusterError::Io(format!("{}: {error}", local.display())))?;
        self.upload(&mut file, remote_path)
    }

    /// Writes `bytes` to `remote_path` (atomically, as [`Shell::upload_file`]).
    pub fn upload_bytes(&self, bytes: &[u8], remote_path: &str) -> Result<(), ClusterError> {
        self.upload(&mut std::io::Cursor::new(bytes), remote_path)
    }

    fn upload(&self, input: &mut dyn Read, remote_path: &str) -> Result<(), ClusterError> {
        let temp = format!("{remote_path}.part-{:08x}", rand::random::<u32>());
        let script = format!(
            "cat > {temp} && mv -f {temp} {path}",
            temp = quote_path(&temp),
            path = quote_path(remote_path)
        );
        let reply = self.run_with(&script, Some(input), Duration::from_secs(3600))?;
        if !reply.ok() {
            return Err(self.failed(&format!("writing {remote_path}"), &reply));
        }
        Ok(())
    }

    /// Copies the folder `local` to `remote_dir` (created; its content replaced) with tar.
    pub fn upload_dir(&self, local: &Path, remote_dir: &str) -> Result<(), ClusterError> {
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(local)
            .args(["-cf", "-", "."])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| ClusterError::Io(format!("tar: {error}")))?;
        let Some(mut stdout) = tar.stdout.take() else {
            return Err(ClusterError::Io("tar gave no output".to_string()));
        };
        let temp = format!("{remote_dir}.part-{:08x}", rand::random::<u32>());
        let script = format!(
            "mkdir -p {temp} && tar -C {temp} -xf - && rm -rf {dir} && mv {temp} {dir}",
            temp = quote_path(&temp),
            dir = quote_path(remote_dir)
        );
        let reply = self.run_with(&script, Some(&mut stdout), Duration::from_secs(3600));
        let _ = tar.wait();
        let reply = reply?;
        if !reply.ok() {
            return Err(self.failed(&format!("copying {}", local.display()), &reply));
        }
        Ok(())
    }

    /// The bytes of a remote file, at most `max_bytes` (more is an error: untrusted input).
    pub fn download(&self, remote_path: &str, max_bytes: u64) -> Result<Vec<u8>, ClusterError> {
        let script = format!("head -c {} {}", max_bytes + 1, quote_path(remote_path));
        let reply = self.run_with(&script, None, Duration::from_secs(3600))?;
        if !reply.ok() {
            return Err(self.failed(&format!("reading {remote_path}"), &reply));
        }
        if reply.stdout.len() as u64 > max_bytes {
            return Err(ClusterError::Remote {
                target: self.target.name.clone(),
                what: format!("reading {remote_path}"),
                message: format!("larger than {max_bytes} bytes"),
            });
        }
        Ok(reply.stdout)
    }

    /// `export NAME=value; ` for each of the target's variables.
    fn env_prefix(&self) -> String {
        self.target
            .env
            .iter()
            .map(|(key, value)| format!("export {key}={}; ", quote(value)))
            .collect()
    }

    fn run_once(
        &self,
        script: &str,
        piped_input: bool,
        input: Option<&mut dyn Read>,
        timeout: Duration,
    ) -> Result<Reply, ClusterError> {
        let mut command = match &self.ssh {
            Some(link) => link.command(script),
            None => {
                let mut command = Command::new("sh");
                command.arg("-c").arg(script);
                command
            }
        };
        command
            .stdin(if piped_input {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().map_err(|error| {
            ClusterError::Io(format!(
                "cannot start {}: {error}",
                if self.ssh.is_some() { "ssh" } else { "sh" }
            ))
        })?;
        collect(child, input, timeout)
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if let Some(link) = &self.ssh {
            link.stop_master();
        }
    }
}

impl SshLink {
    fn new(target: &Target) -> Result<Self, ClusterError> {
        let dir = private_control_dir()?;
        let control_path = dir.join(format!("{:016x}", rand::random::<u64>()));
        let mut options = vec![
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-o".to_string(),
            "ConnectTimeout=10".to_string(),
            "-o".to_string(),
            "ServerAliveInterval=3".to_string(),
            "-o".to_string(),
            "ServerAliveCountMax=3".to_string(),
            "-o".to_string(),
            format!("ControlPath={}", control_path.display()),
        ];
        if let Some(port) = target.port {
            options.extend(["-p".to_string(), port.to_string()]);
        }
        if let Some(user) = target.user.as_ref().filter(|u| !u.is_empty()) {
            options.extend(["-l".to_string(), user.clone()]);
        }
        if let Some(identity) = target.identity_file.as_ref().filter(|i| !i.is_empty()) {
            options.extend([
                "-i".to_string(),
                expand_home(identity),
                "-o".to_string(),
                "IdentitiesOnly=yes".to_string(),
            ]);
        }
        for option in &target.ssh_options {
            options.extend(["-o".to_string(), expand_home(option)]);
        }
        Ok(Self {
            control_path,
            options,
            host: target.host.clone().unwrap_or_default(),
        })
    }

    /// Starts the master connection in the background (`-f` after authentication), replacing
    /// a dead one. Its errors (refused, unknown host key, denied key) are returned as ssh said.
    fn start_master(&self, target: &str) -> Result<(), ClusterError> {
        if self.master_alive() {
            return Ok(());
        }
        let _ = std::fs::remove_file(&self.control_path);
        let errors = self.control_path.with_extension("log");
        let log = std::fs::File::create(&errors)
            .map_err(|error| ClusterError::Io(format!("{}: {error}", errors.display())))?;
        let status = Command::new("ssh")
            .args(&self.options)
            .args([
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPersist=yes",
                "-N",
                "-f",
                "--",
                &self.host,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .map_err(|error| ClusterError::Io(format!("cannot start ssh: {error}")))?;
        let said = std::fs::read_to_string(&errors).unwrap_or_default();
        let _ = std::fs::remove_file(&errors);
        if !status.success() {
            return Err(ClusterError::Connect {
                target: target.to_string(),
                message: last_lines(&said, 3),
            });
        }
        Ok(())
    }

    fn master_alive(&self) -> bool {
        self.control_path.exists()
            && Command::new("ssh")
                .args(&self.options)
                .args(["-O", "check", "--", &self.host])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
    }

    fn stop_master(&self) {
        let _ = Command::new("ssh")
            .args(&self.options)
            .args(["-O", "exit", "--", &self.host])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.control_path);
    }

    /// An ssh call through the master. The remote login shell gets `sh -c 'SCRIPT'`, so the
    /// script means the same whatever that shell is.
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(&self.options)
            .args(["-o", "ControlMaster=no", "--", &self.host])
            .arg(format!("sh -c {}", quote(script)));
        command
    }
}

/// A folder only this user can enter, for the control sockets (a socket there cannot be used
/// by anyone else to ride the connection).
fn private_control_dir() -> Result<PathBuf, ClusterError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        // Short: a socket path must fit in ~100 bytes.
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let dir = base.join(format!("kiln-ssh-{uid}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(ClusterError::Io(format!("{}: {error}", dir.display()))),
        }
        let meta = std::fs::symlink_metadata(&dir)
            .map_err(|error| ClusterError::Io(format!("{}: {error}", dir.display())))?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(ClusterError::Io(format!(
                "{} is not a private folder of this user (mode 0700); remove it and try again",
                dir.display()
            )));
        }
        Ok(dir)
    }
    #[cfg(not(unix))]
    {
        Err(ClusterError::Io(
            "SSH targets need a Unix-like system (control sockets)".to_string(),
        ))
    }
}

/// `~/x` → `$HOME/x` for paths handed to ssh on this machine.
fn expand_home(text: &str) -> String {
    match (text.find("~/"), dirs::home_dir()) {
        (Some(at), Some(home)) if at == 0 || text[..at].ends_with('=') => {
            format!("{}{}/{}", &text[..at], home.display(), &text[at + 2..])
        }
        _ => text.to_string(),
    }
}

/// Feeds `input`, reads both outputs (bounded), and waits up to `timeout`.
fn collect(
    mut child: Child,
    input: Option<&mut dyn Read>,
    timeout: Duration,
) -> Result<Reply, ClusterError> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || read_bounded(stdout));
    let err_thread = std::thread::spawn(move || read_bounded(stderr));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A broken pipe means the other side ended early; its status says why.
        let _ = std::io::copy(input, &mut stdin).and_then(|_| stdin.flush());
    }
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => return Err(ClusterError::Io(format!("waiting for ssh: {error}"))),
        }
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    Ok(Reply {
        code,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

fn read_bounded(stream: Option<impl Read>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(stream) = stream {
        let _ = stream.take(MAX_REPLY_BYTES).read_to_end(&mut bytes);
    }
    bytes
}

/// The last `n` non-empty lines of `text`, joined with " / " (for one-line messages).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    let joined = lines[start..].join(" / ");
    if joined.is_empty() {
        "no message".to_string()
    } else {
        joined
    }
}
