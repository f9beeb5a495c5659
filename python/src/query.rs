//! `Query`: one statement's rows for Python.
//!
//! A lazy query keeps its logical plan and runs anew on each read, as a
//! DataFrame does. `collect` runs it on the runtime while the calling
//! thread, GIL released, waits in short slices: between slices it reports
//! rows scanned (the plan's file scans, as the CLI's bar counts them) to a
//! progress callback and checks for Ctrl-C, which cancels the query (the
//! task is aborted, and DataFusion's streams end with it).
//! `__arrow_c_stream__` hands the rows out as an Arrow C stream, pulled
//! batch by batch, so DuckDB and polars read them without a copy.

use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use arrow_pyarrow::{IntoPyArrow, ToPyArrow};
use datafusion::arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ffi_stream::FFI_ArrowArrayStream;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use futures::StreamExt;
use lakecap_engine::progress::{scanned_rows, total_rows};
use lakecap_engine::{ProgressMode, WarningCount, script};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::{error, runtime};

/// How often a waiting `collect` reports progress and checks for Ctrl-C.
const TICK: Duration = Duration::from_millis(100);

/// Rows a statement produced, and the rows functions turned into NULL.
pub(crate) struct Done {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    warnings: Vec<WarningCount>,
}

enum State {
    Lazy(LogicalPlan),
    Done(Done),
}

#[pyclass(module = "lakecap._lakecap", frozen)]
pub struct Query {
    engine: Arc<lakecap_engine::Engine>,
    state: State,
    /// What an error of a later read says first (`statement 2 failed: …`).
    label: String,
    /// Warnings of the statements that ran at the call (this one, when done).
    ran: Vec<WarningCount>,
}

impl Query {
    pub(crate) fn lazy(
        engine: Arc<lakecap_engine::Engine>,
        plan: LogicalPlan,
        label: String,
        ran: Vec<WarningCount>,
    ) -> Self {
        Self {
            engine,
            state: State::Lazy(plan),
            label,
            ran,
        }
    }

    pub(crate) fn done(
        engine: Arc<lakecap_engine::Engine>,
        done: Done,
        ran: Vec<WarningCount>,
    ) -> Self {
        Self {
            engine,
            state: State::Done(done),
            label: String::new(),
            ran,
        }
    }
}

impl Done {
    /// Takes the warnings out, for the caller to report once.
    pub(crate) fn take_warnings(&mut self) -> Vec<WarningCount> {
        std::mem::take(&mut self.warnings)
    }
}

#[pymethods]
impl Query {
    /// Runs the query (a lazy one anew) and returns `(pyarrow.Table,
    /// warnings of this run)`, calling `on_progress(rows_scanned,
    /// total_or_None, seconds)` while it runs. A done statement's rows come
    /// back as they are, with no warnings (they are [`Query::ran_warnings`]).
    #[pyo3(signature = (on_progress=None))]
    fn collect<'py>(
        &self,
        py: Python<'py>,
        on_progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<Warning>)> {
        let ran;
        let done = match &self.state {
            State::Done(d) => d,
            State::Lazy(plan) => {
                ran = run_plan(py, &self.engine, plan.clone(), on_progress.as_ref())
                    .map_err(|e| self.failed(e))?;
                &ran
            }
        };
        // The batches' own schema: DataFusion's may differ from the plan's in
        // metadata or nullability, which pyarrow's Table would refuse.
        let schema = done
            .batches
            .first()
            .map_or_else(|| Arc::clone(&done.schema), |b| b.schema());
        let table = arrow_pyarrow::Table::try_new(done.batches.clone(), schema).map_err(error)?;
        let warnings = done.warnings.iter().map(warning).collect();
        Ok((table.into_pyarrow(py)?, warnings))
    }

    /// Warnings of the statements that ran at the call (`(function,
    /// column, kind, count, first message)`).
    #[getter]
    fn ran_warnings(&self) -> Vec<Warning> {
        self.ran.iter().map(warning).collect()
    }

    /// The result's columns as a `pyarrow.Schema`, without running it.
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let schema = match &self.state {
            State::Lazy(plan) => plan.schema().as_arrow().clone(),
            State::Done(d) => d.schema.as_ref().clone(),
        };
        schema.to_pyarrow(py)
    }

    /// Whether the statement has run already (it had effects: `COPY`, DDL,
    /// `SET`) rather than running on each read.
    #[getter]
    fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The Arrow PyCapsule stream interface: rows pulled batch by batch
    /// (a lazy query starts running here). `requested_schema` is not
    /// applied; the rows come in their own schema, which the protocol allows.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader: Box<dyn RecordBatchReader + Send> = match &self.state {
            State::Done(d) => Box::new(RecordBatchIterator::new(
                d.batches.clone().into_iter().map(Ok),
                Arc::clone(&d.schema),
            )),
            State::Lazy(plan) => {
                let ctx = self.engine.ctx().clone();
                let plan = plan.clone();
                let stream = py
                    .detach(|| {
                        runtime().block_on(async {
                            let (physical, task) =
                                script::physical_plan_of(&ctx, plan, ProgressMode::Off).await?;
                            execute_stream(physical, task)
                        })
                    })
                    .map_err(|e| self.failed(RunError::Engine(e.into())))?;
                Box::new(ChannelReader::new(stream))
            }
        };
        PyCapsule::new_with_value(py, FFI_ArrowArrayStream::new(reader), c"arrow_array_stream")
    }
}

