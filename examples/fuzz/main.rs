//! Long fuzzing runs on stable Rust:
//!
//! ```sh
//! cargo run --release --example fuzz -- --minutes 10            # every target, 10 minutes each
//! cargo run --release --example fuzz -- --minutes 2 csv bundle  # some targets
//! ```
//!
//! Replays the saved regression inputs first, then fuzzes each target for the time given and
//! reports the inputs tried, panics and hangs (one input over 5 s); failing inputs are saved
//! under `tests/fuzz_regressions/<target>/`, where the test suite replays them.

mod driver;
mod targets;

use std::time::Duration;

fn main() {
    let mut minutes = 1.0f64;
    let mut seed = 1u64;
    let mut names: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minutes" => minutes = args.next().and_then(|m| m.parse().ok()).unwrap_or(minutes),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(seed),
            "--help" | "-h" => {
                println!(
                    "fuzz [--minutes N] [--seed S] [TARGET...]; targets: {}",
                    targets::NAMES.join(", ")
                );
                return;
            }
            name => names.push(name.to_string()),
        }
    }
    if names.is_empty() {
        names = targets::NAMES.iter().map(|name| name.to_string()).collect();
    }
    driver::quiet_panics();
    let mut failures = 0;
    for name in &names {
        let Some(target) = targets::by_name(name) else {
            eprintln!("no target '{name}'; targets: {}", targets::NAMES.join(", "));
            std::process::exit(2);
        };
        let mut replay_failures = 0;
        for (path, input) in driver::regressions(name) {
            match driver::run_one(&target, &input) {
                Ok(elapsed) if elapsed <= driver::HANG_LIMIT => {}
                Ok(elapsed) => {
                    replay_failures += 1;
                    eprintln!("{name}: {} still takes {elapsed:?}", path.display());
                }
                Err(message) => {
                    replay_failures += 1;
                    eprintln!("{name}: {} still panics: {message}", path.display());
                }
            }
        }
        let budget = Duration::from_secs_f64(minutes * 60.0);
        let summary = driver::fuzz(&target, seed, budget, u64::MAX);
        println!(
            "{name:<16} {:>9} inputs in {:>5.1} min  {} panics  {} hangs (>5 s)  slowest {:.1} ms  regressions replayed: {} ({} failing)",
            summary.inputs,
            minutes,
            summary.panics,
            summary.hangs,
            summary.slowest.as_secs_f64() * 1000.0,
            driver::regressions(name).len(),
            replay_failures,
        );
        failures += summary.panics + summary.hangs + replay_failures;
    }
    if failures > 0 {
        std::process::exit(1);
    }
}
