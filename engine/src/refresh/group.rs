//! One commit's source files as a table ([`GroupTable`]): a listing table
//! over a view of the source's store that lists only those files
//! ([`StoreView`], registered at `lakecap-refresh://HOST`).
//!
//! On a cluster the table travels in the job's plans ([`GroupTable::encode`],
//! by the cluster codec): the scheduler registers the same view in its own
//! runtime to list the files while planning, and points the file scans it
//! plans back at the source's own store, which every executor resolves.
//! (A scheduler keeps each group's view registered: a few bytes a file.)

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, TableReference, plan_datafusion_err};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::store::StoreView;

/// What travels: enough to make the same table again elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wire {
    /// `lakecap-refresh://HOST`.
    view: String,
    /// The source's root (`file:///…/`, `s3://…/`).
    source: String,
    files: Vec<String>,
    partitions: Vec<String>,
}

/// How a refresh source is listed: parquet files, hive partition columns.
pub(super) fn source_options(partitions: Vec<(String, DataType)>) -> ListingOptions {
    ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partitions)
}

/// The group's files of the source, read through their view.
#[derive(Debug)]
pub struct GroupTable {
    listing: ListingTable,
    wire: Wire,
    /// Point scans at the source's store (a scheduler's plans run on
    /// executors, which have no view).
    direct: bool,
}

impl GroupTable {
    /// Registers the view of `files` (object paths under `source`'s store)
    /// at `lakecap-refresh://HOST` in `runtime`, and the table over it.
    pub fn new(
        runtime: &RuntimeEnv,
        host: &str,
        source: &ListingTableUrl,
        options: &ListingOptions,
        schema: SchemaRef,
        files: Vec<String>,
    ) -> Result<Self> {
        let partitions = options
            .table_partition_cols
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        let wire = Wire {
            view: format!("lakecap-refresh://{host}"),
            source: source.to_string(),
            files,
            partitions,
        };
        Self::register(runtime, wire, options.clone(), schema, false)
    }

    fn register(
        runtime: &RuntimeEnv,
        wire: Wire,
        options: ListingOptions,
        schema: SchemaRef,
        direct: bool,
    ) -> Result<Self> {
        let view = url::Url::parse(&wire.view).map_err(|e| plan_datafusion_err!("{e}"))?;
        let source = ListingTableUrl::parse(&wire.source)?;
        let only: HashSet<Path> = wire.files.iter().map(|f| Path::from(f.as_str())).collect();
        let store = runtime.object_store(source.object_store())?;
        runtime.register_object_store(&view, Arc::new(StoreView::only(store, only)));
        // Its own table reference, so DataFusion's listing cache keeps groups apart.
        let host = view.host_str().unwrap_or_default();
        let url = ListingTableUrl::parse(format!(
            "{}{}",
            wire.view,
            AsRef::<url::Url>::as_ref(&source).path()
        ))?
        .with_table_ref(TableReference::bare(format!("lakecap_refresh_{host}")));
        let listing = ListingTable::try_new(
            ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(schema),
        )?;
        Ok(GroupTable {
            listing,
            wire,
            direct,
        })
    }

    /// The view's URL, `lakecap-refresh://HOST`.
    pub fn view(&self) -> &str {
        &self.wire.view
    }

    /// The table as bytes for a plan ([`GroupTable::decode`] reverses it).
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.wire).map_err(|e| plan_datafusion_err!("{e}"))
    }

    /// The table again in another process (a scheduler), with `schema`
    /// (the table's, as the plan carries it), reading from the source's store.
    pub fn decode(buf: &[u8], schema: SchemaRef, ctx: &TaskContext) -> Result<Self> {
        let wire: Wire = serde_json::from_slice(buf)
            .map_err(|e| plan_datafusion_err!("a refresh group in a plan: {e}"))?;
        let partitions = wire
            .partitions
            .iter()
            .map(|p| {
                let f = schema.field_with_name(p)?;
                Ok((p.clone(), f.data_type().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        let options = source_options(partitions.clone());
        let file_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| !partitions.iter().any(|(p, _)| p == f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        Self::register(ctx.runtime_env().as_ref(), wire, options, file_schema, true)
    }
}

#[async_trait]
impl TableProvider for GroupTable {
    fn schema(&self) -> SchemaRef {
        self.listing.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.listing.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.listing.scan(state, projection, filters, limit).await?;
        if !self.direct {
            return Ok(plan);
        }
        let view = ObjectStoreUrl::parse(&self.wire.view)?;
        let source = ListingTableUrl::parse(&self.wire.source)?.object_store();
        plan.transform_up(|p| {
            let Some(exec) = (p.as_ref() as &dyn std::any::Any).downcast_ref::<DataSourceExec>()
            else {
                return Ok(Transformed::no(p));
            };
            let Some(config) = (exec.data_source().as_ref() as &dyn std::any::Any)
                .downcast_ref::<FileScanConfig>()
                .filter(|c| c.object_store_url == view)
            else {
                return Ok(Transformed::no(p));
            };
            let mut config = config.clone();
            config.object_store_url = source.clone();
            Ok(Transformed::yes(
                DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>
            ))
        })
        .data()
    }
}
