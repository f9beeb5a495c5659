//! lakecap for a datafusion-python `SessionContext`, through datafusion-ffi.
//!
//! - Scalar functions: the synchronous ones only (`phash`, `image_info`, …).
//!   FFI carries no async UDF, and the model functions are async; they run
//!   through `lakecap.Engine`. Each is wrapped so that it reads the
//!   `lakecap.*` options from the caller's FFI options extension.
//! - `caption_stats`, the aggregate.
//! - Table functions (`near_duplicates`, `knn`, …) read a table of the
//!   calling session by name, and an FFI session exposes no catalog. The
//!   Python layer hands each one a reader (`ctx.table(name)`), whose rows
//!   are read into a private session where the function runs; its result is
//!   returned as an in-memory table.
//! - Options: `__datafusion_extension_options__` for `SessionConfig.with_extension`
//!   (datafusion-python adds config extensions only to a new session).
//!
//! The datafusion-ffi major must equal the installed datafusion-python's;
//! the Python layer checks it against [`DATAFUSION_FFI_MAJOR`] first.

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_pyarrow::FromPyArrow;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::arrow::ffi_stream::ArrowArrayStreamReader;
use datafusion::catalog::{MemTable, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_ffi::config::extension_options::FFI_ExtensionOptions;
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::udaf::FFI_AggregateUDF;
use datafusion_ffi::udf::FFI_ScalarUDF;
use datafusion_ffi::udtf::FFI_TableFunction;
use lakecap_engine::{Diagnostics, LakecapOptions, scalar_functions};
use lakecap_udfs::{
    CaptionStatsFunc, KmeansFunc, KnnFunc, NearDuplicatesFunc, SemanticDuplicatesFunc,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::runtime;

/// The datafusion-ffi major version this module was built with.
const DATAFUSION_FFI_MAJOR: u64 = 55;

pub(crate) fn add_to(m: &Bound<'_, PyModule>) -> PyResult<()> {
    debug_assert_eq!(datafusion_ffi::version(), DATAFUSION_FFI_MAJOR);
    m.add("DATAFUSION_FFI_MAJOR", datafusion_ffi::version())?;
    m.add_class::<FfiFunction>()?;
    m.add_class::<FfiAggregate>()?;
    m.add_class::<FfiTableFunction>()?;
    m.add_class::<FfiOptions>()?;
    m.add_function(wrap_pyfunction!(ffi_functions, m)?)?;
    m.add_function(wrap_pyfunction!(ffi_table_functions, m)?)?;
    Ok(())
}

/// The diagnostics the FFI functions report into: one per process (rows
/// turned NULL are counted here; datafusion-python has no place for them).
fn diagnostics() -> Arc<Diagnostics> {
    static DIAG: std::sync::OnceLock<Arc<Diagnostics>> = std::sync::OnceLock::new();
    Arc::clone(DIAG.get_or_init(Default::default))
}

/// lakecap's synchronous scalar functions and its aggregate.
#[pyfunction]
fn ffi_functions() -> (Vec<FfiFunction>, Vec<FfiAggregate>) {
    let scalars = scalar_functions(&diagnostics(), &LakecapOptions::default())
        .into_iter()
        .filter(|f| !f.inner().is::<AsyncScalarUDF>())
        .map(|f| FfiFunction {
            udf: Arc::new(ScalarUDF::new_from_impl(WithFfiOptions(f))),
        })
        .collect();
    let aggregates = vec![FfiAggregate {
        udaf: Arc::new(AggregateUDF::from(CaptionStatsFunc::default())),
    }];
    (scalars, aggregates)
}

/// lakecap's table functions, each reading tables through `reader(name)`
/// (an object with `__arrow_c_stream__`).
#[pyfunction]
fn ffi_table_functions(reader: Py<PyAny>) -> Vec<FfiTableFunction> {
    let reader = Arc::new(reader);
    let f = |name: &str, inner: Arc<dyn TableFunctionImpl>, tables: &[usize]| FfiTableFunction {
        name: name.to_string(),
        func: Arc::new(ReadThrough {
            inner,
            tables: tables.to_vec(),
            reader: Arc::clone(&reader),
        }),
    };
    vec![
        f("near_duplicates", Arc::new(NearDuplicatesFunc), &[0]),
        f(
            "semantic_duplicates",
            Arc::new(SemanticDuplicatesFunc),
            &[0],
        ),
        f("kmeans", Arc::new(KmeansFunc), &[0]),
        f("knn", Arc::new(KnnFunc), &[0, 3]),
    ]
}

#[pyclass(module = "lakecap._lakecap", frozen, skip_from_py_object)]
#[derive(Clone)]
pub struct FfiFunction {
    udf: Arc<ScalarUDF>,
}

#[pymethods]
impl FfiFunction {
    #[getter]
    fn name(&self) -> &str {
        self.udf.name()
    }

    fn __datafusion_scalar_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        PyCapsule::new_with_value(
            py,
            FFI_ScalarUDF::from(Arc::clone(&self.udf)),
            c"datafusion_scalar_udf",
        )
    }
}

#[pyclass(module = "lakecap._lakecap", frozen, skip_from_py_object)]
#[derive(Clone)]
pub struct FfiAggregate {
    udaf: Arc<AggregateUDF>,
}

#[pymethods]
impl FfiAggregate {
    #[getter]
    fn name(&self) -> &str {
        self.udaf.name()
    }

    fn __datafusion_aggregate_udf__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        PyCapsule::new_with_value(
            py,
            FFI_AggregateUDF::from(Arc::clone(&self.udaf)),
            c"datafusion_aggregate_udf",
        )
    }
}

