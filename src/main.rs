use clap::Parser;

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = kiln::cli::Cli::parse();
    if cli.command.is_none() {
        let options = kiln::ui::AppOptions {
            runs_dir: cli.runs_dir.unwrap_or_else(kiln::runs::default_runs_dir),
            initial_data: cli.open,
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
    match kiln::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
