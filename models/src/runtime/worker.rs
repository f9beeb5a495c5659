//! The model thread: started by name, it builds its state with an `init`
//! that runs on the thread itself (so device contexts live on the thread that
//! uses them), then serves; model panics become errors. The [`Scheduler`]
//! and the generation loop (`crate::generate`) both run on one.
//!
//! [`Scheduler`]: super::Scheduler

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
        .spawn(move || match init() {
            Ok(state) => {
                let _ = ready_tx.send(Ok(()));
                work(state)
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| ModelError::Worker(format!("cannot start a thread: {e}")))?;
    ready_rx
        .recv()
        .map_err(|_| ModelError::Worker(format!("the {name} worker died while loading")))?
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
