//! One refresh run, step by step (the numbered steps of the module overview):
//! [`run`] takes the output's lock (1), then [`run_locked`] reads the ledger
//! (2), lists the source files still to process (3), commits them a group at
//! a time (4) and, after a version change, retires the older version's rows
//! (5). [`Run`] holds what the steps share; [`Groups`] and [`Progress`] hold
//! step 4's state.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datafusion::arrow::datatypes::{DataType, Field, Fields, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::common::{JoinType, ScalarValue, TableReference};
use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::{DataFrame, Expr, SessionContext, cast, ident, lit};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;

use super::group::{GroupTable, source_options};
use super::sink::{self, CommitMeta, Ledger, Sink, SourceFile};
use super::store::{FaultPoint, Faults, StoreView};
use super::{Job, LINEAGE, OutputFormat, RefreshOptions, RunSummary, lock};
use crate::progress::{self, ProgressMode};

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
    // 1. The output's lock, held until the run ends however it ends.
    let lock = lock::OutputLock::acquire(
        Arc::clone(&out_store),
        out_root.clone().join("_lakecap").join("lock.json"),
        &job.name,
        &run_id,
        opts.wait,
    )
    .await?;
    let run = Run {
        ctx,
        job,
        faults: &faults,
        run_id: &run_id,
        lock: &lock,
    };
    let result = run_locked(&run, opts.progress, out_store, started).await;
    lock.release().await?;
    result
}

/// Steps 2 to 5, under the output's lock.
async fn run_locked(
    run: &Run<'_>,
    progress: ProgressMode,
    out_store: Arc<dyn ObjectStore>,
    started: Instant,
) -> Result<RunSummary> {
    // 2. What the output already holds.
    let (mut sink, ledger) = run.open_output(out_store).await?;
    run.register_lookups().await?;
    // 3. The source files that are new or changed.
    let source = list_source(run.ctx, run.job, run.run_id).await?;
    let pending = source.pending(&ledger);
    let mut summary = run.summary(&source, &pending, &ledger);
    // 4. A commit per group of files, with progress over all of them.
    let groups = Groups::new(run, &source, pending.len())?;
    let _watch = groups.watch(progress, &pending).await?;
    for (i, group) in pending.chunks(run.job.files_per_commit).enumerate() {
        groups.commit(sink.as_mut(), i, group, &mut summary).await?;
    }
    // 5. After a version change, the older version's rows go.
    if let Some(old) = ledger.older_version {
        run.retire(sink.as_mut()).await?;
        summary.commits += 1;
        summary.replaced_version = Some(old);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What every step of a run reads.
struct Run<'a> {
    ctx: &'a SessionContext,
    job: &'a Job,
    faults: &'a Arc<Faults>,
    run_id: &'a str,
    lock: &'a lock::OutputLock,
}

impl Run<'_> {
    /// Step 2: the output's sink (its writes pass the fault points) and the
    /// ledger of its commits; says so when a version change starts over.
    async fn open_output(
        &self,
        out_store: Arc<dyn ObjectStore>,
    ) -> Result<(Box<dyn Sink>, Ledger)> {
        let job = self.job;
        let faulty: Arc<dyn ObjectStore> =
            Arc::new(StoreView::with_faults(out_store, Arc::clone(self.faults)));
        let sink: Box<dyn Sink> = match job.output_format {
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
        Ok((sink, ledger))
    }

    /// The job's other sources, registered whole for the transform to join.
    async fn register_lookups(&self) -> Result<()> {
        for l in &self.job.lookups {
            self.ctx.deregister_table(l.name.as_str())?;
            self.ctx
                .sql(&format!(
                    "CREATE EXTERNAL TABLE \"{}\" STORED AS PARQUET LOCATION '{}'",
                    l.name, l.url
                ))
                .await
                .with_context(|| format!("source '{}'", l.name))?;
        }
        Ok(())
    }

    /// The summary so far: files listed, to process, and changed among them.
    fn summary(&self, source: &Source, pending: &[&SourceFile], ledger: &Ledger) -> RunSummary {
        RunSummary {
            job: self.job.name.clone(),
            version: self.job.version,
            run: self.run_id.to_string(),
            files_total: source.files.len(),
            files_processed: pending.len(),
            files_changed: pending
                .iter()
                .filter(|f| ledger.done.contains_key(&f.path))
                .count(),
            ..Default::default()
        }
    }

    /// Step 5: one commit that drops the rows of every older version.
    async fn retire(&self, sink: &mut dyn Sink) -> Result<()> {
        let meta = CommitMeta {
            job: self.job.name.clone(),
            version: self.job.version,
            run: self.run_id.to_string(),
            retire_below: Some(self.job.version),
            ..Default::default()
        };
        self.lock.check()?;
        self.faults.next_commit();
        sink.retire(self.ctx, &meta).await?;
        self.faults.hit(FaultPoint::AfterCommit);
        Ok(())
    }
}

/// Step 4: the source read one group of files at a time, each through its own
/// object store registered at `lakecap-refresh://HOST` that lists only them.
struct Groups<'a> {
    run: &'a Run<'a>,
    source: &'a Source,
    /// Unique to the run, so concurrent runs' stores and tables never meet.
    host: String,
    /// Model options recorded in every row's lineage.
    models: String,
    /// Commits this run makes for its groups (for error messages).
    count: usize,
    progress: Progress,
}

