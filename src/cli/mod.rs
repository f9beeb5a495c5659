//! Subcommand implementations.

pub mod demo;
pub mod models;
pub mod refresh;
pub mod report;
pub mod serve;
pub mod shell;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use datafusion::config::ExtensionOptions;
use lakecap::output::{self, Format};
use lakecap::{Engine, StatementOutput, Vars};

pub fn parse_define(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got '{s}'")),
    }
}

/// Prints one statement's result: rows to `out`, status and warnings to stderr.
pub fn report(o: &StatementOutput, format: Format, out: &mut dyn Write) -> Result<()> {
    let has_columns = o.batches.first().is_some_and(|b| b.num_columns() > 0);
    if has_columns {
        output::write(out, &o.batches, format)?;
    }
    eprintln!("{} row(s) in {:.2}s", o.rows(), o.elapsed.as_secs_f64());
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// Output options shared by `sql`, `run` and `shell`.
#[derive(clap::Args, Clone)]
pub struct OutputArgs {
    /// Result format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub format: Format,
    /// Write query results to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Script variable for ${NAME} placeholders, as NAME=VALUE (repeatable).
    #[arg(long = "define", short = 'D', value_parser = parse_define)]
    pub defines: Vec<(String, String)>,
}

pub async fn run_sql(engine: &Engine, sql: &str, out: &OutputArgs) -> Result<()> {
    let (defines, format, file) = (&out.defines, out.format, out.output.as_deref());
    let vars: Vars = defines.iter().cloned().collect();
    let mut sink: Box<dyn Write> = match file {
        Some(p) => {
            Box::new(File::create(p).with_context(|| format!("cannot write {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    engine
        .run_script_with(sql, &vars, |o| report(&o, format, &mut sink))
        .await?;
    sink.flush()?;
    Ok(())
}

pub async fn print_functions(engine: &Engine) -> Result<()> {
    for udf in lakecap::scalar_functions(engine.diagnostics(), &engine.options()) {
        let Some(doc) = lakecap::documentation(&udf) else {
            bail!("function {} has no documentation", udf.name())
        };
        println!(
            "{}\n    {}\n    e.g. {}\n",
            doc.syntax_example,
            doc.description,
            doc.sql_example.as_deref().unwrap_or("")
        );
    }
    println!(
        "near_duplicates('table', 'key_column', 'hash_column', max_hamming)\n    Table of near-duplicate clusters (key, cluster_id, representative, distance).\n"
    );
    println!(
        "semantic_duplicates('table', 'key_column', 'embedding_column', threshold [, clusters])\n    SemDeDup verdicts (key, cluster, dup_of, similarity).\n"
    );
    println!(
        "kmeans('table', 'key_column', 'vector_column', k [, 'iters=20; seed=0; metric=cosine'])\n    Spherical k-means clusters (key, cluster, distance = 1 - cosine to the centroid).\n"
    );
    println!(
        "knn('queries', 'qkey', 'qvec', 'corpus', 'ckey', 'cvec', k)\n    Each query's k nearest corpus rows by cosine, exact (qkey, ckey, rank, similarity).\n"
    );
    println!(
        "caption_stats(caption)  (aggregate)\n    {{rows, mean_words, median_words, vocab, distinct_1, distinct_2, mean_chars}} of a set of captions."
    );
    println!("\nOptions (SET lakecap.<name> = ...; lakecap.toml; LAKECAP_<NAME>):");
    for e in engine.options().entries() {
        println!(
            "  {} = {}\n      {}",
            e.key,
            e.value.unwrap_or_default(),
            e.description
        );
    }
    Ok(())
}
