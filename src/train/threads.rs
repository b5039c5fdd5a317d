//! The threads a run computes on: a pool of its own, one thread per core, with the training
//! loop running on one of them.
//!
//! burn's CPU backend splits large operations over the rayon pool it is called from. Called
//! from a training thread outside any pool, that is rayon's global pool: one thread per core
//! plus the training thread, which hands work over and waits for it on every operation. The
//! pool's threads spin a while for more work before they sleep, and on a machine with few cores
//! that spinning takes cores from the training thread between operations. Measured on the MLP
//! benchmark on 2 cores (BENCHMARKS.md, overhead): 131–140k samples/s from a plain thread,
//! 173k with one pool thread (no competition, no splitting). With the loop inside the pool,
//! the thread that issues an operation is one of the threads that compute it.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runs `work` on a fresh pool of one thread per core (rayon calls inside it use that pool);
/// on the calling thread if no pool can be started.
pub fn in_training_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    keep_freed_memory();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|index| format!("kiln-math-{index}"))
        .build()
    {
        Ok(pool) => pool.install(|| {
            let keepers = Arc::new(Keepers {
                wanted: threads - 1,
                alive: AtomicUsize::new(0),
                idle_in_a_row: AtomicUsize::new(0),
            });
            let previous = KEEPERS.replace(Some(keepers));
            let result = work();
            KEEPERS.set(previous);
            result
        }),
        Err(error) => {
            log::warn!("training on the calling thread: no thread pool ({error})");
            work()
        }
    }
}

/// The pool's other threads, kept looking for work while a training loop runs. A rayon thread
/// that finds no work goes to sleep, and waking it costs a system call and, in a virtual machine,
/// an interrupt between cores: several times per step, as each large operation is split
/// (measured on this project's 2-core VM: about a seventh of the MLP's step was in the kernel,
/// and the step ran at 0.7× the speed it reaches with the threads kept awake).
///
/// A keeper is a job on one pool thread that takes the pool's work as it comes and, between
/// operations, spins, yielding its core now and then to any thread that is ready. It ends after
/// [`KEEPER_IDLE`] without work, so a pause (validation, a checkpoint, a model too small to
/// split) gives the thread back to rayon's sleep; the loop calls [`keep_warm`] every step to
/// start keepers again, and stops once several keepers in a row found nothing to do.
struct Keepers {
    wanted: usize,
    alive: AtomicUsize,
    /// Keepers in a row that ended without running any work. A keeper can start just before a
    /// pause (the epoch's end) and find nothing; several in a row mean a model too small to
    /// split, and then no more are started.
    idle_in_a_row: AtomicUsize,
}

/// Keepers in a row that found no work, after which the pool's threads are left to sleep.
const IDLE_KEEPERS_BEFORE_GIVING_UP: usize = 8;

/// How long a keeper spins without work before it ends.
const KEEPER_IDLE: Duration = Duration::from_micros(500);

thread_local! {
    /// The keepers of the pool whose training loop runs on this thread.
    static KEEPERS: RefCell<Option<Arc<Keepers>>> = const { RefCell::new(None) };
}

/// Called by a training loop once per step, on its own thread: keeps the training pool's other
/// threads awake while they have work (see [`Keepers`]). Does nothing outside
/// [`in_training_pool`].
pub fn keep_warm() {
    KEEPERS.with_borrow(|keepers| {
        if let Some(keepers) = keepers {
            keepers.start_missing();
        }
    });
}

impl Keepers {
    fn start_missing(self: &Arc<Self>) {
        if self.idle_in_a_row.load(Ordering::Relaxed) >= IDLE_KEEPERS_BEFORE_GIVING_UP {
            return;
        }
        while self.alive.load(Ordering::Relaxed) < self.wanted {
            self.alive.fetch_add(1, Ordering::Relaxed);
            let keepers = self.clone();
            rayon::spawn(move || keepers.keep());
        }
    }

    fn keep(self: Arc<Self>) {
        // The loop's own thread can pick a keeper up while it waits inside an operation; it
        // hands it back to the pool (another thread takes it) and returns to the loop at once.
        if KEEPERS.with_borrow(Option::is_some) {
            rayon::spawn(move || self.keep());
            return;
        }
        let mut last_work = Instant::now();
        let mut ran_any = false;
        let mut idle_rounds = 0u32;
        loop {
            match rayon::yield_now() {
                Some(rayon::Yield::Executed) => {
                    ran_any = true;
                    idle_rounds = 0;
                    last_work = Instant::now();
                }
                _ => {
                    idle_rounds = idle_rounds.wrapping_add(1);
                    if idle_rounds.is_multiple_of(64) {
                        if last_work.elapsed() > KEEPER_IDLE {
                            break;
                        }
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        if ran_any {
            self.idle_in_a_row.store(0, Ordering::Relaxed);
        } else {
            self.idle_in_a_row.fetch_add(1, Ordering::Relaxed);
        }
        self.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Lets the allocator keep and reuse freed blocks up to 32 MB instead of returning each to the
/// system: a training step frees and allocates the same activation-sized buffers every time,
/// and each fresh one costs a page fault per 4 KB (measured: a tenth of a 32×32 RGB CNN's step).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            const THRESHOLD_BYTES: libc::c_int = 32 << 20;
            // SAFETY: mallopt only changes glibc's allocation thresholds; no memory is touched.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD_BYTES);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 8 * THRESHOLD_BYTES);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_work_runs_on_a_pool_of_one_thread_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let (index, threads, name) = super::in_training_pool(|| {
            (
                rayon::current_thread_index(),
                rayon::current_num_threads(),
                std::thread::current().name().map(str::to_string),
            )
        });
        assert!(index.is_some(), "on a pool thread");
        assert_eq!(threads, cores);
        assert!(name.is_some_and(|name| name.starts_with("kiln-math-")));
    }

    #[test]
    fn kept_warm_threads_take_the_work_and_end_with_the_pool() {
        use rayon::prelude::*;
        let sums: Vec<u64> = super::in_training_pool(|| {
            (0..200)
                .map(|round| {
                    super::keep_warm();
                    (0..10_000u64)
                        .into_par_iter()
                        .map(|value| value + round)
                        .sum()
                })
                .collect()
        });
        for (round, sum) in sums.into_iter().enumerate() {
            assert_eq!(sum, 49_995_000 + 10_000 * round as u64);
        }
        // Outside a training pool it does nothing.
        super::keep_warm();
    }
}
