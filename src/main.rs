use clap::Parser;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
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
