//! `lakecap report`: an HTML report on a query, a SQL file or a lake.

use std::path::PathBuf;

use anyhow::Result;
use lakecap::report::{ReportOptions, Roles, input_sql};
use lakecap::{Engine, Vars};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A query, a .sql file (its last statement is reported) or a parquet
    /// lake (folder, file or object-store URL).
    pub input: String,
    /// The HTML file to write.
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
    /// Page title.
    #[arg(long)]
    pub title: Option<String>,
    /// Rows in the sampled grid.
    #[arg(long, default_value_t = 48)]
    pub sample: usize,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Column that names a row (default: `key`).
    #[arg(long)]
    pub key: Option<String>,
    /// Image column (default: `img`, `image`, else the first binary column).
    #[arg(long)]
    pub image: Option<String>,
    /// Drop-reason column, NULL = kept (default: `dropped_because`).
    #[arg(long)]
    pub reason: Option<String>,
    /// Near-duplicate cluster column: equal values are one cluster (default: `dup_group`).
    #[arg(long)]
    pub dup_group: Option<String>,
    /// Script variable for ${NAME} placeholders, as NAME=VALUE (repeatable).
    #[arg(long = "define", short = 'D', value_parser = super::parse_define)]
    pub defines: Vec<(String, String)>,
}

pub async fn run(engine: &Engine, args: ReportArgs) -> Result<()> {
    let (sql, source) = input_sql(&args.input)?;
    let vars: Vars = args.defines.iter().cloned().collect();
    let opts = ReportOptions {
        out: args.out,
        title: args.title,
        sample: args.sample,
        seed: args.seed,
        roles: Roles {
            key: args.key,
            image: args.image,
            reason: args.reason,
            dup_group: args.dup_group,
        },
    };
    let s = engine.report(&sql, &vars, &source, &opts).await?;
    println!(
        "report: {} ({} rows in, {} out, {} KiB)",
        opts.out.display(),
        s.rows_in,
        s.rows_out,
        s.bytes.div_ceil(1024)
    );
    Ok(())
}