/// No `__call__`: datafusion-python's `udtf()` takes a callable for a
/// Python table function.
#[pyclass(module = "lakecap._lakecap", frozen)]
pub struct FfiTableFunction {
    name: String,
    func: Arc<ReadThrough>,
}

#[pymethods]
impl FfiTableFunction {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __datafusion_table_function__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let func: Arc<dyn TableFunctionImpl> = self.func.clone();
        let ffi = FFI_TableFunction::new_with_ffi_codec(
            func,
            Some(runtime().handle().clone()),
            host_codec(&session)?,
        );
        PyCapsule::new_with_value(py, ffi, c"datafusion_table_function")
    }
}

/// The host's logical codec: from a `SessionContext`'s
/// `__datafusion_logical_extension_codec__`, or the capsule itself.
fn host_codec(session: &Bound<'_, PyAny>) -> PyResult<FFI_LogicalExtensionCodec> {
    let capsule = if session.hasattr("__datafusion_logical_extension_codec__")? {
        session
            .getattr("__datafusion_logical_extension_codec__")?
            .call0()?
    } else {
        session.clone()
    };
    let capsule = capsule.cast::<PyCapsule>()?;
    let pointer: NonNull<FFI_LogicalExtensionCodec> = capsule
        .pointer_checked(Some(c"datafusion_logical_extension_codec"))?
        .cast();
    // SAFETY: the capsule holds a live codec of this name, owned by the host.
    Ok(unsafe { pointer.as_ref() }.clone())
}

/// The `lakecap.*` options as an FFI options extension, defaults filled in.
#[pyclass(module = "lakecap._lakecap", frozen)]
pub struct FfiOptions;

#[pymethods]
impl FfiOptions {
    #[new]
    fn new() -> Self {
        FfiOptions
    }

    fn __datafusion_extension_options__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // LakecapOptions lists its keys whole (`lakecap.on_error`), which
        // is what the FFI store keeps.
        let defaults: HashMap<String, String> =
            datafusion::common::config::ExtensionOptions::entries(&LakecapOptions::default())
                .into_iter()
                .filter_map(|e| Some((e.key, e.value?)))
                .collect();
        let ffi = FFI_ExtensionOptions::from(defaults);
        if ffi.to_extension::<LakecapOptions>().is_err() {
            return Err(PyRuntimeError::new_err("lakecap options do not round-trip"));
        }
        PyCapsule::new_with_value(py, ffi, c"datafusion_extension_options")
    }
}

