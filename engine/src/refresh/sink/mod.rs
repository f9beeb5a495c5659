//! Where a refresh commits: a Delta table ([`delta::DeltaSink`]) or parquet
//! files behind a manifest ([`manifest::ManifestSink`]).
//!
//! Every commit carries a [`CommitMeta`]: the job, its version, the run and
//! the source files whose rows the commit holds. It is written in the same
//! atomic step as the data (Delta commit info, manifest entry), so the set of
//! processed source files can never disagree with the rows in the output.

pub mod delta;
pub mod manifest;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

/// A source file as it was when processed; a different size or modification
/// time means the file changed and is read again (the key anti-join keeps
/// its old rows from being written twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub size: u64,
    pub modified_ms: i64,
}

/// What a commit says about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitMeta {
    pub job: String,
    pub version: i64,
    pub run: String,
    #[serde(default)]
    pub sources: Vec<SourceFile>,
    /// Set on the commit that drops the rows of versions below this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_below: Option<i64>,
}

/// What the output already holds for one job.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Source files committed under the current version, by path.
    pub done: HashMap<String, SourceFile>,
    /// The newest version with commits other than the current one.
    pub older_version: Option<i64>,
}

impl Ledger {
    pub fn new(commits: &[CommitMeta], job: &str, version: i64) -> Self {
        let mut ledger = Ledger::default();
        let retired = commits
            .iter()
            .filter(|c| c.job == job)
            .filter_map(|c| c.retire_below)
            .max()
            .unwrap_or(i64::MIN);
        for c in commits
            .iter()
            .filter(|c| c.job == job && c.retire_below.is_none())
        {
            if c.version == version {
                for s in &c.sources {
                    ledger.done.insert(s.path.clone(), s.clone());
                }
            } else if c.version >= retired {
                ledger.older_version = ledger.older_version.max(Some(c.version));
            }
        }
        ledger
    }
}

#[async_trait]
pub trait Sink: Send + Sync {
    /// Every commit's metadata, oldest first.
    async fn commits(&self) -> Result<Vec<CommitMeta>>;
    /// The committed output as a table, `None` before the first commit.
    async fn table(&self, ctx: &SessionContext) -> Result<Option<Arc<dyn TableProvider>>>;
    /// Writes `streams` (one per partition) and commits them with `meta`, atomically.
    async fn write(
        &mut self,
        ctx: &SessionContext,
        schema: SchemaRef,
        streams: Vec<SendableRecordBatchStream>,
        meta: &CommitMeta,
    ) -> Result<()>;
    /// Drops the rows of versions below `meta.retire_below`, atomically.
    async fn retire(&mut self, ctx: &SessionContext, meta: &CommitMeta) -> Result<()>;
}

/// A stream handed to a plan as one partition of a `StreamingTable`; it can
/// be executed once.
pub struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl OneShot {
    pub fn new(stream: SendableRecordBatchStream) -> Self {
        Self {
            schema: stream.schema(),
            stream: Mutex::new(Some(stream)),
        }
    }
}

impl Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneShot")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut s| s.take());
        taken.unwrap_or_else(|| {
            let err = datafusion::common::DataFusionError::Internal(
                "refresh output stream executed twice".into(),
            );
            Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    Arc::clone(&self.schema),
                    futures::stream::once(async move { Err(err) }),
                ),
            )
        })
    }
}

/// The parquet files at `urls` as one table (`None` for no files), its
/// schema inferred from them: what a sink's `table` gives for the anti-join,
/// a listing table that also travels in a cluster's plans.
async fn files_table(
    ctx: &SessionContext,
    urls: Vec<String>,
) -> Result<Option<Arc<dyn TableProvider>>> {
    let urls = urls
        .into_iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    if urls.is_empty() {
        return Ok(None);
    }
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(ListingOptions::new(Arc::new(ParquetFormat::default())))
        .infer_schema(&ctx.state())
        .await?;
    Ok(Some(Arc::new(ListingTable::try_new(config)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(version: i64, files: &[&str]) -> CommitMeta {
        CommitMeta {
            job: "j".into(),
            version,
            sources: files
                .iter()
                .map(|f| SourceFile {
                    path: f.to_string(),
                    size: 1,
                    modified_ms: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn ledger_tracks_the_current_version_and_retirements() {
        let mut commits = vec![commit(1, &["a", "b"]), commit(2, &["a"])];
        let l = Ledger::new(&commits, "j", 2);
        assert_eq!(l.done.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(l.older_version, Some(1));
        commits.push(CommitMeta {
            job: "j".into(),
            version: 2,
            retire_below: Some(2),
            ..Default::default()
        });
        assert_eq!(Ledger::new(&commits, "j", 2).older_version, None);
        assert!(Ledger::new(&commits, "other", 2).done.is_empty());
    }
}
