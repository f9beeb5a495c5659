//! Progress of long queries: rows scanned, rows/s, elapsed and ETA.
//!
//! Progress is read from the running physical plan itself: its file scans'
//! live `output_rows` metrics give rows scanned, and their statistics (parquet
//! footers) give the total, so every statement, `COPY` included, reports
//! without any cooperation from the functions it runs.
//!
//! Only file scans count, on both sides: other leaves (in-memory tables such
//! as `CREATE TABLE ... AS` results, `VALUES`) know their row count but report
//! no rows as they go, so counting them in the total left the bar short of
//! 100% (a join of a 240-row table with a 240-row parquet file showed
//! 240/480). A file scanned twice (a self-join) counts twice on both sides.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext, collect};
use indicatif::{ProgressBar, ProgressStyle};

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Nothing.
    Off,
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// A line on stderr every few seconds (logs, CI).
    Plain,
}

/// Nothing is shown for statements quicker than this.
const SHOW_AFTER: Duration = Duration::from_secs(1);
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The file scans under `plan`: the leaves progress counts.
fn file_scans(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<Arc<dyn ExecutionPlan>>) {
    if scan_config(plan).is_some() {
        out.push(Arc::clone(plan));
    }
    for c in plan.children() {
        file_scans(c, out);
    }
}

fn scan_config(plan: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    plan.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()
}

/// Rows the scans have produced so far.
fn rows_out(scans: &[Arc<dyn ExecutionPlan>]) -> usize {
    scans
        .iter()
        .filter_map(|l| l.metrics().and_then(|m| m.output_rows()))
        .sum()
}

/// Rows the plan's file scans have produced so far.
pub fn scanned_rows(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut scans = Vec::new();
    file_scans(plan, &mut scans);
    rows_out(&scans)
}

/// Rows of store `store_url` (`scheme://host`) the plan has read so far:
/// the furthest of its scans of that store, since a transform that reads
/// its source twice (a self-join) reads the same rows twice and the bar's
/// total counts them once.
pub fn scanned_rows_from(plan: &Arc<dyn ExecutionPlan>, store_url: &str) -> usize {
    let mut scans = Vec::new();
    file_scans(plan, &mut scans);
    scans.retain(|l| {
        scan_config(l).is_some_and(|c| c.object_store_url.as_str().starts_with(store_url))
    });
    scans
        .iter()
        .filter_map(|l| l.metrics().and_then(|m| m.output_rows()))
        .max()
        .unwrap_or(0)
}

/// Rows the plan's file scans will produce, when their statistics say;
/// `None` also for a plan that scans no file (nothing would count towards it).
pub fn total_rows(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    let mut scans = Vec::new();
    file_scans(plan, &mut scans);
    if scans.is_empty() {
        return None;
    }
    let stats = StatisticsContext::new();
    let args = StatisticsArgs::new();
    scans
        .iter()
        .map(|l| {
            stats
                .compute(l.as_ref(), &args)
                .ok()
                .and_then(|s| s.num_rows.get_value().copied())
        })
        .sum()
}

/// One plain progress line.
pub fn plain_line(rows: usize, total: Option<usize>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = rows as f64 / secs;
    match total {
        Some(t) if t > 0 => {
            let eta = if rate > 0.0 {
                format!("{:.0}s", t.saturating_sub(rows) as f64 / rate)
            } else {
                "?".into()
            };
            format!(
                "lakecap: {rows}/{t} rows ({:.0}%), {rate:.0} rows/s, {secs:.0}s elapsed, ETA {eta}",
                100.0 * rows as f64 / t as f64
            )
        }
        _ => format!("lakecap: {rows} rows, {rate:.0} rows/s, {secs:.0}s elapsed"),
    }
}

/// A progress display fed by a row counter; it stops when dropped.
pub struct Watch {
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Aborting drops the bar, which clears it from the terminal.
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
    }
}

/// Shows `rows()` against `total` per `mode` until the returned [`Watch`] is dropped.
pub fn watch(
    mode: ProgressMode,
    total: Option<usize>,
    rows: impl Fn() -> usize + Send + 'static,
) -> Watch {
    display(mode, Some((total, Box::new(rows))))
}

/// Rows against an optional total, or `None` for a query running on a
/// cluster, whose scans this process cannot see: time only.
type Counted = Option<(Option<usize>, Box<dyn Fn() -> usize + Send>)>;

