use clap::Parser;

fn main() -> std::process::ExitCode {
    quiet_device_probing();
    // Only Kiln's own warnings by default: the graphics and compute libraries' logs are for
    // RUST_LOG (e.g. RUST_LOG=wgpu_hal=warn), not for every command.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("kiln=warn")).init();
    let cli = kiln::cli::Cli::parse();
    #[cfg(feature = "gui")]
    if cli.command.is_none() {
        let options = kiln::ui::AppOptions {
            runs_dir: cli.runs_dir.unwrap_or_else(kiln::runs::default_runs_dir),
            initial_data: cli.open,
            targets_file: cli.targets,
            ..Default::default()
        };
        return match kiln::ui::run_app(options) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: could not open the window: {error}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    #[cfg(not(feature = "gui"))]
    if cli.command.is_none() {
        eprintln!(
            "error: this kiln is headless (built without the `gui` feature): give a command, see kiln --help"
        );
        return std::process::ExitCode::FAILURE;
    }
    restore_default_sigpipe();
    match kiln::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Mesa's Vulkan device-selection layer asks a Wayland compositor which GPU is the default;
/// without a session (no XDG_RUNTIME_DIR: ssh, cron, Slurm jobs, CI) libwayland prints
/// "error: XDG_RUNTIME_DIR is invalid or not set in the environment." for every Vulkan instance,
/// which reads like a failure. Kiln lists the adapters and picks one itself, so the layer's
/// ordering adds nothing there: it is switched off through its own documented variable, unless
/// the user set that.
fn quiet_device_probing() {
    let session =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| std::path::Path::new(&dir).is_dir());
    if session || std::env::var_os("NODEVICE_SELECT").is_some() {
        return;
    }
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// Rust ignores SIGPIPE, so `kiln runs | head` would make `println!` panic once the reader is
/// gone; with the default action a command line tool just ends quietly, as others do.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any other thread exists; only resets a signal
    // disposition to its default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
