//! Running SQL scripts: many statements, `${VAR}` substitution, progress,
//! per-statement warnings, and errors that name the failing statement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::progress::{ProgressMode, collect_with_progress};
use crate::{Diagnostics, WarningCount};

/// Values for `${NAME}` placeholders; names not given here fall back to the environment.
pub type Vars = BTreeMap<String, String>;

/// What one statement produced.
#[derive(Debug)]
pub struct StatementOutput {
    /// 1-based position in the script.
    pub index: usize,
    pub sql: String,
    pub batches: Vec<RecordBatch>,
    pub elapsed: Duration,
    /// Rows that functions turned into NULL during this statement.
    pub warnings: Vec<WarningCount>,
}

impl StatementOutput {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Replaces `${NAME}` with `vars[NAME]`, else the environment variable `NAME`.
pub fn substitute(sql: &str, vars: &Vars) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow!("unclosed '${{' in script"))?;
        let name = &after[..end];
        let value = vars
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .ok_or_else(|| anyhow!("undefined variable ${{{name}}}: pass --define {name}=VALUE or set it in the environment"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn snippet(sql: &str) -> String {
    let one_line: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        format!("{}...", one_line.chars().take(77).collect::<String>())
    } else {
        one_line
    }
}

pub(crate) async fn run(
    ctx: &SessionContext,
    diag: &Arc<Diagnostics>,
    progress: ProgressMode,
    sql: &str,
    vars: &Vars,
    mut each: impl FnMut(StatementOutput) -> Result<()>,
) -> Result<()> {
    let sql = substitute(sql, vars)?;
    let statements =
        DFParser::parse_sql_with_dialect(&sql, &GenericDialect {}).context("SQL syntax error")?;
    if statements.is_empty() {
        bail!("no SQL statement to run");
    }
    for (i, statement) in statements.into_iter().enumerate() {
        let text = statement.to_string();
        let index = i + 1;
        let started = Instant::now();
        diag.take();
        let batches = async {
            let plan = ctx.state().statement_to_plan(statement).await?;
            let df = ctx.execute_logical_plan(plan).await?;
            let task = Arc::new(df.task_ctx());
            let physical = df.create_physical_plan().await?;
            collect_with_progress(physical, task, progress).await
        }
        .await
        .with_context(|| format!("statement {index} failed: {}", snippet(&text)))?;
        each(StatementOutput {
            index,
            sql: text,
            batches,
            elapsed: started.elapsed(),
            warnings: diag.take(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_vars_then_env() {
        let vars: Vars = [("LAKE".to_string(), "/data/lake".to_string())].into();
        assert_eq!(
            substitute("LOCATION '${LAKE}/'", &vars).unwrap(),
            "LOCATION '/data/lake/'"
        );
        let err = substitute("SELECT '${NO_SUCH_LAKECAP_VAR}'", &vars)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--define NO_SUCH_LAKECAP_VAR=VALUE"), "{err}");
        assert!(substitute("${OPEN", &vars).is_err());
    }

    #[test]
    fn snippets_are_one_short_line() {
        assert_eq!(snippet("SELECT\n  1"), "SELECT 1");
        assert_eq!(snippet(&"x ".repeat(100)).chars().count(), 80);
    }
}
