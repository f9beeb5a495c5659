//! The query planner of a cluster client: table functions first, then
//! Ballista.
//!
//! A table function (`near_duplicates('t', …)`) resolves its source table in
//! the client's catalog, which no scheduler or executor has. So the client
//! computes it before the plan leaves: reading the source runs on the
//! cluster like any query, and the global step (clustering, grouping) runs
//! here, on the client, as one task. The result replaces the function in the
//! plan as an in-memory table ([`super::codec`]).
//!
//! A query that reads only tables held here (`CREATE TABLE … AS`, computed
//! table functions, `VALUES`) and calls no lakecap function runs here too:
//! its rows are already in this process, and shipping them to executors
//! to join or count them would cost more than the work.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::{Expr, LogicalPlan, TableScanBuilder};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use lakecap_udfs::is_table_function_result;

/// Computes table functions, then plans here or hands the plan to `inner`
/// (Ballista's).
#[derive(Debug)]
pub struct ClusterPlanner {
    inner: Arc<dyn QueryPlanner + Send + Sync>,
    /// lakecap's scalar functions: a query calling one runs on the cluster.
    functions: HashSet<String>,
}

impl ClusterPlanner {
    pub fn new(inner: Arc<dyn QueryPlanner + Send + Sync>, functions: HashSet<String>) -> Self {
        ClusterPlanner { inner, functions }
    }

    /// Whether `plan` reads only this process's in-memory rows and calls no
    /// lakecap function.
    fn runs_here(&self, plan: &LogicalPlan) -> Result<bool> {
        let mut here = true;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                here &= source_as_provider(&scan.source)
                    .is_ok_and(|p| (p.as_ref() as &dyn Any).is::<MemTable>());
            }
            node.apply_expressions(|e| {
                e.apply(|e| {
                    if let Expr::ScalarFunction(f) = e {
                        here &= !self.functions.contains(f.name());
                    }
                    Ok(stop_unless(here))
                })
            })?;
            Ok(stop_unless(here))
        })?;
        Ok(here)
    }
}

fn stop_unless(go_on: bool) -> TreeNodeRecursion {
    if go_on {
        TreeNodeRecursion::Continue
    } else {
        TreeNodeRecursion::Stop
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = compute_table_functions(plan.clone(), state).await?;
        if self.runs_here(&plan)? {
            DefaultPhysicalPlanner::default()
                .create_physical_plan(&plan, state)
                .await
        } else {
            self.inner.create_physical_plan(&plan, state).await
        }
    }
}

/// `plan` with each table function's scan reading its computed rows.
async fn compute_table_functions(plan: LogicalPlan, state: &dyn Session) -> Result<LogicalPlan> {
    let mut pending: Vec<Arc<dyn TableProvider>> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(p) = source_as_provider(&scan.source)
            && is_table_function_result(p.as_ref())
            && !pending.iter().any(|q| Arc::ptr_eq(q, &p))
        {
            pending.push(p);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if pending.is_empty() {
        return Ok(plan);
    }
    let mut computed = Vec::with_capacity(pending.len());
    for p in &pending {
        let scan = p.scan(state, None, &[], None).await?;
        let batches = collect(scan, state.task_ctx()).await?;
        computed.push(Arc::new(MemTable::try_new(p.schema(), vec![batches])?));
    }
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        let Ok(p) = source_as_provider(&scan.source) else {
            return Ok(Transformed::no(node));
        };
        let Some(i) = pending.iter().position(|q| Arc::ptr_eq(q, &p)) else {
            return Ok(Transformed::no(node));
        };
        let source = provider_as_source(Arc::clone(&computed[i]) as Arc<dyn TableProvider>);
        let scan = TableScanBuilder::new(scan.table_name.clone(), source)
            .with_projection(scan.projection.clone())
            .with_filters(scan.filters.clone())
            .with_fetch(scan.fetch)
            .with_statistics_requests(scan.statistics_requests.clone())
            .build()?;
        Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
    })
    .map(|t| t.data)
}