impl<'a> Groups<'a> {
    fn new(run: &'a Run<'a>, source: &'a Source, pending: usize) -> Result<Self> {
        Ok(Groups {
            run,
            source,
            host: run.run_id.replace(['T', '-'], "").to_ascii_lowercase(),
            models: models_used(run.ctx, &run.job.sql),
            count: pending.div_ceil(run.job.files_per_commit),
            progress: Progress::default(),
        })
    }

    /// A table over just `files`, through a store registered at `lakecap-refresh://HOST`.
    fn files_table(&self, host: &str, files: &[&SourceFile]) -> Result<(url::Url, GroupTable)> {
        let table = GroupTable::new(
            &self.run.ctx.runtime_env(),
            host,
            &self.source.url,
            &self.source.options,
            Arc::clone(&self.source.schema),
            files.iter().map(|f| f.path.clone()).collect(),
        )?;
        Ok((url::Url::parse(table.view())?, table))
    }

    /// Shows progress over the source rows of `pending` (from the parquet
    /// footers, for the ETA) until the returned watch is dropped.
    async fn watch(&self, mode: ProgressMode, pending: &[&SourceFile]) -> Result<progress::Watch> {
        let total = if pending.is_empty() {
            Some(0)
        } else {
            let ctx = self.run.ctx;
            let (all_url, all) = self.files_table(&format!("{}all", self.host), pending)?;
            let plan = ctx
                .read_table(Arc::new(all))?
                .create_physical_plan()
                .await?;
            ctx.runtime_env().deregister_object_store(&all_url)?;
            progress::total_rows(&plan)
        };
        Ok(self.progress.watch(mode, total))
    }

    /// Group `i`: its new rows, transformed, committed with the ledger entry
    /// for its files.
    async fn commit(
        &self,
        sink: &mut dyn Sink,
        i: usize,
        group: &[&SourceFile],
        summary: &mut RunSummary,
    ) -> Result<()> {
        let ctx = self.run.ctx;
        // The group's files, seen through a store that lists only them.
        let (view_url, table) = self.files_table(&format!("{}c{i}", self.host), group)?;
        let (rows, counts) = self.fresh_rows(table, &*sink).await?;
        summary.rows_read += counts.read;
        summary.rows_null_key += counts.null_keys;
        summary.rows_already_done += counts.read - counts.null_keys - counts.fresh;
        let plan = self.transform(rows).await?.create_physical_plan().await?;
        self.progress.scanning(&plan, &view_url);
        let written = self.write(sink, plan, i, group).await?;
        summary.commits += 1;
        summary.rows_written += written;
        self.progress.group_done(counts.read);
        ctx.runtime_env().deregister_object_store(&view_url)?;
        Ok(())
    }

