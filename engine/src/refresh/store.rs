//! A view of an object store for refresh runs: listing restricted to a set of
//! files (so a stock `ListingTable`, hive partitions and all, reads just one
//! commit's source files) and, for the fault-injection tests, crash points
//! around commits.
//!
//! Crash points come from `LAKECAP_FAULT=POINT[@N]` (the N-th commit of the
//! run, default 1) and end the process with `abort()`, as `kill -9` would:
//! - `mid_batch`: output rows are being written, nothing is committed;
//! - `before_commit`: every data file is written, the commit is not;
//! - `during_commit`: the commit record is durable, nothing after it ran
//!   (Delta post-commit hooks, moving staged parquet into place);
//! - `after_commit`: the sink is done, the run's bookkeeping is not.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result as DfResult;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Where a run may be made to crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    MidBatch,
    BeforeCommit,
    DuringCommit,
    AfterCommit,
}

/// The crash a run was asked for, if any.
#[derive(Debug, Default)]
pub struct Faults {
    planned: Option<(FaultPoint, usize)>,
    /// Commits started in this run (1-based once the first starts).
    commits: AtomicUsize,
}

impl Faults {
    /// From `LAKECAP_FAULT`; an unknown value is an error, not ignored.
    pub fn from_env() -> anyhow::Result<Arc<Self>> {
        let Ok(v) = std::env::var("LAKECAP_FAULT") else {
            return Ok(Arc::default());
        };
        let (point, n) = v.split_once('@').unwrap_or((&v, "1"));
        let point = match point {
            "mid_batch" => FaultPoint::MidBatch,
            "before_commit" => FaultPoint::BeforeCommit,
            "during_commit" => FaultPoint::DuringCommit,
            "after_commit" => FaultPoint::AfterCommit,
            other => anyhow::bail!(
                "LAKECAP_FAULT '{other}': use mid_batch, before_commit, during_commit or after_commit"
            ),
        };
        let n = n
            .parse()
            .map_err(|_| anyhow::anyhow!("LAKECAP_FAULT: '{n}' is not a commit number"))?;
        Ok(Arc::new(Self {
            planned: Some((point, n)),
            commits: AtomicUsize::new(0),
        }))
    }

    /// Marks the start of the next commit's data.
    pub fn next_commit(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// Crashes here if this is the planned point of the planned commit.
    pub fn hit(&self, point: FaultPoint) {
        if self.planned == Some((point, self.commits.load(Ordering::SeqCst))) {
            eprintln!("lakecap: injected crash at {point:?}");
            std::process::abort();
        }
    }

    /// `stream`, crashing after its first batch when `MidBatch` is planned.
    pub fn watch(self: &Arc<Self>, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let faults = Arc::clone(self);
        let schema = stream.schema();
        let s = stream.map(move |b: DfResult<RecordBatch>| {
            if b.is_ok() {
                faults.hit(FaultPoint::MidBatch);
            }
            b
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, s))
    }
}

/// A commit record: a Delta log entry or a lakecap manifest entry.
fn is_commit(path: &Path) -> bool {
    let p = path.as_ref();
    (p.contains("_delta_log/") && p.ends_with(".json") && !p.contains("_delta_log/_"))
        || p.contains("_lakecap/manifest/")
}

/// An object store seen through a file filter and crash points.
#[derive(Debug)]
pub struct StoreView {
    inner: Arc<dyn ObjectStore>,
    only: Option<Arc<HashSet<Path>>>,
    faults: Option<Arc<Faults>>,
}

impl StoreView {
    /// Lists only `files`; everything else passes through.
    pub fn only(inner: Arc<dyn ObjectStore>, files: HashSet<Path>) -> Self {
        Self {
            inner,
            only: Some(Arc::new(files)),
            faults: None,
        }
    }

    /// Crashes around commit records as `faults` plans.
    pub fn with_faults(inner: Arc<dyn ObjectStore>, faults: Arc<Faults>) -> Self {
        Self {
            inner,
            only: None,
            faults: Some(faults),
        }
    }

    fn listed(&self, path: &Path) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(path))
    }
}

impl fmt::Display for StoreView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreView({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for StoreView {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let commit = is_commit(location).then_some(()).and(self.faults.as_ref());
        if let Some(f) = commit {
            f.hit(FaultPoint::BeforeCommit);
        }
        let r = self.inner.put_opts(location, payload, opts).await?;
        if let Some(f) = commit {
            f.hit(FaultPoint::DuringCommit);
        }
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let only = self.only.clone();
        self.inner
            .list(prefix)
            .filter(move |m| {
                let keep = match (m, &only) {
                    (Ok(m), Some(o)) => o.contains(&m.location),
                    _ => true,
                };
                std::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects.retain(|m| self.listed(&m.location));
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn lists_only_the_chosen_files() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for p in [
            "lake/a=1/x.parquet",
            "lake/a=1/y.parquet",
            "lake/a=2/z.parquet",
        ] {
            inner
                .put(&Path::from(p), PutPayload::from_static(b"1"))
                .await
                .unwrap();
        }
        let view = StoreView::only(
            Arc::clone(&inner),
            [Path::from("lake/a=1/y.parquet")].into_iter().collect(),
        );
        let listed: Vec<String> = view
            .list(Some(&Path::from("lake")))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed, vec!["lake/a=1/y.parquet"]);
        let dir = view
            .list_with_delimiter(Some(&Path::from("lake/a=1")))
            .await
            .unwrap();
        assert_eq!(dir.objects.len(), 1);
        // Reads are not filtered: only what a listing finds is.
        assert!(view.get(&Path::from("lake/a=2/z.parquet")).await.is_ok());
    }

    #[test]
    fn commit_records_are_recognised() {
        assert!(is_commit(&Path::from(
            "out/_delta_log/00000000000000000003.json"
        )));
        assert!(is_commit(&Path::from(
            "out/_lakecap/manifest/00000000000000000003.json"
        )));
        assert!(!is_commit(&Path::from("out/_delta_log/_last_checkpoint")));
        assert!(!is_commit(&Path::from("out/part-0001.parquet")));
    }
}
