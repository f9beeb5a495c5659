//! Runs every `tests/slt/*.slt` file (sqllogictest) against a lakecap engine.
//!
//! Each file gets a fresh engine with these tables registered:
//! - `photos(name, img)`: the real photos in data/photos;
//! - `corpus(name, img)`: the committed bad-input corpus in tests/data/bad;
//! - `lake`: a 60-row sample lake (seed 7) written to a temporary folder, and
//!   `truth`: its ground truth (planted defects per key).
//!
//! A file whose first line is `# requires model: ID` needs real weights
//! (scripts/fetch-models.sh): without them it is skipped with a note, unless
//! `LAKECAP_REQUIRE_MODELS=1` (CI) makes that a failure.
//!
//! `LAKECAP_SLT_COMPLETE=1 cargo test --test slt` rewrites the expected results
//! in place (review the diff before committing).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use lakecap::Engine;
use lakecap::sample_lake::{SampleLakeOptions, truth_path, write_sample_lake};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

struct Db {
    engine: Engine,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real model a file needs (its first line `# requires model: ID`)
/// when it is not installed.
fn missing_model(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let id = text
        .lines()
        .next()?
        .strip_prefix("# requires model: ")?
        .trim();
    lakecap_models::hub::resolve(id)
        .is_err()
        .then(|| id.to_string())
}

fn files_table(dir: &Path) -> RecordBatch {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.retain(|p| p.is_file() && p.extension().is_none_or(|e| e != "tsv" && e != "md"));
    entries.sort();
    let names: StringArray = entries
        .iter()
        .map(|p| Some(p.file_name().unwrap().to_string_lossy().into_owned()))
        .collect();
    let bytes: Vec<Vec<u8>> = entries.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let imgs: BinaryArray = bytes.iter().map(|b| Some(b.as_slice())).collect();
    RecordBatch::try_from_iter(vec![
        ("name", Arc::new(names) as ArrayRef),
        ("img", Arc::new(imgs) as ArrayRef),
    ])
    .unwrap()
}

impl Db {
    async fn new(lake: &Path) -> Db {
        let engine = Engine::with_options(lakecap::EngineOptions {
            ignore_env: true,
            progress: lakecap::ProgressMode::Off,
            ..Default::default()
        })
        .unwrap();
        let ctx = engine.ctx();
        ctx.register_batch("photos", files_table(&root().join("data/photos")))
            .unwrap();
        ctx.register_batch("corpus", files_table(&root().join("tests/data/bad")))
            .unwrap();
        engine
            .sql(&format!(
                "CREATE EXTERNAL TABLE lake STORED AS PARQUET LOCATION '{}/'",
                lake.display()
            ))
            .await
            .unwrap();
        engine
            .sql(&format!(
                "CREATE EXTERNAL TABLE truth STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
                truth_path(lake).display()
            ))
            .await
            .unwrap();
        Db { engine }
    }
}

#[async_trait::async_trait]
impl AsyncDB for Db {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let batches = self
            .engine
            .sql(sql)
            .await
            .map_err(|e| SltError(format!("{e:#}")))?;
        let columns = batches.first().map_or(0, RecordBatch::num_columns);
        if columns == 0 {
            return Ok(DBOutput::StatementComplete(0));
        }
        let opts = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for b in &batches {
            let fmts: Vec<_> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
                .collect();
            for i in 0..b.num_rows() {
                rows.push(
                    fmts.iter()
                        .map(|f| {
                            let s = f.value(i).to_string();
                            if s.is_empty() {
                                "(empty)".to_string()
                            } else {
                                s
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lakecap"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictests() {
    let lake = tempfile::tempdir().unwrap();
    write_sample_lake(
        lake.path(),
        &SampleLakeOptions {
            rows: 60,
            seed: 7,
            rows_per_file: 25,
        },
    )
    .unwrap();
    let lake_path = lake.path().to_path_buf();
    let mut files: Vec<_> = std::fs::read_dir(root().join("tests/slt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "slt"));
    files.sort();
    assert!(files.len() >= 5, "expected the .slt files, found {files:?}");
    let complete = std::env::var("LAKECAP_SLT_COMPLETE").is_ok();
    let mut failures = Vec::new();
    for file in &files {
        if let Some(id) = missing_model(file) {
            assert!(
                std::env::var("LAKECAP_REQUIRE_MODELS").is_err(),
                "{}: {id} missing: run scripts/fetch-models.sh",
                file.display()
            );
            eprintln!(
                "skipping {}: {id} not found (run scripts/fetch-models.sh)",
                file.display()
            );
            continue;
        }
        let lake_path = lake_path.clone();
        let mut runner = Runner::new(move || {
            let lake_path = lake_path.clone();
            async move { Ok(Db::new(&lake_path).await) }
        });
        runner.with_column_validator(|_, _| true);
        if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    |_, _| true,
                )
                .await
                .unwrap();
        } else if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
