//! `lakecap refresh`: incremental, exactly-once lake jobs.
//!
//! A [`Job`] names a source lake, a SQL transform, a key and an output. A run
//! ([`run`]):
//! 1. takes the output's [`lock::OutputLock`];
//! 2. reads the output's [`sink::Ledger`]: the source files already committed
//!    under this job version, stored in each commit's own metadata;
//! 3. lists the source and keeps the files that are new or changed;
//! 4. per group of `files_per_commit` files, reads just those files
//!    ([`store::StoreView`]), drops rows whose key the output already holds
//!    for this version (a key anti-join, before any model runs), runs the
//!    transform, adds lineage columns and commits rows and ledger together;
//! 5. after a version change, drops the older version's rows once every
//!    file is reprocessed.
//!
//! A crash anywhere loses at most the uncommitted group, which the next run
//! redoes: committed files are skipped by the ledger, and rows of a changed
//! file already in the output by the anti-join. [`schedule`] repeats a job
//! on an interval or a cron expression; [`status`] keeps each job's runs.

pub mod job;
pub mod lock;
pub mod sink;
pub mod status;
pub mod store;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{JoinType, ScalarValue, TableReference};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::{DataFrame, Expr, SessionContext, cast, ident, lit};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

pub use job::{Job, OutputFormat};
use sink::{CommitMeta, Ledger, Sink, SourceFile};
use store::{FaultPoint, Faults, StoreView};

use crate::progress::{self, ProgressMode};

/// How to run a job.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefreshOptions {
    /// Wait for a run holding the output's lock instead of failing.
    pub wait: bool,
    pub progress: ProgressMode,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub job: String,
    pub version: i64,
    pub run: String,
    /// Source files listed, and those processed by this run.
    pub files_total: usize,
    pub files_processed: usize,
    /// Files processed again because their size or modification time changed.
    pub files_changed: usize,
    pub commits: usize,
    /// Source rows read from the processed files, and of them the ones whose
    /// key the output already held (skipped before the transform).
    pub rows_read: usize,
    pub rows_already_done: usize,
    /// Rows with a NULL key: they cannot be tracked, so they are skipped and counted.
    pub rows_null_key: usize,
    pub rows_written: usize,
    /// The version whose rows this run replaced, after a version change.
    pub replaced_version: Option<i64>,
    pub seconds: f64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "refresh {} v{} (run {})",
            self.job, self.version, self.run
        )?;
        writeln!(
            f,
            "  source files  {} listed, {} processed ({} changed), {} already done",
            self.files_total,
            self.files_processed,
            self.files_changed,
            self.files_total - self.files_processed
        )?;
        writeln!(
            f,
            "  rows          {} read, {} already in the output, {} with NULL key skipped, {} written",
            self.rows_read, self.rows_already_done, self.rows_null_key, self.rows_written
        )?;
        if let Some(v) = self.replaced_version {
            writeln!(f, "  replaced      rows of version {v}")?;
        }
        write!(f, "  {} commits in {:.1}s", self.commits, self.seconds)
    }
}

/// Lineage columns added to every output row.
pub const LINEAGE: [&str; 4] = [
    "_lakecap_job",
    "_lakecap_job_version",
    "_lakecap_models",
    "_lakecap_processed_at",
];

/// Model options recorded for the functions a transform calls.
fn models_used(ctx: &SessionContext, sql: &str) -> String {
    let o = lakecap_udfs::LakecapOptions::from_config(ctx.state().config_options());
    let sql = sql.to_ascii_lowercase();
    let uses = |f: &str| sql.contains(&format!("{f}("));
    let mut parts = Vec::new();
    if ["embed_image", "clip_score"].iter().any(|f| uses(f)) {
        parts.push(format!("clip={}", o.clip_model));
    }
    if uses("embed_text") {
        parts.push(format!("text={}", o.text_model));
    }
    if uses("recaption") {
        parts.push(format!("caption={}", o.caption_model));
    }
    if uses("fuse") || uses("llm") {
        parts.push(format!("llm={}", o.llm.model));
    }
    parts.join("; ")
}

