//! `lakecap sample-lake` and `lakecap demo`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use lakecap::output::{self, Format};
use lakecap::report::ReportOptions;
use lakecap::sample_lake::{SampleLakeOptions, captions_path, truth_path, write_sample_lake};
use lakecap::{Engine, Vars};

/// The demo pipeline, also runnable as `lakecap run sql/demo.sql -D LAKE=... -D OUT=...`.
const DEMO_SQL: &str = include_str!("../../sql/demo.sql");

/// Kept rows the demo recaptions and fuses (generation on the CPU takes about
/// a second a row).
const FUSE_ROWS: usize = 12;

/// Captions some kept rows with the BLIP captioner, when it is present.
async fn recaption_stage(engine: &Engine) -> Result<()> {
    let model = engine.options().caption_model.clone();
    if lakecap_models::hub::resolve(&model).is_err() {
        eprintln!(
            "note: recaption skipped: BLIP captioner `{model}` not found; put its HF files \
             (config.json, model.safetensors, tokenizer.json, preprocessor_config.json) in the HF \
             cache or set lakecap.caption_model (LAKECAP_CAPTION_MODEL) to a directory"
        );
        return Ok(());
    }
    let b = engine
        .sql(&format!(
            "SELECT alt, recaption(img, 'prompt=a picture of') AS caption FROM decided \
             WHERE dropped_because IS NULL ORDER BY key LIMIT {FUSE_ROWS}"
        ))
        .await?;
    println!("recaption ({model}) of {FUSE_ROWS} kept rows:");
    output::write(&mut std::io::stdout().lock(), &b, Format::Table)?;
    Ok(())
}

/// Fuses the alt texts of some kept rows with the sample lake's image
/// descriptions (standing in for recaption output) and shows them.
async fn fuse_stage(engine: &Engine, lake: &Path) -> Result<()> {
    let llm = engine.options().llm.model.clone();
    let captions = captions_path(lake);
    if lakecap_models::hub::resolve(&llm).is_err() {
        eprintln!(
            "note: fuse skipped: LLM `{llm}` not found; run scripts/fetch-models.sh (SmolLM2) or set \
             lakecap.llm.model (LAKECAP_LLM_MODEL) to a GGUF file or HF directory"
        );
        return Ok(());
    }
    if !captions.is_file() {
        eprintln!(
            "note: fuse skipped: {} not found (made by `lakecap sample-lake`)",
            captions.display()
        );
        return Ok(());
    }
    register_captions(engine, &captions).await?;
    let out = engine
        .run_script(
            &format!(
            "SELECT alt, caption, fuse(alt, caption) AS fused FROM \
               (SELECT d.key, d.alt, c.caption FROM decided d JOIN demo_captions c ON c.key = d.key \
                WHERE d.dropped_because IS NULL AND lower(d.alt) <> lower(c.caption) \
                ORDER BY d.alt_score DESC, d.key LIMIT {FUSE_ROWS})"
            ),
            &Vars::default(),
        )
        .await?;
    let Some(fused) = out.last() else {
        bail!("the fusion query gave no output")
    };
    println!(
        "caption fusion ({llm}) of the {FUSE_ROWS} kept rows with the best alt texts that differ \
         from their image description (fused = caption: the alt text had no facts, or the reply was refused):"
    );
    output::write(&mut std::io::stdout().lock(), &fused.batches, Format::Table)?;
    for w in &fused.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// The sample lake's image descriptions as table `demo_captions`.
async fn register_captions(engine: &Engine, captions: &Path) -> Result<()> {
    engine
        .sql(&format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS demo_captions STORED AS PARQUET LOCATION '{}'",
            captions.display()
        ))
        .await?;
    Ok(())
}

/// Writes the HTML report of every row's fate (table `decided`) next to the
/// curated output: drop reasons, score histograms, sampled rows with their
/// alt text and image description, and the near-duplicate clusters.
async fn report_stage(engine: &Engine, lake: &Path, out: &Path) -> Result<()> {
    let captions = captions_path(lake);
    let (description, join) = if captions.is_file() {
        register_captions(engine, &captions).await?;
        (
            "c.caption AS description,",
            "LEFT JOIN demo_captions c ON c.key = d.key",
        )
    } else {
        ("", "")
    };
    let sql = format!(
        "SELECT d.key, d.alt, {description} d.img, d.alt_score, d.info, d.dropped_because, \
                n.representative AS dup_group \
         FROM decided d LEFT JOIN near n ON n.key = d.key {join} ORDER BY d.key"
    );
    let opts = ReportOptions {
        out: out.with_extension("report.html"),
        title: Some(format!("lakecap demo: {}", lake.display())),
        ..Default::default()
    };
    engine
        .report(
            &sql,
            &Vars::default(),
            "sql/demo.sql (table decided)",
            &opts,
        )
        .await?;
    println!("report: {}", opts.out.display());
    Ok(())
}

/// Runs the model stages whose weights are present on the demo's kept rows
/// (table `decided`), and says how to enable the others.
async fn model_stages(engine: &Engine, lake: &Path) -> Result<()> {
    let options = engine.options();
    let (clip, text) = (options.clip_model.get(), options.text_model.get());
    match lakecap_models::hub::resolve(&clip) {
        Ok(_) => {
            let b = engine
                .sql("SELECT count(s) AS scored, round(avg(s), 2) AS mean FROM \
                      (SELECT clip_score(img, caption) AS s FROM (SELECT img, alt AS caption FROM decided WHERE dropped_because IS NULL))")
                .await?;
            println!("clip_score ({clip}) of the kept rows:");
            output::write(&mut std::io::stdout().lock(), &b, Format::Table)?;
        }
        Err(_) => eprintln!(
            "note: clip_score skipped: CLIP model `{clip}` not found; put its HF files in the HF cache or \
             set lakecap.clip_model (LAKECAP_CLIP_MODEL) to a directory, then run sql/datacomp_filter.sql"
        ),
    }
    match lakecap_models::hub::resolve(&text) {
        Ok(_) => {
            engine
                .sql(
                    "CREATE TABLE demo_alt_emb AS SELECT key, embed_text(alt) AS v FROM decided \
                      WHERE dropped_because IS NULL AND alt IS NOT NULL",
                )
                .await?;
            let b = engine
                .sql(
                    "SELECT count(*) AS captions, count(dup_of) AS paraphrases \
                      FROM semantic_duplicates('demo_alt_emb', 'key', 'v', 0.9)",
                )
                .await?;
            println!("caption dedup ({text}, cosine >= 0.9) of the kept rows:");
            output::write(&mut std::io::stdout().lock(), &b, Format::Table)?;
        }
        Err(_) => eprintln!(
            "note: embed_text skipped: sentence encoder `{text}` not found; run scripts/fetch-models.sh"
        ),
    }
    recaption_stage(engine).await?;
    fuse_stage(engine, lake).await
}

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
    println!(
        "image descriptions per row: {}",
        captions_path(dir).display()
    );
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
    prepare_output(out)?;
    let vars: Vars = [
        ("LAKE".to_string(), format!("{}/", lake.display())),
        ("OUT".to_string(), format!("{}/", out.display())),
    ]
    .into();
    let outputs = engine.run_script(DEMO_SQL, &vars).await?;
    for o in &outputs {
        for w in &o.warnings {
            eprintln!("warning: {w}");
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
    report_stage(engine, lake, out).await?;
    model_stages(engine, lake).await
}
