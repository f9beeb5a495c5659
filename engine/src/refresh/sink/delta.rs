//! Delta Lake output through delta-rs: each refresh commit is one Delta
//! transaction whose commit info carries the [`CommitMeta`] (key `lakecap`).
//! Data files a crashed run wrote without committing are never referenced,
//! so readers and the next run ignore them (`VACUUM` removes them).

use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::{SchemaMode, WriteBuilder};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use object_store::ObjectStore;
use url::Url;

use super::{CommitMeta, OneShot, Sink, files_table};

pub struct DeltaSink {
    table: DeltaTable,
}

fn props(meta: &CommitMeta) -> Result<CommitProperties> {
    Ok(CommitProperties::default()
        .with_metadata([("lakecap".to_string(), serde_json::to_value(meta)?)]))
}

impl DeltaSink {
    /// Opens (or prepares to create) the table at `url` through `root`, the
    /// store for the URL's bucket or file system.
    pub async fn open(url: &str, root: Arc<dyn ObjectStore>) -> Result<Self> {
        let url = Url::parse(url)?;
        let mut table = DeltaTableBuilder::from_url(url.clone())?
            .with_storage_backend(root, url.clone())
            .build()?;
        match table.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot open Delta table {url}")),
        }
        Ok(Self { table })
    }

    fn exists(&self) -> bool {
        self.table.version().is_some()
    }
}

#[async_trait]
impl Sink for DeltaSink {
    async fn commits(&self) -> Result<Vec<CommitMeta>> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        let infos: Vec<_> = self.table.history(None).try_collect().await?;
        let mut metas: Vec<CommitMeta> = infos
            .into_iter()
            .filter_map(|i| i.info.get("lakecap").cloned())
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .context("a commit's lakecap metadata is unreadable")?;
        metas.reverse(); // history is newest first
        Ok(metas)
    }

    async fn table(&self, ctx: &SessionContext) -> Result<Option<Arc<dyn TableProvider>>> {
        if !self.exists() {
            return Ok(None);
        }
        // Not delta-rs's provider: a listing table also travels in a
        // cluster's plans. (Our writes add whole files, unpartitioned, with
        // no deletion vectors.)
        let urls = self.table.get_file_uris()?.collect();
        files_table(ctx, urls).await
    }

    async fn write(
        &mut self,
        _ctx: &SessionContext,
        schema: SchemaRef,
        streams: Vec<SendableRecordBatchStream>,
        meta: &CommitMeta,
    ) -> Result<()> {
        let parts: Vec<Arc<dyn PartitionStream>> = streams
            .into_iter()
            .map(|s| Arc::new(OneShot::new(s)) as _)
            .collect();
        let input = StreamingTable::try_new(schema, parts)?;
        let plan =
            LogicalPlanBuilder::scan("refresh_output", provider_as_source(Arc::new(input)), None)?
                .build()?;
        let snapshot = self.table.snapshot().ok().map(|s| s.snapshot().clone());
        self.table = WriteBuilder::new(self.table.log_store(), snapshot)
            // The streams already run in the caller's session; delta-rs plans
            // its write (with its own extension nodes) in a session of its own.
            .with_input_plan(plan)
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .with_commit_properties(props(meta)?)
            .await
            .context("Delta write failed")?;
        Ok(())
    }

    async fn retire(&mut self, _ctx: &SessionContext, meta: &CommitMeta) -> Result<()> {
        let Some(below) = meta.retire_below else {
            return Ok(());
        };
        let (table, _) = self
            .table
            .clone()
            .delete()
            .with_predicate(format!("_lakecap_job_version < {below}"))
            .with_commit_properties(props(meta)?)
            .await
            .context("Delta delete of older versions failed")?;
        self.table = table;
        Ok(())
    }
}