    /// The group's rows with a key the output does not hold yet for this
    /// version (a key anti-join, before any model runs), and the counts.
    async fn fresh_rows(&self, table: GroupTable, sink: &dyn Sink) -> Result<(DataFrame, Counts)> {
        let (ctx, job, key) = (self.run.ctx, self.run.job, self.run.job.key.as_str());
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
        let counts = Counts {
            read,
            null_keys,
            fresh,
        };
        Ok((rows, counts))
    }

    /// The job's SQL over `rows` (registered under the source's name), checked
    /// for its key and lineage's names, with the lineage columns added.
    async fn transform(&self, rows: DataFrame) -> Result<DataFrame> {
        let (ctx, job, key) = (self.run.ctx, self.run.job, self.run.job.key.as_str());
        ctx.deregister_table(job.source.name.as_str())?;
        // A view (not `into_view`'s provider): a cluster plan carries views.
        let view = ViewTable::new(rows.into_unoptimized_plan(), None);
        ctx.register_table(job.source.name.as_str(), Arc::new(view))?;

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
            .with_column(LINEAGE[2], lit(self.models.as_str()))?
            .with_column(LINEAGE[3], lit(processed_at))?;
        if job.output_format == OutputFormat::Delta {
            out = delta_compatible(out)?;
        }
        Ok(out)
    }

    /// Runs `plan` into one commit of the sink, with the group's files as its
    /// ledger entry; returns the rows written.
    async fn write(
        &self,
        sink: &mut dyn Sink,
        plan: Arc<dyn ExecutionPlan>,
        i: usize,
        group: &[&SourceFile],
    ) -> Result<usize> {
        let Run {
            ctx,
            job,
            faults,
            run_id,
            lock,
        } = *self.run;
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
        sink.write(ctx, plan.schema(), streams, &meta)
            .await
            .map_err(|e| tally.blame(e))
            .with_context(|| format!("commit {} of {}", i + 1, self.count))?;
        faults.hit(FaultPoint::AfterCommit);
        Ok(tally.rows.load(Ordering::Relaxed))
    }
}

/// A group's source rows: read, with a NULL key, and not yet in the output.
struct Counts {
    read: usize,
    null_keys: usize,
    fresh: usize,
}

/// The plan running now and the store URL its group's files are read through.
type Scanning = Option<(Arc<dyn ExecutionPlan>, String)>;

/// Source rows read so far: those of the committed groups, plus what the
/// running group's plan has scanned of its files.
#[derive(Default)]
struct Progress {
    before: Arc<AtomicUsize>,
    current: Arc<Mutex<Scanning>>,
}

impl Progress {
    fn watch(&self, mode: ProgressMode, total: Option<usize>) -> progress::Watch {
        let (before, current) = (Arc::clone(&self.before), Arc::clone(&self.current));
        progress::watch(mode, total, move || {
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
    }

    fn scanning(&self, plan: &Arc<dyn ExecutionPlan>, view_url: &url::Url) {
        *self.current.lock().expect("progress lock") = Some((
            Arc::clone(plan),
            view_url.as_str().trim_end_matches('/').to_string(),
        ));
    }

    fn group_done(&self, rows: usize) {
        self.before.fetch_add(rows, Ordering::Relaxed);
        *self.current.lock().expect("progress lock") = None;
    }
}

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
    if uses("vlm") {
        parts.push(format!("vlm={}", o.vlm.model));
    }
    if uses("nsfw_score") {
        parts.push(format!("nsfw={}", o.nsfw_model));
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
    error: Mutex<Option<String>>,
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

/// The source as listed at the start of the run.
struct Source {
    url: ListingTableUrl,
    options: ListingOptions,
    schema: SchemaRef,
    files: Vec<SourceFile>,
}

impl Source {
    /// Files not committed under this version as they are now (new or changed).
    fn pending(&self, ledger: &Ledger) -> Vec<&SourceFile> {
        self.files
            .iter()
            .filter(|f| ledger.done.get(&f.path) != Some(f))
            .collect()
    }
}

/// Step 3: every parquet file of the job's incremental source, by path, with
/// the listing options and schema that each group's table reuses.
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
    let partitions = source_options(Vec::new())
        .infer_partitions(&state, &url)
        .await?;
    let options = source_options(
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

#[cfg(test)]
mod tests {
    use super::*;

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
