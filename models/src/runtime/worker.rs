//! The model thread: started by name, it builds its state with an `init`
//! that runs on the thread itself (so device contexts live on the thread that
//! uses them), then serves; model panics become errors. The [`Scheduler`]
//! and the generation loop (`crate::generate`) both run on one. The thread is
//! worker 0 of a rayon pool of its own ([`join_pool`]).
//!
//! [`Scheduler`]: super::Scheduler

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use crate::error::{ModelError, Result};

/// Starts thread `lakecap-{name}`, which builds its state with `init` (so
/// device contexts live on the thread that uses them) and then runs
/// `work(state)`; returns once `init` is done, with its error if it failed.
pub(crate) fn spawn_worker<S>(
    name: &str,
    init: impl FnOnce() -> Result<S> + Send + 'static,
    work: impl FnOnce(S) + Send + 'static,
) -> Result<()> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    std::thread::Builder::new()
        .name(format!("lakecap-{name}"))
        .spawn(move || {
            let _pool = join_pool();
            match init() {
                Ok(state) => {
                    let _ = ready_tx.send(Ok(()));
                    work(state)
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| ModelError::Worker(format!("cannot start a thread: {e}")))?;
    ready_rx
        .recv()
        .map_err(|_| ModelError::Worker(format!("the {name} worker died while loading")))?
}

/// Makes the calling thread worker 0 of a new rayon pool as large as the
/// global one, so that the kernels' parallel passes start on this thread and
/// the pool's other workers steal halves of them. Called outside a pool, each
/// pass would be handed to the global pool while this thread sleeps until it
/// is done: at batch-1 decoding that is hundreds of sleeps and wake-ups a
/// token (bench/RESULTS.md, "the model thread in its own pool"). The pool
/// lives as long as the returned value (its bookkeeping stays allocated
/// after, as rayon documents for this mode: one pool per model thread, not
/// per call); `None` (threads could not start, or the thread is already in a
/// pool) leaves the global pool in charge.
pub fn join_pool() -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .use_current_thread()
        .build()
        .ok()
}

/// Runs `f` on a model thread ([`join_pool`]) with the pool's other workers
/// polling for work until it returns, instead of falling asleep between its
/// parallel passes and being woken for each (on a VM each wake-up is an
/// interrupt to a halted core). A decoding step at batch 1 runs a few
/// hundred passes of tens of microseconds; llama.cpp's threads spin between
/// its ops likewise. Elsewhere (outside a pool, or on a pool's other
/// threads) it just runs `f`.
pub fn busy<T>(f: impl FnOnce() -> T) -> T {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if rayon::current_thread_index() != Some(0) || helpers == 0 {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::in_place_scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| {
                // Thread 0 runs `f`; a poller it picked up itself while
                // waiting would never let it return.
                if rayon::current_thread_index() == Some(0) {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    // Nothing to take: let the OS run another thread on this
                    // core if one is waiting (another model's pool), without
                    // sleeping.
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::thread::yield_now();
                    }
                }
            });
        }
        // Set however `f` ends: a panic unwinding through the scope must not
        // leave it waiting for the pollers forever.
        let _stop = Stop(&done);
        f()
    })
}

/// Sets its flag when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `f`, turning a panic into an error (model code must never take the
/// process down).
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(ModelError::Worker(format!("model panicked: {msg}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn model_threads_are_worker_zero_of_their_own_pool() {
        let threads = rayon::current_num_threads();
        let (tx, rx) = mpsc::channel();
        spawn_worker(
            "pool-test",
            || Ok(()),
            move |()| {
                // Parallel work from the model thread runs in its pool (with
                // the other workers polling, nested too), and a panic inside
                // it still reaches the thread as a panic.
                let sum: u64 = busy(|| {
                    let inner: u64 = busy(|| (0..5_000u64).into_par_iter().sum());
                    inner + (5_000..10_000u64).into_par_iter().sum::<u64>()
                });
                let caught = catch(|| {
                    busy(|| {
                        (0..64)
                            .into_par_iter()
                            .for_each(|i| assert!(i < 63, "row {i}"))
                    });
                    Ok(())
                });
                let _ = tx.send((
                    rayon::current_thread_index(),
                    rayon::current_num_threads(),
                    sum,
                    caught.unwrap_err().to_string(),
                ));
            },
        )
        .unwrap();
        let (index, n, sum, err) = rx.recv().unwrap();
        assert_eq!((index, n, sum), (Some(0), threads, 49_995_000));
        assert!(err.contains("row 63"), "{err}");
        // Outside a pool `busy` just runs its function.
        assert_eq!(busy(|| 7), 7);
        // A second pool cannot take a thread that is already in one.
        let _pool = join_pool().unwrap();
        assert!(join_pool().is_none());
    }
}
