//! `lakecap report`: one self-contained HTML page about a query's result or
//! a lake: rows in and out with the drop reasons, histograms of every
//! numeric column (struct fields included) and of each text column's words,
//! a sampled grid of thumbnails beside the row's text columns, and the
//! biggest near-duplicate clusters as rows of thumbnails.
//!
//! The script's statements run as `lakecap run` runs them; the last one is
//! streamed with progress into [`collect::Collected`], so memory stays
//! bounded whatever the row count, and only the rows shown are decoded for
//! thumbnails. Columns play parts by name unless named in [`Roles`]: `key`,
//! the image (`img`, `image`, else the first binary column), the drop reason
//! (`dropped_because`, NULL = kept) and the near-duplicate cluster
//! (`dup_group`, e.g. `near_duplicates`' `representative`).

mod collect;
mod html;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine as _;
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use lakecap_models::image::{DecodeLimits, decode, thumbnail_jpeg};

pub use collect::Roles;

use crate::progress::watch_plan;
use crate::{Engine, Vars, script};

/// Longest side of a thumbnail, in pixels.
const THUMB_SIDE: u32 = 200;
/// Near-duplicate clusters shown.
const CLUSTERS_SHOWN: usize = 24;

/// How to report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub out: PathBuf,
    /// Page title (default: "lakecap report").
    pub title: Option<String>,
    /// Rows in the sampled grid.
    pub sample: usize,
    /// Seed of the row and value sampling.
    pub seed: u64,
    pub roles: Roles,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("report.html"),
            title: None,
            sample: 48,
            seed: 0,
            roles: Roles::default(),
        }
    }
}

/// What a report found, for the caller to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSummary {
    pub rows_in: u64,
    pub rows_out: u64,
    pub bytes: u64,
}

/// The SQL to report on `input` and how the page names it: a `.sql` file
/// (its last statement is reported), a parquet lake (a folder or file, local
/// or an object-store URL), or a query.
pub fn input_sql(input: &str) -> Result<(String, String)> {
    let path = Path::new(input);
    if input.ends_with(".sql") {
        let sql = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return Ok((sql, input.to_string()));
    }
    // A URL is one word with a scheme: a query mentioning 'http://…' is a query.
    let url = !input.contains(char::is_whitespace)
        && input.split_once("://").is_some_and(|(scheme, _)| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        });
    let lake = path.is_dir() || input.ends_with(".parquet") || url;
    if lake {
        let location = input.replace('\'', "''");
        return Ok((
            format!(
                "CREATE EXTERNAL TABLE report_input STORED AS PARQUET LOCATION '{location}'; \
                 SELECT * FROM report_input"
            ),
            input.to_string(),
        ));
    }
    Ok((input.to_string(), input.to_string()))
}

/// A thumbnail as a `data:` URI, or why there is none.
fn thumb(bytes: &[u8], limits: DecodeLimits) -> html::Thumb {
    let img = decode(bytes, limits).map_err(|e| e.to_string())?;
    let jpeg = thumbnail_jpeg(&img, THUMB_SIDE).map_err(|e| e.to_string())?;
    Ok(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    ))
}

impl Engine {
    /// Runs `sql` (after `${VAR}` substitution) and writes the HTML report
    /// of its last statement's rows to `opts.out`; `source` is how the page
    /// names the input.
    pub async fn report(
        &self,
        sql: &str,
        vars: &Vars,
        source: &str,
        opts: &ReportOptions,
    ) -> Result<ReportSummary> {
        let mut statements = script::parse(sql, vars)?;
        let last = statements
            .pop()
            .expect("parse gives at least one statement");
        let mut warnings = Vec::new();
        script::run_statements(
            &self.ctx,
            &self.diagnostics,
            self.progress,
            statements,
            |o| {
                warnings.extend(o.warnings.iter().map(ToString::to_string));
                Ok(())
            },
        )
        .await?;
        self.diagnostics.take();
        let text = last.to_string();
        let collected = async {
            let (plan, task) = script::physical_plan(&self.ctx, last, self.progress).await?;
            let mut collected =
                collect::Collected::new(&plan.schema(), &opts.roles, opts.sample, opts.seed)?;
            let _watch = watch_plan(&plan, self.progress);
            let mut stream = execute_stream(plan, task)?;
            while let Some(batch) = stream.next().await {
                collected.add(&batch?)?;
            }
            anyhow::Ok(collected)
        }
        .await
        .with_context(|| format!("the report's query failed: {text}"))?;
        warnings.extend(self.diagnostics.take().iter().map(ToString::to_string));

        let limits = self.options().decode_limits();
        let title = opts
            .title
            .clone()
            .unwrap_or_else(|| "lakecap report".into());
        let meta = html::Meta {
            title,
            source: source.to_string(),
            generated: chrono::Local::now()
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string(),
            warnings,
        };
        let collected = Arc::new(collected);
        let page = {
            let collected = Arc::clone(&collected);
            tokio::task::spawn_blocking(move || {
                let draw = |r: &collect::Row| r.image.as_deref().map(|b| thumb(b, limits));
                let sample: Vec<_> = collected.sample.iter().map(draw).collect();
                let clusters = collected.top_clusters(CLUSTERS_SHOWN);
                let cluster_thumbs: Vec<Vec<_>> = clusters
                    .iter()
                    .map(|(_, c)| c.members.iter().map(draw).collect())
                    .collect();
                html::page(&collected, &meta, &sample, &clusters, &cluster_thumbs)
            })
            .await?
        };
        if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // Written whole under another name, then renamed: a reader never sees half a page.
        let partial = opts.out.with_extension("html.partial");
        std::fs::write(&partial, &page)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &opts.out)
            .with_context(|| format!("cannot write {}", opts.out.display()))?;
        Ok(ReportSummary {
            rows_in: collected.rows,
            rows_out: collected.outcomes.get(&None).copied().unwrap_or(0),
            bytes: page.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_told_apart() {
        let lake = |i: &str| input_sql(i).unwrap().0.starts_with("CREATE EXTERNAL TABLE");
        assert!(lake("s3://bucket/lake/") && lake("file.parquet"));
        assert!(!lake("SELECT * FROM t WHERE url LIKE 'http://%'"));
        assert!(!lake("SELECT 1"));
        assert!(input_sql("missing.sql").is_err());
    }
}
