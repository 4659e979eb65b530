//! The thread pools the kernels run on.
//!
//! All work of one kernel call runs inside [`with_threads`], on a cached rayon pool of the requested
//! size; nested parallel code (faer's products, `par_chunks`) then uses at most that many threads.
//! Results never depend on the pool's size: random streams and reductions are keyed by fixed chunks
//! (see `rng`), not by threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The number of threads `n_jobs` stands for: `0` means every available core.
pub fn resolve_threads(n_jobs: usize) -> usize {
    // Asking the OS (cgroup quotas, affinity) costs tens of microseconds: ask once.
    static CORES: OnceLock<usize> = OnceLock::new();
    if n_jobs == 0 {
        *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    } else {
        n_jobs
    }
}

fn pool(n_threads: usize) -> Arc<rayon::ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned lock only means another caller panicked while inserting: the map is still valid.
    let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
    pools
        .entry(n_threads)
        .or_insert_with(|| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n_threads)
                    .thread_name(move |i| format!("deepgm-{n_threads}-{i}"))
                    .build()
                    .expect("deepgm: cannot start a thread pool"),
            )
        })
        .clone()
}

/// Runs `f` on a pool of `n_jobs` threads (`0` = all cores); parallel code inside uses that pool.
///
/// Afterwards the pool's workers spin for a short while (see [`spin_time`]) instead of going to
/// sleep: a training loop calls the kernels every few milliseconds with a little Python in between,
/// and a sleeping worker can take longer to wake (measured: over 0.3 ms on a virtual machine) than
/// its share of the next product. The spin ends as soon as the next call starts, and pools with more
/// threads than cores do not spin. OpenMP runtimes and OpenBLAS do the same (their workers spin far
/// longer).
pub fn with_threads<R: Send>(n_jobs: usize, f: impl FnOnce() -> R + Send) -> R {
    let n_threads = resolve_threads(n_jobs);
    let pool = pool(n_threads);
    let call = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let out = pool.install(f);
    let spin = spin_time();
    // Only while every worker can have a core of its own: with more threads than cores, spinning
    // workers would take the cores the working ones need (measured: 16 threads on 2 cores, 24x slower).
    if n_threads > 1 && n_threads <= resolve_threads(0) && !spin.is_zero() {
        pool.spawn_broadcast(move |_| {
            let deadline = std::time::Instant::now() + spin;
            // Stop at the deadline, or as soon as another kernel call begins (it needs this thread).
            while CALLS.load(Ordering::Relaxed) == call && std::time::Instant::now() < deadline {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
        });
    }
    out
}

/// Kernel calls started so far: spinning workers watch it to give way to the next call.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// How long idle workers spin after a call: 2 ms, or `DEEPGM_SPIN_US` microseconds (0 turns it off).
pub fn spin_time() -> std::time::Duration {
    static SPIN: OnceLock<std::time::Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        let us = std::env::var("DEEPGM_SPIN_US").ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(2000);
        std::time::Duration::from_micros(us)
    })
}