/// `config` with the `lakecap.*` options taken out of the FFI options
/// extension (checked here: the FFI store accepts any value at `SET`).
fn with_lakecap_options(config: &ConfigOptions) -> Result<Option<ConfigOptions>> {
    if config.extensions.get::<LakecapOptions>().is_some() {
        return Ok(None);
    }
    let Some(ffi) = config.extensions.get::<FFI_ExtensionOptions>() else {
        return Ok(None);
    };
    let options = ffi
        .to_extension::<LakecapOptions>()
        .map_err(|e| DataFusionError::Configuration(format!("lakecap options: {e}")))?;
    let mut config = config.clone();
    config.extensions.insert(options);
    Ok(Some(config))
}

/// A scalar function that reads `lakecap.*` from the caller's FFI options.
#[derive(Debug, PartialEq, Eq, Hash)]
struct WithFfiOptions(ScalarUDF);

impl ScalarUDFImpl for WithFfiOptions {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn aliases(&self) -> &[String] {
        self.0.aliases()
    }
    fn signature(&self) -> &Signature {
        self.0.signature()
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.0.return_type(args)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.0.return_field_from_args(args)
    }
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        self.0.coerce_types(args)
    }
    fn short_circuits(&self) -> bool {
        self.0.short_circuits()
    }
    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(config) = with_lakecap_options(&args.config_options)? {
            args.config_options = Arc::new(config);
        }
        self.0.invoke_with_args(args)
    }
}

/// A lakecap table function for an FFI caller: the tables it names (string
/// arguments at `tables`) are read through `reader` into a private session,
/// the function runs there, and its rows come back as a [`MemTable`].
#[derive(Debug)]
struct ReadThrough {
    inner: Arc<dyn TableFunctionImpl>,
    tables: Vec<usize>,
    reader: Arc<Py<PyAny>>,
}

impl TableFunctionImpl for ReadThrough {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let config = args.session().config().options();
        let config = with_lakecap_options(config)?.unwrap_or_else(|| config.as_ref().clone());
        let ctx = SessionContext::new_with_config(SessionConfig::from(config));
        for &i in &self.tables {
            let Some(Expr::Literal(v, _)) = exprs.get(i) else {
                continue; // the function's own argument check names the problem
            };
            let Some(Some(name)) = v.try_as_str() else {
                continue;
            };
            // A self-join (`knn('t', …, 't', …)`) reads its table once.
            if !ctx.table_exist(name)? {
                let rows = self.read_table(name)?;
                ctx.register_table(name, Arc::new(rows))?;
            }
        }
        let exprs = exprs.to_vec();
        let inner = Arc::clone(&self.inner);
        // Off the caller's thread: it runs datafusion-python's runtime, and
        // the reader below calls back into it.
        std::thread::scope(|s| {
            s.spawn(|| {
                runtime().block_on(async {
                    let state = ctx.state();
                    let provider = inner.call_with_args(TableFunctionArgs::new(&exprs, &state))?;
                    let df = ctx.read_table(provider)?;
                    let schema = Arc::clone(df.schema().inner());
                    let batches = df.collect().await?;
                    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?)
                        as Arc<dyn TableProvider>)
                })
            })
            .join()
            .unwrap_or_else(|_| plan_err!("lakecap table function panicked"))
        })
    }
}

impl ReadThrough {
    /// Table `name`'s rows, read through the Python reader on a thread of
    /// its own (the caller's thread is inside datafusion-python's runtime).
    fn read_table(&self, name: &str) -> Result<MemTable> {
        let reader = Arc::clone(&self.reader);
        let table = name.to_string();
        let name = table.clone();
        std::thread::spawn(move || {
            Python::attach(|py| {
                let stream = reader.bind(py).call1((name.as_str(),))?;
                ArrowArrayStreamReader::from_pyarrow_bound(&stream)
            })
            .map_err(|e| {
                DataFusionError::Plan(format!("cannot read table '{name}' from the session: {e}"))
            })
            .and_then(|reader| {
                let schema = datafusion::arrow::record_batch::RecordBatchReader::schema(&reader);
                let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
                MemTable::try_new(schema, vec![batches])
            })
        })
        .join()
        .unwrap_or_else(|_| plan_err!("reading table '{table}' panicked"))
    }
}
