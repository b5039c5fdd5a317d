//! A seeded mutation fuzzer on stable Rust: inputs are seeds changed by a few random mutations
//! (bit flips, interesting bytes, inserted tokens, cut and duplicated ranges, splices); each
//! runs under `catch_unwind` and a watchdog, and any input that panics, or takes longer than
//! the hang limit, is saved as a regression file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One input longer than this counts as a hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(5);
/// Inputs grow no longer than this.
const MAX_INPUT_BYTES: usize = 1 << 20;

/// Something to fuzz: seed inputs, tokens worth inserting, and the code under test (which must
/// return, never panic, whatever the bytes).
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    pub tokens: &'static [&'static [u8]],
    pub run: CodeUnderTest,
}

/// Runs one input through the code under test.
pub type CodeUnderTest = Box<dyn Fn(&[u8]) + Send + Sync>;

#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub inputs: u64,
    pub panics: u64,
    pub hangs: u64,
    pub slowest: Duration,
    pub saved: Vec<PathBuf>,
}

/// Where the inputs that ever failed are kept, one folder per target.
pub fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target)
}

/// The saved failing inputs of a target.
pub fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(regressions_dir(target))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.path(), std::fs::read(entry.path()).ok()?)))
        .collect();
    files.sort();
    files
}

fn save(target: &str, input: &[u8]) -> PathBuf {
    use sha2::Digest;
    let dir = regressions_dir(target);
    let _ = std::fs::create_dir_all(&dir);
    let hash: String = sha2::Sha256::digest(input)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join(format!("{hash}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

/// Runs one input; `Err` with the panic message if it panicked.
pub fn run_one(target: &Target, input: &[u8]) -> Result<Duration, String> {
    let start = Instant::now();
    FUZZING.with(|fuzzing| fuzzing.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.run)(input)));
    FUZZING.with(|fuzzing| fuzzing.set(false));
    match outcome {
        Ok(()) => Ok(start.elapsed()),
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".to_string())),
    }
}

/// Fuzzes `target` until `budget` is spent or `max_inputs` ran; failing inputs are saved.
pub fn fuzz(target: &Target, seed: u64, budget: Duration, max_inputs: u64) -> Summary {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut summary = Summary::default();
    // The watchdog saves an input that never returns, then ends the process: nothing else can
    // stop a thread stuck in a loop.
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let started_ms = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let clock = Instant::now();
    let watchdog = {
        let (current, started_ms, done) = (current.clone(), started_ms.clone(), done.clone());
        let name = target.name;
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                let started = started_ms.load(Ordering::SeqCst);
                let now = clock.elapsed().as_millis() as u64;
                if started > 0 && now.saturating_sub(started) > 6 * HANG_LIMIT.as_millis() as u64 {
                    let input = current
                        .lock()
                        .map(|input| input.clone())
                        .unwrap_or_default();
                    let path = save(name, &input);
                    eprintln!(
                        "{name}: an input has run for over {}s; saved as {}",
                        6 * HANG_LIMIT.as_secs(),
                        path.display()
                    );
                    std::process::exit(3);
                }
            }
        })
    };
    let deadline = Instant::now() + budget;
    while summary.inputs < max_inputs && Instant::now() < deadline {
        let input = mutated(target, &mut rng);
        if let Ok(mut slot) = current.lock() {
            slot.clone_from(&input);
        }
        started_ms.store(clock.elapsed().as_millis().max(1) as u64, Ordering::SeqCst);
        let outcome = run_one(target, &input);
        started_ms.store(0, Ordering::SeqCst);
        summary.inputs += 1;
        match outcome {
            Ok(elapsed) => {
                summary.slowest = summary.slowest.max(elapsed);
                if elapsed > HANG_LIMIT {
                    summary.hangs += 1;
                    summary.saved.push(save(target.name, &input));
                }
            }
            Err(message) => {
                summary.panics += 1;
                let path = save(target.name, &input);
                eprintln!(
                    "{}: panic ({message}); saved as {}",
                    target.name,
                    path.display()
                );
                summary.saved.push(path);
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    summary
}

/// A seed changed by one to eight random mutations.
fn mutated(target: &Target, rng: &mut StdRng) -> Vec<u8> {
    let mut input = target.seeds[rng.random_range(0..target.seeds.len())].clone();
    for _ in 0..rng.random_range(1..=8) {
        mutate(&mut input, target, rng);
    }
    input.truncate(MAX_INPUT_BYTES);
    input
}

fn mutate(input: &mut Vec<u8>, target: &Target, rng: &mut StdRng) {
    const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'-', b'"', b'\n'];
    let len = input.len();
    let at = |rng: &mut StdRng| {
        if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        }
    };
    match rng.random_range(0..9) {
        0 if len > 0 => {
            let i = at(rng);
            input[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = at(rng);
            input[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
        }
        2 | 3 if !target.tokens.is_empty() => {
            let token = target.tokens[rng.random_range(0..target.tokens.len())];
            let i = rng.random_range(0..=len);
            input.splice(i..i, token.iter().copied());
        }
        4 if len > 0 => {
            let start = at(rng);
            let end = (start + rng.random_range(1..=32)).min(len);
            input.drain(start..end);
        }
        5 if len > 0 => {
            let start = at(rng);
            let end = (start + rng.random_range(1..=64)).min(len);
            let copy = input[start..end].to_vec();
            let i = rng.random_range(0..=len);
            input.splice(i..i, copy);
        }
        6 if len > 0 => input.truncate(at(rng)),
        7 => {
            let other = &target.seeds[rng.random_range(0..target.seeds.len())];
            if !other.is_empty() {
                let start = rng.random_range(0..other.len());
                let end = (start + rng.random_range(1..=128)).min(other.len());
                let i = rng.random_range(0..=len);
                input.splice(i..i, other[start..end].iter().copied());
            }
        }
        _ => {
            let i = rng.random_range(0..=len);
            let byte: u8 = rng.random();
            input.insert(i, byte);
        }
    }
}

thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps fuzzing output readable: a fuzzed input's panic is caught and reported once, not
/// printed in full; any other panic (a failing test) prints as usual.
pub fn quiet_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(std::cell::Cell::get) {
                default(info);
            }
        }));
    });
}