/// Delta has no unsigned integers or view types: map them to types that hold
/// every value (`UInt64` to `Decimal128(20, 0)`).
fn delta_type(t: &DataType) -> Option<DataType> {
    let mapped = match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Struct(fields) => {
            let mut changed = false;
            let fs: Fields = fields
                .iter()
                .map(|f| match delta_type(f.data_type()) {
                    Some(d) => {
                        changed = true;
                        Arc::new(Field::new(f.name(), d, f.is_nullable()))
                    }
                    None => Arc::clone(f),
                })
                .collect();
            if !changed {
                return None;
            }
            DataType::Struct(fs)
        }
        DataType::List(f) | DataType::ListView(f) => DataType::List(Arc::new(Field::new(
            f.name(),
            delta_type(f.data_type())?,
            true,
        ))),
        _ => return None,
    };
    Some(mapped)
}

fn delta_compatible(df: DataFrame) -> Result<DataFrame> {
    let exprs: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let c = ident(f.name());
            match delta_type(f.data_type()) {
                Some(t) => cast(c, t).alias(f.name()),
                None => c,
            }
        })
        .collect();
    Ok(df.select(exprs)?)
}

/// Rows written and the transform's first error, seen from its output streams.
#[derive(Default)]
struct Tally {
    rows: AtomicUsize,
    error: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn count(self: &Arc<Self>, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let me = Arc::clone(self);
        let s = stream.inspect(move |b| match b {
            Ok(b) => {
                me.rows.fetch_add(b.num_rows(), Ordering::Relaxed);
            }
            Err(e) => {
                if let Ok(mut slot) = me.error.lock() {
                    slot.get_or_insert_with(|| e.to_string());
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, s))
    }

    /// A sink's error, or the transform's when the sink failed because of it.
    fn blame(&self, sink_error: anyhow::Error) -> anyhow::Error {
        match self.error.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => anyhow::anyhow!("the transform failed: {e}"),
            None => sink_error,
        }
    }
}

/// Rows of `rows` and those with a NULL `key`, in one scan.
async fn count_rows_and_null_keys(rows: DataFrame, key: &str) -> Result<(usize, usize)> {
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::functions_aggregate::count::count;
    let batches = rows
        .aggregate(vec![], vec![count(lit(1)), count(ident(key))])?
        .collect()
        .await?;
    let value = |c: usize| {
        batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| {
                b.column(c)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0) as usize
    };
    let (all, with_key) = (value(0), value(1));
    Ok((all, all - with_key))
}

fn set_option(ctx: &SessionContext, key: &str, value: &str) -> Result<()> {
    let state = ctx.state_ref();
    let mut state = state.write();
    state
        .config_mut()
        .options_mut()
        .set(&format!("lakecap.{key}"), value)
        .with_context(|| format!("[options] {key} = '{value}'"))?;
    Ok(())
}

struct Source {
    url: ListingTableUrl,
    options: ListingOptions,
    schema: datafusion::arrow::datatypes::SchemaRef,
    files: Vec<SourceFile>,
}

async fn list_source(ctx: &SessionContext, job: &Job, run_id: &str) -> Result<Source> {
    let name = &job.source.name;
    // A fresh listing every run, never one cached by an earlier run in this session.
    let url = ListingTableUrl::parse(&job.source.url)?
        .with_table_ref(TableReference::bare(format!("lakecap_refresh_{run_id}")));
    let store = ctx.runtime_env().object_store(&url)?;
    let state = ctx.state();
    let metas: Vec<_> = url
        .list_all_files(&state, store.as_ref(), ".parquet")
        .await
        .with_context(|| format!("source '{name}': cannot list {}", job.source.url))?
        .try_collect()
        .await
        .with_context(|| format!("source '{name}': cannot list {}", job.source.url))?;
    if metas.is_empty() {
        bail!("source '{name}': no parquet files at {}", job.source.url);
    }
    let mut files: Vec<SourceFile> = metas
        .into_iter()
        .map(|m| SourceFile {
            path: m.location.to_string(),
            size: m.size,
            modified_ms: m.last_modified.timestamp_millis(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let partitions = options.infer_partitions(&state, &url).await?;
    let options = options.with_table_partition_cols(
        partitions
            .into_iter()
            .map(|p| (p, DataType::Utf8))
            .collect(),
    );
    let schema = options
        .infer_schema(&state, &url)
        .await
        .with_context(|| format!("source '{name}': cannot read the parquet schema"))?;
    Ok(Source {
        url,
        options,
        schema,
        files,
    })
}

/// Runs `job` once in `ctx` (an [`crate::Engine`]'s session).
pub async fn run(ctx: &SessionContext, job: &Job, opts: RefreshOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let faults = Faults::from_env()?;
    let run_id = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%3f"),
        std::process::id()
    );
    for (k, v) in &job.options {
        set_option(ctx, k, v)?;
    }
    let out_url = ListingTableUrl::parse(&job.output_url)?;
    let out_store = ctx
        .runtime_env()
        .object_store(&out_url)
        .context("output location")?;
    let out_root = Path::from_url_path(AsRef::<url::Url>::as_ref(&out_url).path())?;
    let lock = lock::OutputLock::acquire(
        Arc::clone(&out_store),
        out_root.clone().join("_lakecap").join("lock.json"),
        &job.name,
        &run_id,
        opts.wait,
    )
    .await?;
    let result = run_locked(ctx, job, opts, &faults, &run_id, out_store, started, &lock).await;
    lock.release().await?;
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_locked(
    ctx: &SessionContext,
    job: &Job,
    opts: RefreshOptions,
    faults: &Arc<Faults>,
    run_id: &str,
    out_store: Arc<dyn object_store::ObjectStore>,
    started: Instant,
    lock: &lock::OutputLock,
) -> Result<RunSummary> {
    let faulty: Arc<dyn object_store::ObjectStore> = Arc::new(StoreView::with_faults(
        Arc::clone(&out_store),
        Arc::clone(faults),
    ));
    let mut sink: Box<dyn Sink> = match job.output_format {
        OutputFormat::Delta => {
            Box::new(sink::delta::DeltaSink::open(&job.output_url, faulty).await?)
        }
        OutputFormat::Parquet => {
            Box::new(sink::manifest::ManifestSink::open(&job.output_url, faulty).await?)
        }
    };
    let ledger = Ledger::new(&sink.commits().await?, &job.name, job.version);
    if let Some(old) = ledger.older_version
        && ledger.done.is_empty()
    {
        eprintln!(
            "lakecap: job '{}' changed from version {old} to {}: every source file is processed \
             again, and the rows of version {old} are replaced when the run completes",
            job.name, job.version
        );
    }
    for l in &job.lookups {
        ctx.deregister_table(l.name.as_str())?;
        ctx.sql(&format!(
            "CREATE EXTERNAL TABLE \"{}\" STORED AS PARQUET LOCATION '{}'",
            l.name, l.url
        ))
        .await
        .with_context(|| format!("source '{}'", l.name))?;
    }
    let source = list_source(ctx, job, run_id).await?;
    let mut summary = RunSummary {
        job: job.name.clone(),
        version: job.version,
        run: run_id.to_string(),
        files_total: source.files.len(),
        ..Default::default()
    };
    let pending: Vec<&SourceFile> = source
        .files
        .iter()
        .filter(|f| ledger.done.get(&f.path) != Some(f))
        .collect();
    summary.files_processed = pending.len();
    summary.files_changed = pending
        .iter()
        .filter(|f| ledger.done.contains_key(&f.path))
        .count();

    let models = models_used(ctx, &job.sql);
    let key = job.key.as_str();
    let src_store = ctx.runtime_env().object_store(&source.url)?;
    let run_host = run_id.replace(['T', '-'], "").to_ascii_lowercase();
    // A table over just `files`, through a store registered at `lakecap-refresh://HOST`.
    let files_table = |host: &str, files: &[&SourceFile]| -> Result<(url::Url, ListingTable)> {
        let view_url = url::Url::parse(&format!("lakecap-refresh://{host}"))?;
        let only: HashSet<Path> = files.iter().map(|f| Path::from(f.path.as_str())).collect();
        ctx.runtime_env().register_object_store(
            &view_url,
            Arc::new(StoreView::only(Arc::clone(&src_store), only)),
        );
        // Its own table reference, so DataFusion's listing cache keeps groups apart.
        let url = ListingTableUrl::parse(format!(
            "lakecap-refresh://{host}{}",
            AsRef::<url::Url>::as_ref(&source.url).path()
        ))?
        .with_table_ref(TableReference::bare(format!("lakecap_refresh_{host}")));
        let table = ListingTable::try_new(
            ListingTableConfig::new(url)
                .with_listing_options(source.options.clone())
                .with_schema(Arc::clone(&source.schema)),
        )?;
        Ok((view_url, table))
    };
    // Source rows to go, from the parquet footers, for the ETA.
    let total = if pending.is_empty() {
        Some(0)
    } else {
        let (all_url, all) = files_table(&format!("{run_host}all"), &pending)?;
        let plan = ctx
            .read_table(Arc::new(all))?
            .create_physical_plan()
            .await?;
        ctx.runtime_env().deregister_object_store(&all_url)?;
        progress::total_rows(&plan)
    };
    let rows_before = Arc::new(AtomicUsize::new(0));
    type Current = Option<(Arc<dyn ExecutionPlan>, String)>;
    let current: Arc<std::sync::Mutex<Current>> = Arc::default();
    let _watch = {
        let (before, current) = (Arc::clone(&rows_before), Arc::clone(&current));
        progress::watch(opts.progress, total, move || {
            let now = current
                .lock()
                .ok()
                .and_then(|c| {
                    c.as_ref()
                        .map(|(plan, url)| progress::scanned_rows_from(plan, url))
                })
                .unwrap_or(0);
            before.load(Ordering::Relaxed) + now
        })
    };
    for (i, group) in pending.chunks(job.files_per_commit).enumerate() {
        // The group's files, seen through a store that lists only them.
        let (view_url, table) = files_table(&format!("{run_host}c{i}"), group)?;
        let rows = ctx.read_table(Arc::new(table))?;
        let (read, null_keys) = count_rows_and_null_keys(rows.clone(), key).await?;
        let mut rows = rows.filter(ident(key).is_not_null())?;
        if let Some(out) = sink.table(ctx).await? {
            let done = ctx
                .read_table(out)?
                .filter(
                    ident("_lakecap_job")
                        .eq(lit(job.name.as_str()))
                        .and(ident("_lakecap_job_version").eq(lit(job.version))),
                )?
                .select(vec![ident(key).alias("__lakecap_done_key")])?;
            rows = rows.join(
                done,
                JoinType::LeftAnti,
                &[key],
                &["__lakecap_done_key"],
                None,
            )?;
        }
        let fresh = rows.clone().count().await?;
        summary.rows_read += read;
        summary.rows_null_key += null_keys;
        summary.rows_already_done += read - null_keys - fresh;
        ctx.deregister_table(job.source.name.as_str())?;
        ctx.register_table(job.source.name.as_str(), rows.into_view())?;

        let out = ctx.sql(&job.sql).await.context("the transform SQL")?;
        if out.schema().field_with_unqualified_name(key).is_err() {
            bail!("the transform's output has no column '{key}' (the job's key): select it");
        }
        if let Some(c) = LINEAGE
            .iter()
            .find(|c| out.schema().field_with_unqualified_name(c).is_ok())
        {
            bail!("the transform's output has a column '{c}': that name is lakecap's lineage");
        }
        let processed_at = ScalarValue::TimestampMicrosecond(
            Some(chrono::Utc::now().timestamp_micros()),
            Some("UTC".into()),
        );
        let mut out = out
            .with_column(LINEAGE[0], lit(job.name.as_str()))?
            .with_column(LINEAGE[1], lit(job.version))?
            .with_column(LINEAGE[2], lit(models.as_str()))?
            .with_column(LINEAGE[3], lit(processed_at))?;
        if job.output_format == OutputFormat::Delta {
            out = delta_compatible(out)?;
        }
        let plan = out.create_physical_plan().await?;
        *current.lock().expect("progress lock") = Some((
            Arc::clone(&plan),
            view_url.as_str().trim_end_matches('/').to_string(),
        ));
        let tally = Arc::new(Tally::default());
        let task = ctx.task_ctx();
        let streams = (0..plan.properties().partitioning.partition_count())
            .map(|p| Ok(faults.watch(tally.count(plan.execute(p, Arc::clone(&task))?))))
            .collect::<Result<Vec<_>>>()?;
        let meta = CommitMeta {
            job: job.name.clone(),
            version: job.version,
            run: run_id.to_string(),
            sources: group.iter().map(|f| (*f).clone()).collect(),
            retire_below: None,
        };
        lock.check()?;
        faults.next_commit();
        let groups = pending.len().div_ceil(job.files_per_commit);
        sink.write(ctx, plan.schema(), streams, &meta)
            .await
            .map_err(|e| tally.blame(e))
            .with_context(|| format!("commit {} of {groups}", i + 1))?;
        faults.hit(FaultPoint::AfterCommit);
        summary.commits += 1;
        summary.rows_written += tally.rows.load(Ordering::Relaxed);
        rows_before.fetch_add(read, Ordering::Relaxed);
        *current.lock().expect("progress lock") = None;
        ctx.runtime_env().deregister_object_store(&view_url)?;
    }
    if let Some(old) = ledger.older_version {
        let meta = CommitMeta {
            job: job.name.clone(),
            version: job.version,
            run: run_id.to_string(),
            retire_below: Some(job.version),
            ..Default::default()
        };
        lock.check()?;
        faults.next_commit();
        sink.retire(ctx, &meta).await?;
        faults.hit(FaultPoint::AfterCommit);
        summary.commits += 1;
        summary.replaced_version = Some(old);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// When to run a job again.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    pub fn every(s: &str) -> Result<Self> {
        let d = humantime::parse_duration(s)
            .with_context(|| format!("--every '{s}': use a duration such as 30m, 1h or 1d"))?;
        if d.is_zero() {
            bail!("--every must be longer than zero");
        }
        Ok(Self::Every(d))
    }

    pub fn cron(s: &str) -> Result<Self> {
        let c: croner::Cron = s
            .parse()
            .with_context(|| format!("--cron '{s}' is not a cron expression"))?;
        Ok(Self::Cron(Box::new(c)))
    }

    /// Time to wait from `now` until the next run.
    pub fn wait_from(&self, now: chrono::DateTime<chrono::Local>) -> Result<Duration> {
        match self {
            Self::Every(d) => Ok(*d),
            Self::Cron(c) => {
                let next = c
                    .find_next_occurrence(&now, false)
                    .context("the cron expression has no next occurrence")?;
                Ok((next - now).to_std().unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_parse_and_say_when() {
        let now = chrono::Local
            .with_ymd_and_hms(2026, 11, 28, 10, 15, 0)
            .unwrap();
        assert_eq!(
            Schedule::every("1h").unwrap().wait_from(now).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            Schedule::cron("30 * * * *")
                .unwrap()
                .wait_from(now)
                .unwrap(),
            Duration::from_secs(15 * 60)
        );
        assert!(
            Schedule::every("soon")
                .unwrap_err()
                .to_string()
                .contains("--every 'soon'")
        );
        assert!(Schedule::every("0s").is_err());
        assert!(Schedule::cron("61 * * * *").is_err());
    }

    #[test]
    fn delta_types_hold_every_value() {
        assert_eq!(
            delta_type(&DataType::UInt64),
            Some(DataType::Decimal128(20, 0))
        );
        assert_eq!(delta_type(&DataType::Utf8View), Some(DataType::Utf8));
        assert_eq!(delta_type(&DataType::Int64), None);
        let s = DataType::Struct(
            vec![
                Field::new("format", DataType::Utf8View, true),
                Field::new("width", DataType::UInt32, true),
            ]
            .into(),
        );
        let DataType::Struct(f) = delta_type(&s).unwrap() else {
            panic!()
        };
        assert_eq!(f[0].data_type(), &DataType::Utf8);
        assert_eq!(f[1].data_type(), &DataType::Int64);
    }
}
