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
        Ok(pool) => pool.install(work),
        Err(error) => {
            log::warn!("training on the calling thread: no thread pool ({error})");
            work()
        }
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
}
