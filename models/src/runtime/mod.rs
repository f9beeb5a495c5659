//! The model runtime: where a model runs and how it is served.
//!
//! - [`Device`] and [`Precision`]: the CPU or a CUDA device, and what a GPU
//!   keeps weights in, parsed from `lakecap.device` / `lakecap.precision`.
//! - `backend`: the only place a kernels backend is chosen and constructed —
//!   one owned by each model worker (`on_device!`), or one shared per device
//!   for work on the caller's thread (`with_shared_backend!`).
//! - `registry`: process-wide models, loaded once per (directory, device).
//! - [`Scheduler`]: one worker per model that batches rows across concurrent
//!   callers behind a bounded queue.
//! - `worker`: the model thread itself (built where its device context lives,
//!   panics turned into errors, worker 0 of a rayon pool of its own:
//!   [`join_pool`], whose other workers poll while a step runs: [`busy`]),
//!   shared by the scheduler and the generator.
//!
//! The runtime imports the kernels, the error type and [`crate::hub`] (to
//! resolve a model id to its directory); it knows no architecture.

mod backend;
mod device;
mod registry;
mod scheduler;
mod worker;

pub(crate) use backend::{on_device, shared_cuda, with_shared_backend};
pub use device::Device;
pub use lakecap_kernels::cuda::Precision;
pub(crate) use registry::{Registry, cached};
pub use scheduler::{Scheduler, SchedulerStats};
pub use worker::{busy, join_pool};
pub(crate) use worker::{catch, spawn_worker};
