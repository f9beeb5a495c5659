//! `lakecap._lakecap`: the native half of the `lakecap` Python package.
//!
//! - [`engine::Engine`]: a lakecap session ([`lakecap_engine::Engine`]) with
//!   `sql`, `run` and table registration.
//! - [`query::Query`]: one statement's rows, planned and run on demand
//!   (`collect` with a progress callback and Ctrl-C, or the Arrow PyCapsule
//!   stream `__arrow_c_stream__`), or already run.
//! - [`ffi`]: lakecap's synchronous functions, table functions and options
//!   as `datafusion-ffi` capsules for a datafusion-python `SessionContext`.
//!
//! The Python layer (`python/lakecap/`) adds the pyarrow, pandas and polars
//! conversions, the tqdm progress bar and the default engine. Queries run on
//! one process-wide tokio runtime; every wait releases the GIL.

mod engine;
mod ffi;
mod query;

use std::sync::Mutex;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _lakecap,
    LakecapError,
    PyException,
    "A lakecap statement failed: bad SQL, a bad path, or a row that a \
     function could not process under `lakecap.on_error = 'fail'` (the \
     message names the statement, function, column and row)."
);

/// The runtime every query of this process runs on; a process forked from
/// one that had it (multiprocessing, data loader workers) gets its own, as
/// the parent's worker threads do not exist in the child.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut rt = RT.lock().unwrap_or_else(|e| e.into_inner());
    match *rt {
        Some((owner, r)) if owner == pid => r,
        _ => {
            let r: &'static _ = Box::leak(Box::new(
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("lakecap")
                    .build()
                    .expect("a tokio runtime"),
            ));
            *rt = Some((pid, r));
            r
        }
    }
}

/// An engine or DataFusion error as a [`LakecapError`], with its causes.
pub(crate) fn error(e: impl Into<anyhow::Error>) -> PyErr {
    LakecapError::new_err(format!("{:#}", e.into()))
}

/// Writes the sample lake (real photos, generated images, known defects)
/// to `dir`, as `lakecap sample-lake` does; returns `(rows, files, defects)`.
#[pyfunction]
#[pyo3(signature = (dir, rows=240, seed=42))]
fn sample_lake(
    py: Python<'_>,
    dir: std::path::PathBuf,
    rows: usize,
    seed: u64,
) -> PyResult<(
    usize,
    Vec<std::path::PathBuf>,
    std::collections::BTreeMap<String, usize>,
)> {
    use lakecap_engine::sample_lake::{SampleLakeOptions, write_sample_lake};
    let opts = SampleLakeOptions {
        rows,
        seed,
        ..Default::default()
    };
    let report = py
        .detach(|| write_sample_lake(&dir, &opts))
        .map_err(error)?;
    Ok((report.rows, report.files, report.defects))
}

/// Tunes glibc's allocator for model work (15-25% of CPU model time):
/// process-wide, so the package leaves it to the caller.
#[pyfunction]
fn tune_allocator() {
    lakecap_engine::tune_allocator();
}

#[pymodule]
fn _lakecap(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LakecapError", m.py().get_type::<LakecapError>())?;
    m.add_class::<engine::Engine>()?;
    m.add_class::<query::Query>()?;
    m.add_function(wrap_pyfunction!(sample_lake, m)?)?;
    m.add_function(wrap_pyfunction!(tune_allocator, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    ffi::add_to(m)?;
    Ok(())
}
