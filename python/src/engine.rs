//! `Engine`: a lakecap session for Python. `sql` plans every statement at
//! once (so bad SQL fails at the call), runs all but the last, and returns
//! the last as a [`Query`]: lazy for a query, already run for a statement
//! with effects (`COPY`, `INSERT`, `CREATE`, `SET`), which users expect to
//! happen at the call. `run` runs a script file as `lakecap run` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow_pyarrow::PyArrowType;
use datafusion::arrow::ffi_stream::ArrowArrayStreamReader;
use datafusion::arrow::record_batch::RecordBatchReader;
use datafusion::catalog::MemTable;
use datafusion::common::config::ExtensionOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement;
use lakecap_engine::{EngineOptions, ProgressMode, Vars, script};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::query::{Query, run_plan};
use crate::{error, runtime};

#[pyclass(module = "lakecap._lakecap", frozen)]
pub struct Engine {
    pub(crate) inner: Arc<lakecap_engine::Engine>,
}

#[pymethods]
impl Engine {
    /// A session with every lakecap function and option: defaults, then
    /// `config_file` (else `./lakecap.toml` when present), then the
    /// `LAKECAP_*` environment unless `ignore_env`. `cluster` runs queries on
    /// a Ballista scheduler (`df://HOST:PORT`).
    #[new]
    #[pyo3(signature = (config_file=None, cluster=None, ignore_env=false))]
    fn new(
        py: Python<'_>,
        config_file: Option<PathBuf>,
        cluster: Option<String>,
        ignore_env: bool,
    ) -> PyResult<Self> {
        let opts = EngineOptions {
            config_file,
            ignore_env,
            // Progress is the Python layer's (tqdm); `CREATE TABLE … AS`
            // materialises without a bar of its own.
            progress: ProgressMode::Off,
            cluster,
        };
        let inner = py.detach(|| {
            let _rt = runtime().enter();
            lakecap_engine::Engine::with_options(opts)
        });
        Ok(Self {
            inner: Arc::new(inner.map_err(error)?),
        })
    }

    /// Plans every statement of `sql` (as written: no `${VAR}`), runs all
    /// but the last, and returns the last.
    #[pyo3(signature = (sql, on_progress=None))]
    fn sql(
        &self,
        py: Python<'_>,
        sql: &str,
        on_progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Query> {
        let statements = script::parse_as_written(sql).map_err(error)?;
        self.statements(py, statements, true, on_progress.as_ref())
    }

    /// Runs the SQL script at `path` with `${NAME}` taken from `vars`, else
    /// the environment, and returns the last statement's rows.
    #[pyo3(signature = (path, vars, on_progress=None))]
    fn run(
        &self,
        py: Python<'_>,
        path: PathBuf,
        vars: Vars,
        on_progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Query> {
        let sql = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read SQL script {}", path.display()))
            .map_err(error)?;
        let statements = script::parse(&sql, &vars)
            .with_context(|| format!("in {}", path.display()))
            .map_err(error)?;
        self.statements(py, statements, false, on_progress.as_ref())
            .map_err(|e| rewrap(py, e, &format!("in {}", path.display())))
    }

    /// Registers the rows of an Arrow stream (any object with
    /// `__arrow_c_stream__`: pyarrow, polars, pandas, DuckDB, a lakecap
    /// result) as table `name`, replacing one of that name.
    fn register_arrow(
        &self,
        py: Python<'_>,
        name: &str,
        data: PyArrowType<ArrowArrayStreamReader>,
    ) -> PyResult<()> {
        let name = table_name(name)?;
        let reader = data.0;
        let schema = reader.schema();
        let batches = py
            .detach(|| reader.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read the rows given for table {name}"))
            .map_err(error)?;
        let table = MemTable::try_new(schema, vec![batches]).map_err(error)?;
        let ctx = self.inner.ctx();
        ctx.deregister_table(&name).map_err(error)?;
        ctx.register_table(&name, Arc::new(table)).map_err(error)?;
        Ok(())
    }

    /// Registers the file, folder, glob or URL `path` as table `name`
    /// (`format`: parquet, csv, json or arrow; by default from the name),
    /// replacing one of that name.
    #[pyo3(signature = (name, path, format=None))]
    fn register_path(
        &self,
        py: Python<'_>,
        name: &str,
        path: &str,
        format: Option<&str>,
    ) -> PyResult<()> {
        let name = table_name(name)?;
        let format = match format {
            Some(f) => f.to_ascii_lowercase(),
            None => format_of(path)?,
        };
        let stored = match format.as_str() {
            "parquet" => "PARQUET",
            "csv" => "CSV",
            "json" | "ndjson" | "jsonl" => "JSON",
            "arrow" | "ipc" | "feather" => "ARROW",
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown format '{other}' for table {name}: use parquet, csv, json or arrow"
                )));
            }
        };
        let header = if stored == "CSV" {
            " OPTIONS ('format.has_header' 'true')"
        } else {
            ""
        };
        let sql = format!(
            "CREATE OR REPLACE EXTERNAL TABLE \"{name}\" STORED AS {stored} LOCATION '{}'{header}",
            path.replace('\'', "''")
        );
        let statements = script::parse_as_written(&sql).map_err(error)?;
        self.statements(py, statements, false, None)
            .map_err(|e| rewrap(py, e, &format!("cannot register {path} as table {name}")))?;
        Ok(())
    }

    /// Sets option `key` (`lakecap.on_error`, `datafusion.execution.batch_size`)
    /// for this session, checked as `SET` checks it.
    fn set(&self, py: Python<'_>, key: &str, value: &str) -> PyResult<()> {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(PyValueError::new_err(format!(
                "'{key}' is not an option name (letters, digits, '_' and '.')"
            )));
        }
        let sql = format!("SET {key} = '{}'", value.replace('\'', "''"));
        let statements = script::parse_as_written(&sql).map_err(error)?;
        self.statements(py, statements, false, None)?;
        Ok(())
    }

    /// The session's `lakecap.*` options and their values.
    fn options(&self) -> Vec<(String, String)> {
        // LakecapOptions lists its keys whole (`lakecap.on_error`).
        ExtensionOptions::entries(&self.inner.options())
            .into_iter()
            .map(|e| (e.key, e.value.unwrap_or_default()))
            .collect()
    }
}

