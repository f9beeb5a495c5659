//! Run history per job for `lakecap jobs status`: the last [`KEEP`] runs of
//! each job in `$LAKECAP_HOME/jobs/NAME.json` (`lakecap_models::home::jobs_dir`),
//! written when a run ends.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::RunSummary;

const KEEP: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub seconds: f64,
    pub ok: bool,
    pub version: i64,
    pub files: usize,
    pub rows_written: usize,
    pub commits: usize,
    pub error: Option<String>,
}

impl RunRecord {
    pub fn finished(
        started: chrono::DateTime<chrono::Utc>,
        version: i64,
        result: &Result<RunSummary>,
    ) -> Self {
        let seconds = (chrono::Utc::now() - started).as_seconds_f64();
        let started = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match result {
            Ok(s) => Self {
                run: s.run.clone(),
                started,
                seconds,
                ok: true,
                version,
                files: s.files_processed,
                rows_written: s.rows_written,
                commits: s.commits,
                error: None,
            },
            Err(e) => Self {
                run: String::new(),
                started,
                seconds,
                ok: false,
                version,
                files: 0,
                rows_written: 0,
                commits: 0,
                error: Some(format!("{e:#}")),
            },
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    runs: Vec<RunRecord>,
}

fn read(path: &Path) -> Result<History> {
    match std::fs::read(path) {
        Ok(b) => {
            serde_json::from_slice(&b).with_context(|| format!("{} is unreadable", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(History::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Appends `record` to job `name`'s history in `dir`.
pub fn record(dir: &Path, name: &str, record: RunRecord) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let mut h = read(&path)?;
    h.runs.push(record);
    let excess = h.runs.len().saturating_sub(KEEP);
    h.runs.drain(..excess);
    // Write then rename, so a reader never sees half a file.
    let tmp = dir.join(format!(".{name}.json.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&h)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Every job's runs in `dir`, oldest first, by job name.
pub fn all(dir: &Path) -> Result<Vec<(String, Vec<RunRecord>)>> {
    let mut jobs = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(jobs);
    };
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "json") {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            jobs.push((name, read(&p)?.runs));
        }
    }
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(jobs)
}

/// The `lakecap jobs status` table: one line per job, its last run.
pub fn table(jobs: &[(String, Vec<RunRecord>)]) -> String {
    let mut out = format!(
        "{:<20} {:<21} {:>4} {:>8} {:>10} {:>9}  {}\n",
        "job", "last run (UTC)", "ver", "status", "rows", "duration", "error / runs"
    );
    for (name, runs) in jobs {
        let Some(last) = runs.last() else { continue };
        let failed = runs.iter().filter(|r| !r.ok).count();
        let tail = match &last.error {
            Some(e) => e.lines().next().unwrap_or_default().to_string(),
            None => format!("{} runs, {failed} failed", runs.len()),
        };
        out.push_str(&format!(
            "{:<20} {:<21} {:>4} {:>8} {:>10} {:>8.1}s  {}\n",
            name,
            last.started,
            last.version,
            if last.ok { "ok" } else { "FAILED" },
            last.rows_written,
            last.seconds,
            tail
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_runs_and_tabulates_them() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = chrono::Utc::now();
        for i in 0..25 {
            let s = RunSummary {
                run: format!("r{i}"),
                rows_written: i,
                ..Default::default()
            };
            record(dir.path(), "nightly", RunRecord::finished(t0, 1, &Ok(s))).unwrap();
        }
        let err = Err(anyhow::anyhow!(
            "source 'lake': no parquet files at file:///x/"
        ));
        record(dir.path(), "broken", RunRecord::finished(t0, 2, &err)).unwrap();
        let jobs = all(dir.path()).unwrap();
        assert_eq!(jobs[1].0, "nightly");
        assert_eq!(jobs[1].1.len(), KEEP);
        assert_eq!(jobs[1].1.last().unwrap().run, "r24");
        let t = table(&jobs);
        assert!(t.contains("FAILED"), "{t}");
        assert!(t.contains("source 'lake': no parquet files"), "{t}");
        assert!(t.contains("20 runs, 0 failed"), "{t}");
    }
}
