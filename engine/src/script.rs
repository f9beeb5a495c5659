//! Running SQL scripts: many statements, `${VAR}` substitution, progress
//! (also for `CREATE TABLE … AS`),
//! per-statement warnings, and errors that name the failing statement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::MemTable;
use datafusion::datasource::provider_as_source;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
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

/// A statement on one short line, for messages and log lines.
pub fn snippet(sql: &str) -> String {
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
    each: impl FnMut(StatementOutput) -> Result<()>,
) -> Result<()> {
    run_statements(ctx, diag, progress, parse(sql, vars)?, each).await
}

/// The statements of `sql` after `${VAR}` substitution; none is an error.
pub fn parse(sql: &str, vars: &Vars) -> Result<Vec<Statement>> {
    parse_as_written(&substitute(sql, vars)?)
}

/// The statements of `sql` as written (no `${VAR}` substitution, for SQL
/// from an API caller); none is an error.
pub fn parse_as_written(sql: &str) -> Result<Vec<Statement>> {
    let statements =
        DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).context("SQL syntax error")?;
    if statements.is_empty() {
        bail!("no SQL statement to run");
    }
    Ok(statements.into())
}

/// Runs parsed statements in order, each with progress, handing each output to `each`.
pub(crate) async fn run_statements(
    ctx: &SessionContext,
    diag: &Arc<Diagnostics>,
    progress: ProgressMode,
    statements: Vec<Statement>,
    mut each: impl FnMut(StatementOutput) -> Result<()>,
) -> Result<()> {
    for (i, statement) in statements.into_iter().enumerate() {
        let text = statement.to_string();
        let index = i + 1;
        let started = Instant::now();
        diag.take();
        let batches = async {
            let (plan, task) = physical_plan(ctx, statement, progress).await?;
            collect_with_progress(plan, task, progress).await
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

/// The physical plan of one statement and its task context, ready to run
/// (a `CREATE TABLE … AS` has already run, with progress).
pub(crate) async fn physical_plan(
    ctx: &SessionContext,
    statement: Statement,
    progress: ProgressMode,
) -> datafusion::common::Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    physical_plan_of(ctx, plan, progress).await
}

/// [`physical_plan`] of a statement already planned (a prepared statement
/// with its parameter values in place, a query planned once and run many times).
pub async fn physical_plan_of(
    ctx: &SessionContext,
    plan: LogicalPlan,
    progress: ProgressMode,
) -> datafusion::common::Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)> {
    let plan = materialize_with_progress(ctx, plan, progress).await?;
    let df = ctx.execute_logical_plan(plan).await?;
    let task = Arc::new(df.task_ctx());
    Ok((df.create_physical_plan().await?, task))
}

/// `CREATE TABLE t AS SELECT …`: DataFusion runs the query while planning,
/// where no progress is shown. This runs it here with progress and hands
/// DataFusion the statement over the rows it produced, so that DataFusion
/// keeps the rest (`IF NOT EXISTS`, `OR REPLACE`, constraints, defaults).
async fn materialize_with_progress(
    ctx: &SessionContext,
    plan: LogicalPlan,
    progress: ProgressMode,
) -> datafusion::common::Result<LogicalPlan> {
    let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(mut create)) = plan else {
        return Ok(plan);
    };
    if create.if_not_exists && ctx.table_exist(create.name.clone())? {
        return Ok(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)));
    }
    let input = Arc::unwrap_or_clone(create.input);
    let df = ctx.execute_logical_plan(input).await?;
    let schema = Arc::clone(df.schema().inner());
    let task = Arc::new(df.task_ctx());
    let physical = df.create_physical_plan().await?;
    let batches = collect_with_progress(physical, task, progress).await?;
    let batches = conform(batches, &schema)?;
    let rows = MemTable::try_new(schema, vec![batches])?;
    create.input = Arc::new(
        LogicalPlanBuilder::scan(
            create.name.clone(),
            provider_as_source(Arc::new(rows)),
            None,
        )?
        .build()?,
    );
    Ok(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)))
}

/// `batches` with `schema`'s types: a cluster returns some columns as their
/// value type (a partition column's dictionary as plain strings).
fn conform(
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
) -> datafusion::common::Result<Vec<RecordBatch>> {
    batches
        .into_iter()
        .map(|b| {
            if b.schema().fields() == schema.fields() {
                return Ok(b);
            }
            let columns = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| cast(c, f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
        })
        .collect()
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

    /// `CREATE TABLE … AS` runs its query with progress and keeps DataFusion's semantics.
    #[tokio::test]
    async fn create_table_as_keeps_its_semantics() {
        let ctx = SessionContext::new();
        let diag = Arc::new(Diagnostics::default());
        let go = |sql: &'static str| {
            let (ctx, diag) = (ctx.clone(), Arc::clone(&diag));
            async move {
                let mut out = Vec::new();
                run(
                    &ctx,
                    &diag,
                    ProgressMode::Plain,
                    sql,
                    &Vars::default(),
                    |o| {
                        out.push(o);
                        Ok(())
                    },
                )
                .await
                .map(|()| out)
            }
        };
        let sum = "SELECT sum(x) AS s FROM t";
        let total = |out: Vec<StatementOutput>| {
            let b = &out.last().unwrap().batches[0];
            datafusion::arrow::util::display::array_value_to_string(b.column(0), 0).unwrap()
        };
        go("CREATE TABLE t AS SELECT * FROM generate_series(1, 4) g(x)")
            .await
            .unwrap();
        assert_eq!(total(go(sum).await.unwrap()), "10");
        go("CREATE TABLE IF NOT EXISTS t AS SELECT 100 AS x")
            .await
            .unwrap();
        assert_eq!(total(go(sum).await.unwrap()), "10");
        go("CREATE OR REPLACE TABLE t AS SELECT 100 AS x")
            .await
            .unwrap();
        assert_eq!(total(go(sum).await.unwrap()), "100");
        let err = go("CREATE TABLE t AS SELECT 1 AS x").await.unwrap_err();
        assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    }
}