/// A DataFusion stream read synchronously by the Arrow C stream's consumer:
/// a task on lakecap's runtime pulls the batches into a small channel, so
/// the consumer may call from any thread, one inside another tokio runtime
/// too (it waits with `futures`' executor, which no runtime forbids);
/// dropping the reader ends the task (and the query).
struct ChannelReader {
    schema: SchemaRef,
    batches: tokio::sync::mpsc::Receiver<Result<RecordBatch, ArrowError>>,
    task: tokio::task::JoinHandle<()>,
}

impl ChannelReader {
    fn new(mut stream: SendableRecordBatchStream) -> Self {
        let schema = stream.schema();
        let (tx, batches) = tokio::sync::mpsc::channel(2);
        let task = runtime().spawn(async move {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| ArrowError::ExternalError(Box::new(e)));
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
        });
        Self {
            schema,
            batches,
            task,
        }
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Iterator for ChannelReader {
    type Item = Result<RecordBatch, ArrowError>;
    fn next(&mut self) -> Option<Self::Item> {
        futures::executor::block_on(self.batches.recv())
    }
}

impl RecordBatchReader for ChannelReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// One counted warning: `(function, column, kind, count, first message)`.
type Warning = (String, String, String, u64, String);

fn warning(w: &WarningCount) -> Warning {
    (
        w.function.clone(),
        w.column.clone(),
        w.kind.clone(),
        w.count,
        w.example.clone(),
    )
}

/// Why [`run_plan`] ended without rows.
pub(crate) enum RunError {
    /// The statement failed.
    Engine(anyhow::Error),
    /// Ctrl-C, or the progress callback raised.
    Python(PyErr),
}

impl Query {
    /// A failed read as an exception naming the statement.
    fn failed(&self, e: RunError) -> PyErr {
        match e {
            RunError::Engine(e) => error(e.context(self.label.clone())),
            RunError::Python(e) => e,
        }
    }
}

/// Runs `plan` to completion on the runtime, GIL released, calling
/// `on_progress` every [`TICK`]; Ctrl-C (or an exception from the
/// callback) cancels it.
pub(crate) fn run_plan(
    py: Python<'_>,
    engine: &Arc<lakecap_engine::Engine>,
    plan: LogicalPlan,
    on_progress: Option<&Bound<'_, PyAny>>,
) -> Result<Done, RunError> {
    let ctx = engine.ctx().clone();
    let diagnostics = Arc::clone(engine.diagnostics());
    let (plans, planned) = channel::<(Arc<dyn ExecutionPlan>, Option<usize>)>();
    let (results, finished) = channel();
    // Waited on with the GIL released: a Receiver is Send, not Sync.
    let finished = std::sync::Mutex::new(finished);
    diagnostics.take();
    let task = runtime().spawn(async move {
        let run = async {
            let (physical, task) = script::physical_plan_of(&ctx, plan, ProgressMode::Off).await?;
            let _ = plans.send((Arc::clone(&physical), total_rows(&physical)));
            let schema = physical.schema();
            Ok::<_, datafusion::error::DataFusionError>((schema, collect(physical, task).await?))
        };
        let _ = results.send(run.await);
    });
    let start = Instant::now();
    let mut watched = None;
    let outcome = loop {
        let waited = py.detach(|| {
            let rx = finished.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv_timeout(TICK)
        });
        match waited {
            Ok(outcome) => break outcome,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let why = runtime()
                    .block_on(task)
                    .err()
                    .map_or("no result".to_string(), |e| e.to_string());
                return Err(RunError::Engine(anyhow::anyhow!(
                    "the query stopped: {why}"
                )));
            }
        }
        let checked = py.check_signals().and_then(|()| {
            if let Ok(p) = planned.try_recv() {
                watched = Some(p);
            }
            let Some(cb) = on_progress else { return Ok(()) };
            let (rows, total) = match &watched {
                Some((plan, total)) => (scanned_rows(plan), *total),
                None => (0, None),
            };
            cb.call1((rows, total, start.elapsed().as_secs_f64()))
                .map(drop)
        });
        if let Err(e) = checked {
            task.abort();
            diagnostics.take();
            return Err(RunError::Python(e));
        }
    };
    let warnings = diagnostics.take();
    if let Ok(p) = planned.try_recv() {
        watched = Some(p);
    }
    let (schema, batches) = outcome.map_err(|e| RunError::Engine(e.into()))?;
    if let (Some(cb), Some((plan, total))) = (on_progress, &watched) {
        cb.call1((scanned_rows(plan), *total, start.elapsed().as_secs_f64()))
            .map_err(RunError::Python)?;
    }
    Ok(Done {
        schema,
        batches,
        warnings,
    })
}
