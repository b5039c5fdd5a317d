//! Denormal floats flushed to zero while training on the CPU.
//!
//! As a model learns, some weights, gradients and Adam moments drift below f32's normal range
//! (1.2e-38); x86 CPUs handle such "denormal" numbers in microcode, dozens of times slower.
//! Measured on the MLP benchmark (BENCHMARKS.md, overhead): epochs slowed from 99k to 67k
//! samples/s as the model learned, and stayed at full speed with denormals flushed. A value that
//! small changes nothing a model computes in f32.

/// Sets flush-to-zero and denormals-are-zero on this thread and on every thread of the pool that
/// burn's CPU backend computes on. The flags are per thread, so they touch nothing else.
pub(crate) fn flush_to_zero() {
    set_on_this_thread();
    rayon::broadcast(|_| set_on_this_thread());
}

#[cfg(target_arch = "x86_64")]
fn set_on_this_thread() {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags.
    const FTZ_DAZ: u32 = 0x8040;
    // SAFETY: only the two rounding-mode-independent denormal flags of this thread's SSE control
    // register change; every x86_64 CPU has both, and no memory is touched.
    #[allow(deprecated)] // the replacement is inline assembly doing the same
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | FTZ_DAZ);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn set_on_this_thread() {
    // ARM cores handle denormals at full speed in their vector units: nothing to do.
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #[test]
    fn tiny_products_become_zero_on_the_training_threads() {
        // Computed afresh each time: the compiler assumes the default float mode and would
        // otherwise reuse the first product.
        let product = || std::hint::black_box(1e-30f32) * std::hint::black_box(1e-10f32);
        std::thread::spawn(move || {
            assert!(product() > 0.0, "a denormal before");
            super::flush_to_zero();
            assert_eq!(product(), 0.0, "flushed on this thread");
            let on_pool = rayon::broadcast(|_| product());
            assert!(on_pool.iter().all(|&value| value == 0.0), "and on the pool");
        })
        .join()
        .expect("the test thread");
    }
}
