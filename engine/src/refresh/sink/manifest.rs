//! Plain parquet output committed through a manifest.
//!
//! Layout under the output location:
//! - `part-SSSSSS-PPP-FFF.parquet`: committed data (commit S, partition P, file F);
//! - `_lakecap/staging/S/`: a commit's files while they are written;
//! - `_lakecap/manifest/S.json`: commit S: its [`CommitMeta`] and file names.
//!
//! A commit is the create-if-absent put of its manifest entry, after every
//! data file is staged; its files are then moved into place. A run first
//! rolls committed commits forward (moves files a crash left staged) and
//! deletes staging that no manifest names. Readers of the directory see only
//! committed files (staging is a subdirectory, which listings skip), and the
//! output read through [`ManifestSink::table`] is exactly the committed set.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::{CommitMeta, Sink, files_table};

/// Rows per data file before the next one starts.
const ROWS_PER_FILE: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    lakecap: CommitMeta,
    files: Vec<String>,
}

pub struct ManifestSink {
    store: Arc<dyn ObjectStore>,
    url: String,
    root: Path,
    entries: Vec<(u64, Entry)>,
}

impl ManifestSink {
    /// Opens the output at `url` (a directory URL) in `store`, rolling
    /// committed work forward and clearing uncommitted staging.
    pub async fn open(url: &str, store: Arc<dyn ObjectStore>) -> Result<Self> {
        let parsed = url::Url::parse(url)?;
        let root = Path::from_url_path(parsed.path())?;
        let mut sink = Self {
            store,
            url: url.to_string(),
            root,
            entries: Vec::new(),
        };
        sink.load().await?;
        sink.recover().await?;
        Ok(sink)
    }

    fn path(&self, rel: &str) -> Path {
        Path::from(format!("{}/{rel}", self.root))
    }

    fn staged(&self, seq: u64, name: &str) -> Path {
        self.path(&format!("_lakecap/staging/{seq:020}/{name}"))
    }

    async fn load(&mut self) -> Result<()> {
        let dir = self.path("_lakecap/manifest");
        let metas: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        for m in metas {
            let Some(seq) = m
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = self.store.get(&m.location).await?.bytes().await?;
            let entry: Entry = serde_json::from_slice(&bytes)
                .with_context(|| format!("manifest entry {} is unreadable", m.location))?;
            self.entries.push((seq, entry));
        }
        self.entries.sort_by_key(|(s, _)| *s);
        Ok(())
    }

    async fn recover(&self) -> Result<()> {
        for (seq, e) in self.live() {
            self.move_into_place(*seq, &e.files).await?;
        }
        let next = self.next_seq();
        let staging = self.path("_lakecap/staging");
        let leftovers: Vec<_> = self.store.list(Some(&staging)).try_collect().await?;
        for m in leftovers {
            let seq = m
                .location
                .parts()
                .nth(staging.parts().count())
                .and_then(|p| p.as_ref().parse::<u64>().ok());
            if seq.is_none_or(|s| s >= next) {
                self.store.delete(&m.location).await?;
            }
        }
        Ok(())
    }

    async fn move_into_place(&self, seq: u64, files: &[String]) -> Result<()> {
        for f in files {
            let dest = self.path(f);
            if self.store.head(&dest).await.is_ok() {
                continue;
            }
            let src = self.staged(seq, f);
            self.store.rename(&src, &dest).await.with_context(|| {
                format!("committed file {f} of commit {seq} is neither in place nor staged")
            })?;
        }
        Ok(())
    }

    fn next_seq(&self) -> u64 {
        self.entries.last().map(|(s, _)| s + 1).unwrap_or(1)
    }

