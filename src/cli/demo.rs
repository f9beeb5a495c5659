//! `lakecap sample-lake` and `lakecap demo`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use lakecap::output::{self, Format};
use lakecap::sample_lake::{SampleLakeOptions, truth_path, write_sample_lake};
use lakecap::{Engine, Vars};

/// The demo pipeline, also runnable as `lakecap run sql/demo.sql -D LAKE=... -D OUT=...`.
const DEMO_SQL: &str = include_str!("../../sql/demo.sql");

/// Model stages of the full recipe and what enables them.
const MODEL_STAGES: &[(&str, &str)] = &[
    (
        "clip_score",
        "CLIP filtering: needs the model runtime and CLIP weights (HF layout) in the HF cache",
    ),
    (
        "recaption",
        "recaptioning: needs a BLIP captioner (HF layout) in the HF cache",
    ),
    (
        "fuse",
        "caption fusion: needs an LLM (e.g. SmolLM2 GGUF via scripts/fetch-models.sh)",
    ),
];

pub fn sample_lake(dir: &Path, rows: usize, seed: u64) -> Result<()> {
    let report = write_sample_lake(
        dir,
        &SampleLakeOptions {
            rows,
            seed,
            ..Default::default()
        },
    )?;
    println!(
        "wrote {} rows in {} parquet files to {}",
        report.rows,
        report.files.len(),
        dir.display()
    );
    for (defect, n) in &report.defects {
        println!("  {defect:<24} {n}");
    }
    println!("ground truth per row: {}", truth_path(dir).display());
    Ok(())
}

/// True when `out` holds only what the demo writes: `crawl=*/` folders of parquet files.
/// (No marker file: any extra file at a lake's root breaks hive-partition inference.)
fn is_demo_output(out: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !path.is_dir() || !name.starts_with("crawl=") {
            return Ok(false);
        }
        for file in std::fs::read_dir(&path)? {
            if file?.path().extension().is_none_or(|e| e != "parquet") {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn prepare_output(out: &Path) -> Result<()> {
    if out.exists() {
        if !is_demo_output(out)? {
            bail!(
                "{} exists and was not written by the demo: choose another --out",
                out.display()
            );
        }
        std::fs::remove_dir_all(out)
            .with_context(|| format!("cannot replace {}", out.display()))?;
    }
    std::fs::create_dir_all(out)?;
    Ok(())
}

fn count(batches: &[RecordBatch], outcome: impl Fn(&str) -> bool) -> i64 {
    batches
        .iter()
        .flat_map(|b| {
            let names = b
                .column(0)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect::<Vec<_>>();
            let rows = b.column(1).as_primitive::<Int64Type>().values().to_vec();
            names.into_iter().zip(rows)
        })
        .filter(|(n, _)| outcome(n))
        .map(|(_, r)| r)
        .sum()
}

pub async fn run(engine: &Engine, lake: &Path, out: &Path, rows: usize) -> Result<()> {
    let has_lake = lake.is_dir() && std::fs::read_dir(lake)?.next().is_some();
    if !has_lake {
        eprintln!("making the sample lake in {} ...", lake.display());
        sample_lake(lake, rows, 42)?;
    }
    for (name, what) in MODEL_STAGES {
        eprintln!("note: {name} skipped: {what}");
    }
    prepare_output(out)?;
    let vars: Vars = [
        ("LAKE".to_string(), format!("{}/", lake.display())),
        ("OUT".to_string(), format!("{}/", out.display())),
    ]
    .into();
    let outputs = engine.run_script(DEMO_SQL, &vars).await?;
    for o in &outputs {
        for w in &o.warnings {
            eprintln!(
                "warning: {}({}): {} row(s) gave NULL: {}",
                w.function, w.column, w.count, w.kind
            );
        }
    }
    let summary = &outputs
        .last()
        .context("demo.sql ends with its summary query")?
        .batches;
    let rows_in = count(summary, |_| true);
    let rows_out = count(summary, |n| n == "kept");
    println!("rows in:  {rows_in}");
    println!("dropped:");
    let dropped: Vec<RecordBatch> = summary.to_vec();
    output::write(&mut std::io::stdout().lock(), &dropped, Format::Table)?;
    println!(
        "rows out: {rows_out} (curated parquet in {})",
        out.display()
    );
    Ok(())
}
