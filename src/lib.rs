//! lakecap: curate image-caption lakes with SQL.
//!
//! This facade re-exports the engine: build an [`Engine`] for a ready session
//! with every lakecap function, option and object store, or call [`register`]
//! on a `SessionContext` of your own. The `lakecap` binary (CLI) is built on
//! the same API; [`output`] holds its result formatting. Programs that run
//! models on the CPU should call [`tune_allocator`] once at start, as the
//! binary does (it keeps glibc from unmapping and re-faulting activation
//! buffers on every op).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let engine = lakecap::Engine::new()?;
//! let rows = engine.sql("SELECT hamming(15, 0) AS d").await?;
//! # Ok(()) }
//! ```

pub mod output;

pub use lakecap_engine::*;