    /// Committed entries whose rows are live (not retired by a later version).
    fn live(&self) -> impl Iterator<Item = &(u64, Entry)> {
        let retired: Vec<(&str, i64)> = self
            .entries
            .iter()
            .filter_map(|(_, e)| e.lakecap.retire_below.map(|v| (e.lakecap.job.as_str(), v)))
            .collect();
        self.entries.iter().filter(move |(_, e)| {
            !retired
                .iter()
                .any(|(job, v)| *job == e.lakecap.job && e.lakecap.version < *v)
        })
    }

    fn live_files(&self) -> Vec<String> {
        self.live()
            .flat_map(|(_, e)| e.files.iter().cloned())
            .collect()
    }

    async fn commit(&mut self, seq: u64, entry: Entry) -> Result<()> {
        let path = self.path(&format!("_lakecap/manifest/{seq:020}.json"));
        let body = serde_json::to_vec_pretty(&entry)?;
        match self
            .store
            .put_opts(
                &path,
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                bail!(
                    "commit {seq} exists already: another writer used this output without the lock"
                )
            }
            Err(e) => return Err(e.into()),
        }
        self.move_into_place(seq, &entry.files).await?;
        self.entries.push((seq, entry));
        Ok(())
    }
}

/// Writes one partition's stream as parquet files in staging; returns their names.
async fn write_partition(
    store: Arc<dyn ObjectStore>,
    dir: Path,
    seq: u64,
    part: usize,
    mut stream: SendableRecordBatchStream,
) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if writer.is_none() {
            let name = format!("part-{seq:06}-{part:03}-{:03}.parquet", names.len());
            let obj = BufWriter::new(Arc::clone(&store), dir.clone().join(name.as_str()));
            writer = Some(AsyncArrowWriter::try_new(obj, batch.schema(), None)?);
            names.push(name);
        }
        writer.as_mut().expect("opened above").write(&batch).await?;
        rows += batch.num_rows();
        if rows >= ROWS_PER_FILE
            && let Some(w) = writer.take()
        {
            w.close().await?;
            rows = 0;
        }
    }
    if let Some(w) = writer {
        w.close().await?;
    }
    Ok(names)
}

#[async_trait]
impl Sink for ManifestSink {
    async fn commits(&self) -> Result<Vec<CommitMeta>> {
        Ok(self
            .entries
            .iter()
            .map(|(_, e)| e.lakecap.clone())
            .collect())
    }

    async fn table(&self, ctx: &SessionContext) -> Result<Option<Arc<dyn TableProvider>>> {
        let urls = self
            .live_files()
            .iter()
            .map(|f| format!("{}{f}", self.url))
            .collect();
        files_table(ctx, urls).await
    }

    async fn write(
        &mut self,
        _ctx: &SessionContext,
        _schema: SchemaRef,
        streams: Vec<SendableRecordBatchStream>,
        meta: &CommitMeta,
    ) -> Result<()> {
        let seq = self.next_seq();
        let dir = self.path(&format!("_lakecap/staging/{seq:020}"));
        let writes = streams.into_iter().enumerate().map(|(i, s)| {
            tokio::spawn(write_partition(
                Arc::clone(&self.store),
                dir.clone(),
                seq,
                i,
                s,
            ))
        });
        let mut files = Vec::new();
        for names in futures::future::try_join_all(writes).await? {
            files.extend(names?);
        }
        let entry = Entry {
            lakecap: meta.clone(),
            files,
        };
        self.commit(seq, entry).await
    }

    async fn retire(&mut self, _ctx: &SessionContext, meta: &CommitMeta) -> Result<()> {
        let Some(below) = meta.retire_below else {
            return Ok(());
        };
        let old: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.lakecap.job == meta.job && e.lakecap.version < below)
            .flat_map(|(_, e)| e.files.iter().cloned())
            .collect();
        let seq = self.next_seq();
        self.commit(
            seq,
            Entry {
                lakecap: meta.clone(),
                files: Vec::new(),
            },
        )
        .await?;
        // Committed: the old files are no longer live; remove them for plain readers.
        for f in old {
            match self.store.delete(&self.path(&f)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
