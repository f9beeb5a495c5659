//! `lakecap refresh` on the sample lake: first run, new shards, changed
//! files, version changes, the crash matrix (a process aborted at each point
//! of a commit, then rerun), the output lock, and bad job files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use lakecap::refresh::{self, Job, RefreshOptions, RunSummary};
use lakecap::sample_lake::{SampleLakeOptions, write_sample_lake};

use crate::common::engine;

/// A lake of `rows` rows (seed `seed`, 8 rows per file) in `dir`.
pub(crate) fn lake(dir: &Path, rows: usize, seed: u64) {
    write_sample_lake(
        dir,
        &SampleLakeOptions {
            rows,
            seed,
            rows_per_file: 8,
        },
    )
    .unwrap();
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(parquet_files(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Adds `from`'s shards to `to` as a new crawl partition.
fn add_shards(from: &Path, to: &Path, crawl: &str) -> usize {
    let files = parquet_files(from);
    let dest = to.join(format!("crawl={crawl}"));
    std::fs::create_dir_all(&dest).unwrap();
    for (i, f) in files.iter().enumerate() {
        std::fs::copy(f, dest.join(format!("part-{i:05}.parquet"))).unwrap();
    }
    files.len()
}

pub(crate) fn job_text(src: &Path, out: &Path, format: &str, version: i64, sql: &str) -> String {
    format!(
        "name = 'curate'\nversion = {version}\nkey = 'key'\nfiles_per_commit = 3\nsql = \"{sql}\"\n\
         [source.lake]\nlocation = '{}'\n[output]\nlocation = '{}'\nformat = '{format}'\n\
         [options]\non_error = 'null'\n",
        src.display(),
        out.display()
    )
}

pub(crate) const SQL: &str =
    "SELECT key, alt, phash(img) AS phash, image_error(img) AS err FROM lake";

pub(crate) fn write_job(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("job.toml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn run(job: &Path) -> anyhow::Result<RunSummary> {
    let e = engine();
    let opts = RefreshOptions {
        progress: lakecap::ProgressMode::Off,
        ..Default::default()
    };
    refresh::run(e.ctx(), &Job::load(job)?, opts).await
}

/// An engine with the output registered as table `o`, read as a user would.
async fn output_table(out: &Path, format: &str) -> lakecap::Engine {
    let e = engine();
    let stored = if format == "delta" {
        "DELTATABLE"
    } else {
        "PARQUET"
    };
    e.sql(&format!(
        "CREATE EXTERNAL TABLE o STORED AS {stored} LOCATION '{}/'",
        out.display()
    ))
    .await
    .unwrap();
    e
}

/// Every output row: (key, job version).
async fn output(out: &Path, format: &str) -> Vec<(String, i64)> {
    let e = output_table(out, format).await;
    let batches = e
        .sql("SELECT key, _lakecap_job_version AS v FROM o")
        .await
        .unwrap();
    batches
        .iter()
        .flat_map(|b: &RecordBatch| {
            let k = cast(b.column(0), &DataType::Utf8).unwrap();
            let v = b
                .column(1)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .clone();
            (0..b.num_rows())
                .map(|i| (k.as_string::<i32>().value(i).to_string(), v.value(i)))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn source_keys(src: &Path) -> Vec<String> {
    let e = engine();
    e.sql(&format!(
        "CREATE EXTERNAL TABLE s STORED AS PARQUET LOCATION '{}/'",
        src.display()
    ))
    .await
    .unwrap();
    let b = e
        .sql("SELECT arrow_cast(key, 'Utf8') FROM s")
        .await
        .unwrap();
    b.iter()
        .flat_map(|b| {
            let k = b.column(0).as_string::<i32>();
            (0..k.len())
                .map(|i| k.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The output holds every source row exactly once.
pub(crate) async fn assert_exactly_once(src: &Path, out: &Path, format: &str) {
    let want: HashSet<String> = source_keys(src).await.into_iter().collect();
    let got = output(out, format).await;
    let keys: HashSet<String> = got.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(got.len(), keys.len(), "duplicate rows in the output");
    assert_eq!(keys, want, "rows lost or invented");
}

async fn incremental(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("lake"), dir.path().join("out"));
    lake(&src, 40, 1);
    let job = write_job(dir.path(), &job_text(&src, &out, format, 1, SQL));

    let first = run(&job).await.unwrap();
    let files = parquet_files(&src).len();
    assert_eq!(first.files_total, files);
    assert_eq!(first.files_processed, files);
    assert_eq!(first.commits, files.div_ceil(3));
    assert_eq!((first.rows_read, first.rows_written), (40, 40));
    assert_exactly_once(&src, &out, format).await;

    // Nothing new: nothing read, nothing committed.
    let again = run(&job).await.unwrap();
    assert_eq!(
        (again.files_processed, again.commits, again.rows_written),
        (0, 0, 0)
    );

    // New shards: only their rows.
    let extra = dir.path().join("extra");
    lake(&extra, 30, 2);
    let added = add_shards(&extra, &src, "2099-01");
    let third = run(&job).await.unwrap();
    assert_eq!(third.files_processed, added);
    assert_eq!((third.rows_read, third.rows_written), (30, 30));
    assert_eq!(third.rows_already_done, 0);
    assert_exactly_once(&src, &out, format).await;

    // A changed file (old rows plus new ones): only the new rows are written.
    let victim = parquet_files(&src.join("crawl=2099-01"))[0].clone();
    let more = dir.path().join("more");
    lake(&more, 8, 3);
    let e = engine();
    // Written as the lake's writer does (no Arrow schema hint, so plain Utf8 like its siblings).
    e.sql(&format!(
        "SET datafusion.execution.parquet.skip_arrow_metadata = true;
         CREATE EXTERNAL TABLE a STORED AS PARQUET LOCATION '{}';
         CREATE EXTERNAL TABLE b STORED AS PARQUET LOCATION '{}';
         COPY (SELECT key, url, alt, img FROM a UNION ALL SELECT key, url, alt, img FROM b)
           TO '{}.new' STORED AS PARQUET",
        victim.display(),
        parquet_files(&more)[0].display(),
        victim.display()
    ))
    .await
    .unwrap();
    std::fs::rename(victim.with_extension("parquet.new"), &victim).unwrap();
    let fourth = run(&job).await.unwrap();
    assert_eq!((fourth.files_processed, fourth.files_changed), (1, 1));
    assert_eq!(fourth.rows_already_done, 8);
    assert_eq!(fourth.rows_written, fourth.rows_read - 8);
    assert_exactly_once(&src, &out, format).await;

    // Lineage on every row.
    let e = output_table(&out, format).await;
    let b = e
        .sql(
            "SELECT count(*) FROM o WHERE _lakecap_job = 'curate' AND _lakecap_job_version = 1 \
             AND _lakecap_processed_at IS NOT NULL AND _lakecap_models = ''",
        )
        .await
        .unwrap();
    let n = b[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(n as usize, source_keys(&src).await.len());
}

#[tokio::test]
async fn delta_output_processes_only_what_is_new() {
    incremental("delta").await;
}

#[tokio::test]
async fn parquet_output_processes_only_what_is_new() {
    incremental("parquet").await;
}

#[tokio::test]
async fn a_new_version_reprocesses_and_replaces() {
    for format in ["delta", "parquet"] {
        let dir = tempfile::tempdir().unwrap();
        let (src, out) = (dir.path().join("lake"), dir.path().join("out"));
        lake(&src, 24, 4);
        let job = write_job(dir.path(), &job_text(&src, &out, format, 1, SQL));
        run(&job).await.unwrap();
        let v2 = "SELECT key, alt, length(alt) AS alt_len FROM lake";
        let job = write_job(dir.path(), &job_text(&src, &out, format, 2, v2));
        let s = run(&job).await.unwrap();
        assert_eq!(s.files_processed, s.files_total, "{format}");
        assert_eq!(s.replaced_version, Some(1), "{format}");
        assert_eq!(s.rows_written, 24);
        let rows = output(&out, format).await;
        assert_eq!(rows.len(), 24, "{format}");
        assert!(rows.iter().all(|(_, v)| *v == 2), "{format}");
        assert_exactly_once(&src, &out, format).await;
        // And the next run at version 2 has nothing to do.
        assert_eq!(run(&job).await.unwrap().rows_written, 0);
    }
}

fn lakecap(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lakecap"));
    c.env("LAKECAP_HOME", home).arg("--no-progress");
    for (k, _) in std::env::vars() {
        if k.starts_with("LAKECAP_") && k != "LAKECAP_HOME" {
            c.env_remove(k);
        }
    }
    c
}

/// `lakecap refresh JOB` with `home` as LAKECAP_HOME.
fn refresh(home: &Path, job: &Path) -> Command {
    let mut c = lakecap(home);
    c.arg("refresh").arg(job);
    c
}

#[tokio::test]
async fn a_crash_at_any_point_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("lake");
    lake(&src, 40, 5);
    let points = [
        "mid_batch@1",
        "mid_batch@2",
        "before_commit@2",
        "during_commit@1",
        "during_commit@2",
        "after_commit@2",
    ];
    for format in ["delta", "parquet"] {
        for point in points {
            let case = dir
                .path()
                .join(format!("{format}-{}", point.replace('@', "-")));
            std::fs::create_dir_all(&case).unwrap();
            let out = case.join("out");
            let job = write_job(&case, &job_text(&src, &out, format, 1, SQL));
            let crashed = refresh(dir.path(), &job)
                .env("LAKECAP_FAULT", point)
                .output()
                .unwrap();
            assert!(
                !crashed.status.success(),
                "{format} {point}: the run should have crashed"
            );
            let stderr = String::from_utf8_lossy(&crashed.stderr);
            assert!(
                stderr.contains("injected crash"),
                "{format} {point}: {stderr}"
            );
            let rerun = refresh(dir.path(), &job).output().unwrap();
            let stderr = String::from_utf8_lossy(&rerun.stderr);
            assert!(rerun.status.success(), "{format} {point}: {stderr}");
            assert!(
                stderr.contains("taking over a stale lock"),
                "{format} {point}: {stderr}"
            );
            assert_exactly_once(&src, &out, format).await;
        }
    }
}

#[tokio::test]
async fn a_second_run_on_a_locked_output_exits_or_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("lake"), dir.path().join("out"));
    lake(&src, 16, 6);
    let job = write_job(dir.path(), &job_text(&src, &out, "delta", 1, SQL));
    // A lock held by a live process: this test.
    let lock = out.join("_lakecap/lock.json");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    std::fs::write(
        &lock,
        format!(
            r#"{{"job":"curate","run":"held","host":"{host}","pid":{},"started":{now},"heartbeat":{now}}}"#,
            std::process::id()
        ),
    )
    .unwrap();
    let second = refresh(dir.path(), &job).output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("output is locked by job 'curate' (run held")
            && stderr.contains("pass --wait"),
        "{stderr}"
    );
    assert!(
        !out.join("_delta_log").exists(),
        "the locked-out run wrote nothing"
    );

    let waiting = refresh(dir.path(), &job)
        .arg("--wait")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::fs::remove_file(&lock).unwrap();
    let done = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(stderr.contains("waiting for run held"), "{stderr}");
    assert_exactly_once(&src, &out, "delta").await;

    // Both runs are in the job's history.
    let status = lakecap(dir.path())
        .args(["jobs", "status"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("curate") && table.contains("2 runs, 1 failed"),
        "{table}"
    );
}

#[tokio::test]
async fn bad_jobs_and_missing_sources_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("lake"), dir.path().join("out"));
    lake(&src, 8, 7);
    let cases = [
        (
            job_text(&dir.path().join("nowhere"), &out, "delta", 1, SQL),
            "source 'lake'",
        ),
        (
            job_text(&src, &out, "delta", 1, "SELECT alt FROM lake"),
            "no column 'key' (the job's key)",
        ),
        (
            job_text(
                &src,
                &out,
                "delta",
                1,
                "SELECT key, nonsense(alt) FROM lake",
            ),
            "the transform SQL",
        ),
        (
            job_text(
                &src,
                &out,
                "delta",
                1,
                "SELECT key, alt AS _lakecap_job FROM lake",
            ),
            "lakecap's lineage",
        ),
        (
            job_text(
                &src,
                &out,
                "delta",
                1,
                "SELECT key, CAST(alt AS INT) AS n FROM lake",
            ),
            "the transform failed: ",
        ),
        (
            job_text(&src, &out, "delta", 1, SQL)
                .replace("on_error = 'null'", "on_error = 'maybe'"),
            "[options] on_error = 'maybe'",
        ),
    ];
    for (text, want) in cases {
        let job = write_job(dir.path(), &text);
        let err = format!("{:#}", run(&job).await.unwrap_err());
        assert!(err.contains(want), "{want}: {err}");
        // A failed run releases the lock.
        assert!(!out.join("_lakecap/lock.json").exists(), "{want}");
    }
}

#[test]
fn the_shipped_job_runs_on_the_sample_lake_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
    let job = dir.path().join("jobs/curate.toml");
    std::fs::copy(crate::common::root().join("jobs/curate.toml"), &job).unwrap();
    lake(&dir.path().join("sample_lake"), 24, 8);
    let first = refresh(dir.path(), &job).output().unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("refresh curate v1"), "{stderr}");
    // The transform keeps decodable images only; every source file is done.
    let written: usize = stderr
        .split(" with NULL key skipped, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(written > 0 && written < 24, "{stderr}");
    let second = refresh(dir.path(), &job).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(", 0 processed (0 changed)"), "{stderr}");
    assert!(stderr.contains(" 0 commits"), "{stderr}");
}