fn display(mode: ProgressMode, counted: Counted) -> Watch {
    if mode == ProgressMode::Off {
        return Watch { ticker: None };
    }
    let tty = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
    let ticker = tokio::spawn(async move {
        let start = Instant::now();
        tokio::time::sleep(SHOW_AFTER).await;
        if tty {
            let (bar, template) = match &counted {
                Some((Some(t), _)) => (ProgressBar::new(*t as u64), ROWS_TEMPLATE),
                Some((None, _)) => (ProgressBar::new_spinner(), ROWS_TEMPLATE),
                None => (ProgressBar::new_spinner(), CLUSTER_TEMPLATE),
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            loop {
                match &counted {
                    Some((_, rows)) => bar.set_position(rows() as u64),
                    None => bar.tick(),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        } else {
            loop {
                let line = match &counted {
                    Some((total, rows)) => plain_line(rows(), *total, start.elapsed()),
                    None => format!(
                        "lakecap: running on the cluster, {:.0}s elapsed (lakecap cluster status shows its stages)",
                        start.elapsed().as_secs_f64()
                    ),
                };
                eprintln!("{line}");
                tokio::time::sleep(PLAIN_EVERY).await;
            }
        }
    });
    Watch {
        ticker: Some(ticker),
    }
}

const ROWS_TEMPLATE: &str =
    "{spinner} [{bar:30}] {human_pos}/{human_len} rows  {per_sec}  {elapsed}  ETA {eta}";
const CLUSTER_TEMPLATE: &str = "{spinner} running on the cluster  {elapsed}";

/// Whether `plan` runs on a Ballista cluster (its scans are not in this process).
fn on_cluster(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.name().starts_with("Distributed") || plan.children().iter().any(|c| on_cluster(c))
}

/// Runs `plan` to completion, showing progress per `mode`.
pub async fn collect_with_progress(
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    mode: ProgressMode,
) -> Result<Vec<RecordBatch>> {
    let _watch = watch_plan(&plan, mode);
    collect(plan, task_ctx).await
}

/// Shows `plan`'s progress per `mode` until the returned [`Watch`] is dropped:
/// rows scanned against the total, or time only on a cluster.
pub fn watch_plan(plan: &Arc<dyn ExecutionPlan>, mode: ProgressMode) -> Watch {
    let watched = Arc::clone(plan);
    if on_cluster(plan) {
        display(mode, None)
    } else {
        watch(mode, total_rows(plan), move || scanned_rows(&watched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[test]
    fn plain_line_has_rate_and_eta() {
        let l = plain_line(500, Some(2000), Duration::from_secs(10));
        assert_eq!(
            l,
            "lakecap: 500/2000 rows (25%), 50 rows/s, 10s elapsed, ETA 30s"
        );
        assert_eq!(
            plain_line(7, None, Duration::from_secs(1)),
            "lakecap: 7 rows, 7 rows/s, 1s elapsed"
        );
    }

    #[tokio::test]
    async fn counts_rows_scanned_from_plan_metrics() {
        let ctx = SessionContext::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        ctx.sql(&format!(
            "COPY (SELECT * FROM generate_series(1, 5000) t(x)) TO '{}' STORED AS PARQUET",
            path.display()
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let df = ctx
            .read_parquet(path.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        let df = df
            .filter(datafusion::prelude::col("x").gt(datafusion::prelude::lit(4000)))
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        assert_eq!(total_rows(&plan), Some(5000));
        let out = collect_with_progress(Arc::clone(&plan), ctx.task_ctx(), ProgressMode::Plain)
            .await
            .unwrap();
        assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 1000);
        assert_eq!(scanned_rows(&plan), 5000);
    }

    /// Runs `sql` as scripts do; returns the rows its file scans produced and
    /// the total the bar was given.
    async fn rows_done_and_total(ctx: &SessionContext, sql: &str) -> (usize, Option<usize>) {
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let total = total_rows(&plan);
        collect_with_progress(Arc::clone(&plan), ctx.task_ctx(), ProgressMode::Off)
            .await
            .unwrap();
        (scanned_rows(&plan), total)
    }

    #[tokio::test]
    async fn the_bar_ends_full_when_memory_tables_join_files() {
        // As `lakecap demo`: `decided` is a `CREATE TABLE ... AS` result (in
        // memory), joined with a 240-row parquet file of captions.
        let ctx = SessionContext::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.parquet");
        ctx.sql(&format!(
            "COPY (SELECT x AS key, 'a photo ' || x AS caption FROM generate_series(1, 240) t(x)) \
             TO '{}' STORED AS PARQUET",
            path.display()
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        ctx.sql(&format!(
            "CREATE EXTERNAL TABLE captions STORED AS PARQUET LOCATION '{}'",
            path.display()
        ))
        .await
        .unwrap();
        ctx.sql(
            "CREATE TABLE decided AS SELECT x AS key, 'alt ' || x AS alt, \
             CASE WHEN x % 3 = 0 THEN 'duplicate' END AS dropped_because \
             FROM generate_series(1, 240) t(x)",
        )
        .await
        .unwrap();
        let join = "SELECT d.alt, c.caption FROM decided d JOIN captions c ON c.key = d.key \
                    WHERE d.dropped_because IS NULL AND lower(d.alt) <> lower(c.caption)";
        assert_eq!(rows_done_and_total(&ctx, join).await, (240, Some(240)));
        // A file scanned twice counts twice, done and total alike.
        let self_join = "SELECT a.key FROM captions a JOIN captions b ON a.key = b.key";
        assert_eq!(rows_done_and_total(&ctx, self_join).await, (480, Some(480)));
        // A refresh's bar counts a source read twice once (its total does).
        let plan = ctx
            .sql(self_join)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        collect_with_progress(Arc::clone(&plan), ctx.task_ctx(), ProgressMode::Off)
            .await
            .unwrap();
        assert_eq!(scanned_rows_from(&plan, "file://"), 240);
        // Nothing read from files: no total to fall short of.
        let memory = "SELECT key FROM decided WHERE dropped_because IS NULL";
        assert_eq!(rows_done_and_total(&ctx, memory).await, (0, None));
    }
}
