//! `lakecap cluster status`: the executors a scheduler knows (device, task
//! slots, last heartbeat) and its running jobs, from Ballista's REST API
//! (served on the scheduler's port).

use anyhow::{Context, Result};
use serde::Deserialize;

use super::ClusterUrl;

#[derive(Debug, Deserialize)]
struct Executor {
    id: String,
    host: String,
    port: u16,
    last_seen: Option<u128>,
    specification: Specification,
}

#[derive(Debug, Deserialize)]
struct Specification {
    vcores: u32,
}

#[derive(Debug, Deserialize)]
struct Job {
    job_id: String,
    job_name: String,
    /// Queued, Running, Completed or Failed.
    status: String,
    num_stages: usize,
    completed_stages: usize,
    percent_complete: u8,
}

async fn get<T: for<'a> Deserialize<'a>>(url: &ClusterUrl, path: &str) -> Result<T> {
    let address = format!("{}{path}", url.http());
    let body = reqwest::get(&address)
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("cannot read {address} (the scheduler of {url})"))?
        .bytes()
        .await?;
    serde_json::from_slice(&body).with_context(|| format!("unexpected answer from {address}"))
}

/// The status report, one line per executor, then one per running job.
pub async fn report(url: &ClusterUrl) -> Result<String> {
    url.check_reachable()?;
    let mut executors: Vec<Executor> = get(url, "/api/executors").await?;
    executors.sort_by(|a, b| a.id.cmp(&b.id));
    let jobs: Vec<Job> = get(url, "/api/jobs").await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut out = format!("scheduler {url}: {} executor(s)\n", executors.len());
    for e in &executors {
        // Executor ids are DEVICE@HOST:PORT (lakecap cluster executor).
        let device = e.id.split_once('@').map_or("?", |(d, _)| d);
        let seen = e
            .last_seen
            .map(|t| format!("{:.1} s ago", now.saturating_sub(t) as f64 / 1000.0))
            .unwrap_or_else(|| "never".into());
        out += &format!(
            "  executor {}  {}:{}  device {device}  {} task slots  heartbeat {seen}\n",
            e.id, e.host, e.port, e.specification.vcores
        );
    }
    let running: Vec<&Job> = jobs
        .iter()
        .filter(|j| matches!(j.status.as_str(), "Running" | "Queued"))
        .collect();
    out += &format!("{} running job(s)\n", running.len());
    for j in running {
        out += &format!(
            "  job {} {:?}: {}, stage {}/{} ({}%)\n",
            j.job_id, j.job_name, j.status, j.completed_stages, j.num_stages, j.percent_complete
        );
    }
    Ok(out)
}
