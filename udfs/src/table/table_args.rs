//! What the table functions share: literal arguments, resolving the source
//! table, reading its (key, value) columns, and the result table
//! ([`Computed`]), computed in full when scanned.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableProvider};
use datafusion::common::{
    Result, ScalarValue, TableReference, exec_err, plan_datafusion_err, plan_err,
};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableType, col};
use datafusion::physical_plan::{ExecutionPlan, collect};
use futures::FutureExt;

use lakecap_models::Result as ModelResult;
use lakecap_models::runtime::Device;

use crate::common::arrow::vector_rows;
use crate::common::model_args::{blocking, model_err};
use crate::common::options::LakecapOptions;

pub(crate) fn string_arg(usage: &str, e: &Expr, what: &str) -> Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => plan_err!("{usage}: {what} must be a string literal, got {other}"),
    }
}

/// A numeric literal as f64, if it is one.
pub(crate) fn number_arg(e: &Expr) -> Option<f64> {
    match e {
        Expr::Literal(v, _) => match v
            .cast_to(&datafusion::arrow::datatypes::DataType::Float64)
            .ok()?
        {
            ScalarValue::Float64(Some(x)) => Some(x),
            _ => None,
        },
        _ => None,
    }
}

/// The registered table a table function reads, and two of its columns.
#[derive(Debug)]
pub(crate) struct SourceColumns {
    pub table: TableReference,
    pub source: Arc<dyn TableProvider>,
    pub key: Field,
    pub value: Field,
}

/// Resolves `table` with columns `key` and `value` in the calling session.
pub(crate) fn resolve(
    usage: &str,
    args: &TableFunctionArgs,
    table: &str,
    key: &str,
    value: &str,
) -> Result<SourceColumns> {
    let table = TableReference::from(table);
    let state = args
        .session()
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| plan_datafusion_err!("{usage} needs a DataFusion SessionState"))?;
    let schema = state.schema_for_ref(table.clone())?;
    let source = schema
        .table(table.table())
        .now_or_never()
        .ok_or_else(|| plan_datafusion_err!("{usage}: table '{table}' must be registered in memory (CREATE TABLE/VIEW/EXTERNAL TABLE)"))??
        .ok_or_else(|| plan_datafusion_err!("{usage}: table '{table}' not found"))?;
    let s = source.schema();
    let field = |name: &str| {
        s.field_with_name(name)
            .cloned()
            .map_err(|_| plan_datafusion_err!("{usage}: table '{table}' has no column '{name}'"))
    };
    Ok(SourceColumns {
        key: field(key)?,
        value: field(value)?,
        table,
        source,
    })
}

impl SourceColumns {
    /// Reads (key, value) rows where both are non-NULL, sorted by key; returns
    /// the keys as one array and the batches for the values.
    pub async fn read(&self, state: &dyn Session) -> Result<(ArrayRef, Vec<RecordBatch>)> {
        let (k, v) = (self.key.name(), self.value.name());
        let plan = LogicalPlanBuilder::scan(
            self.table.clone(),
            provider_as_source(Arc::clone(&self.source)),
            None,
        )?
        .project(vec![col(k), col(v)])?
        .filter(col(k).is_not_null().and(col(v).is_not_null()))?
        .sort(vec![col(k).sort(true, false)])?
        .build()?;
        let physical: Arc<dyn ExecutionPlan> = state.create_physical_plan(&plan).await?;
        let batches: Vec<RecordBatch> = collect(physical, state.task_ctx()).await?;
        let key_arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
        let keys = if key_arrays.is_empty() {
            datafusion::arrow::array::new_empty_array(self.key.data_type())
        } else {
            concat(&key_arrays)?
        };
        Ok((keys, batches))
    }
}

/// Fails unless the value column holds vectors (a list of floats).
pub(crate) fn check_vectors(usage: &str, src: &SourceColumns) -> Result<()> {
    let ok = match src.value.data_type() {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            matches!(f.data_type(), DataType::Float32 | DataType::Float64)
        }
        _ => false,
    };
    if !ok {
        return plan_err!(
            "{usage}: column '{}' must hold vectors (e.g. embed_image(img)), got {}",
            src.value.name(),
            src.value.data_type()
        );
    }
    Ok(())
}

/// The vectors of column 1 of `batches` (from [`SourceColumns::read`]) as
/// one row-major array, and their length; all rows the same length, finite.
fn flat_vectors(func: &str, batches: &[RecordBatch]) -> Result<(Vec<f32>, usize)> {
    let mut flat = Vec::new();
    let mut dim = None;
    let mut row = 0usize;
    for b in batches {
        for v in vector_rows(b.column(1).as_ref())?.into_iter().flatten() {
            match dim {
                None => dim = Some(v.len()),
                Some(d) if d != v.len() => {
                    return exec_err!(
                        "{func}: row {row} has a vector of length {}, earlier rows {d}",
                        v.len()
                    );
                }
                _ => {}
            }
            if v.iter().any(|x| !x.is_finite()) {
                return exec_err!("{func}: row {row} has a non-finite value");
            }
            flat.extend(v);
            row += 1;
        }
    }
    Ok((flat, dim.unwrap_or(1)))
}

impl SourceColumns {
    /// The keys and the vectors (row-major, and their length) of the rows.
    pub async fn vectors(
        &self,
        state: &dyn Session,
        func: &str,
    ) -> Result<(ArrayRef, Vec<f32>, usize)> {
        let (keys, batches) = self.read(state).await?;
        let (flat, d) = flat_vectors(func, &batches)?;
        Ok((keys, flat, d))
    }

    /// Reads the (key, vector) rows and runs `f` on the vectors (row-major,
    /// their length) on `lakecap.device`, off the async threads; returns the
    /// keys and `f`'s result. `func` names the function in errors.
    pub async fn on_vectors<T: Send + 'static>(
        &self,
        state: &dyn Session,
        func: &str,
        f: impl FnOnce(Device, Vec<f32>, usize) -> ModelResult<T> + Send + 'static,
    ) -> Result<(ArrayRef, T)> {
        let (keys, flat, d) = self.vectors(state, func).await?;
        Ok((
            keys,
            on_device(state, move |device| f(device, flat, d)).await?,
        ))
    }
}

/// Runs `f` on `lakecap.device`, off the async threads.
pub(crate) async fn on_device<T: Send + 'static>(
    state: &dyn Session,
    f: impl FnOnce(Device) -> ModelResult<T> + Send + 'static,
) -> Result<T> {
    let device = LakecapOptions::from_config(state.config_options()).device();
    blocking(move || f(device)).await?.map_err(model_err)
}

/// A table function's result: its schema, and its columns computed from the
/// source when the table is scanned.
#[async_trait::async_trait]
pub(crate) trait Verdicts: std::fmt::Debug + Send + Sync + 'static {
    fn schema(&self) -> SchemaRef;

    /// The result's columns, in schema order.
    async fn columns(&self, state: &dyn Session) -> Result<Vec<ArrayRef>>;
}

/// The table of a [`Verdicts`], scanned as one in-memory batch.
#[derive(Debug)]
pub(crate) struct Computed(pub Box<dyn Verdicts>);

/// Whether `table` is a table function's result, computed in full when
/// scanned: a cluster client computes it before sending a plan (its
/// provider holds the session's tables, which executors cannot resolve).
pub fn is_table_function_result(table: &dyn TableProvider) -> bool {
    (table as &dyn std::any::Any).is::<Computed>()
}

#[async_trait::async_trait]
impl TableProvider for Computed {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = RecordBatch::try_new(self.schema(), self.0.columns(state).await?)?;
        MemTable::try_new(self.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}