impl Engine {
    /// Plans and runs `statements` in order; the last one stays lazy when
    /// `lazy_last` and it is a query.
    fn statements(
        &self,
        py: Python<'_>,
        statements: Vec<Statement>,
        lazy_last: bool,
        on_progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Query> {
        let n = statements.len();
        let mut last = None;
        let mut ran = Vec::new();
        for (i, statement) in statements.into_iter().enumerate() {
            let text = statement.to_string();
            let failed = |e: anyhow::Error| {
                error(e.context(format!(
                    "statement {} failed: {}",
                    i + 1,
                    script::snippet(&text)
                )))
            };
            let ctx = self.inner.ctx().clone();
            let plan = py
                .detach(|| runtime().block_on(ctx.state().statement_to_plan(statement)))
                .map_err(|e| failed(e.into()))?;
            if i + 1 == n && lazy_last && is_query(&plan) {
                let label = format!("statement {} failed: {}", i + 1, script::snippet(&text));
                last = Some(Query::lazy(Arc::clone(&self.inner), plan, label, ran));
                break;
            }
            let mut done = run_plan(py, &self.inner, plan, on_progress).map_err(|e| match e {
                crate::query::RunError::Engine(e) => failed(e),
                crate::query::RunError::Python(e) => e,
            })?;
            ran.extend(done.take_warnings());
            if i + 1 == n {
                last = Some(Query::done(
                    Arc::clone(&self.inner),
                    done,
                    std::mem::take(&mut ran),
                ));
            }
        }
        Ok(last.expect("parse returns at least one statement"))
    }
}

/// Whether running `plan` has no effect beyond its rows (`EXPLAIN ANALYZE`
/// runs the statement it explains).
fn is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Analyze(_)
    )
}

/// A [`LakecapError`](crate::LakecapError) with `what` in front; other
/// exceptions (Ctrl-C, a progress callback's) pass unchanged.
fn rewrap(py: Python<'_>, e: PyErr, what: &str) -> PyErr {
    match e.is_instance_of::<crate::LakecapError>(py) {
        true => error(anyhow::anyhow!("{what}: {}", e.value(py))),
        false => e,
    }
}

/// The format a path's name says: its extension; for a local folder,
/// parquet if it holds any, else the extension of its first data file; for
/// a URL or glob without one, parquet (lakes are).
fn format_of(path: &str) -> PyResult<String> {
    let ext = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
    };
    let known = |e: &str| {
        matches!(
            e,
            "parquet" | "csv" | "json" | "ndjson" | "jsonl" | "arrow" | "ipc" | "feather"
        )
    };
    let p = Path::new(path);
    if let Some(e) = ext(p).filter(|e| known(e)) {
        return Ok(e);
    }
    if path.contains("://") || path.contains('*') {
        return Ok("parquet".into());
    }
    if !p.is_dir() {
        return Err(error(anyhow::anyhow!("no such file or folder: {path}")));
    }
    let mut found = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| error(anyhow::anyhow!("cannot read {}: {e}", dir.display())))?;
        for entry in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if entry.is_dir() {
                stack.push(entry);
            } else if let Some(e) = ext(&entry).filter(|e| known(e)) {
                if e == "parquet" {
                    return Ok(e);
                }
                found.push((entry, e));
            }
        }
    }
    found.sort();
    found.into_iter().next().map(|(_, e)| e).ok_or_else(|| {
        PyValueError::new_err(format!(
            "cannot tell the format of {path}: pass format='parquet', 'csv', 'json' or 'arrow'"
        ))
    })
}

/// A table name as SQL spells it unquoted (letters, digits and '_', not
/// starting with a digit), in the lower case SQL folds it to.
fn table_name(name: &str) -> PyResult<String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    match ok {
        true => Ok(name.to_ascii_lowercase()),
        false => Err(PyValueError::new_err(format!(
            "'{name}' is not a table name: use letters, digits and '_', not starting with a digit"
        ))),
    }
}
