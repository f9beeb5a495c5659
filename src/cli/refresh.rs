//! `lakecap refresh JOB` and `lakecap jobs status`.

use std::path::Path;

use anyhow::Result;
use lakecap::refresh::{self, Job, RefreshOptions, Schedule, status};
use lakecap::{Engine, ProgressMode};

/// Runs the job once and records the run; warnings and the summary go to stderr.
async fn once(engine: &Engine, path: &Path, opts: RefreshOptions) -> Result<()> {
    let started = chrono::Utc::now();
    let job = Job::load(path)?;
    let result = refresh::run(engine.ctx(), &job, opts).await;
    for w in engine.diagnostics().take() {
        eprintln!("warning: {w}");
    }
    status::record(
        &lakecap_models::home::jobs_dir(),
        &job.name,
        status::RunRecord::finished(started, job.version, &result),
    )?;
    eprintln!("{}", result?);
    Ok(())
}

pub async fn run(
    engine: impl Fn() -> Result<Engine>,
    path: &Path,
    every: Option<&str>,
    cron: Option<&str>,
    wait: bool,
    progress: ProgressMode,
) -> Result<()> {
    let opts = RefreshOptions { wait, progress };
    let schedule = match (every, cron) {
        (Some(e), None) => Some(Schedule::every(e)?),
        (None, Some(c)) => Some(Schedule::cron(c)?),
        (None, None) => None,
        (Some(_), Some(_)) => anyhow::bail!("give --every or --cron, not both"),
    };
    let Some(schedule) = schedule else {
        return once(&engine()?, path, opts).await;
    };
    loop {
        // A fresh session per run: options from the job file apply to that run only,
        // and the job file is read again so edits take effect at the next run.
        if let Err(e) = once(&engine()?, path, opts).await {
            eprintln!("error: {e:#}");
        }
        let wait = schedule.wait_from(chrono::Local::now())?;
        eprintln!(
            "lakecap: next run of {} in {}",
            path.display(),
            humantime::format_duration(std::time::Duration::from_secs(wait.as_secs()))
        );
        tokio::time::sleep(wait).await;
    }
}

pub fn jobs_status() -> Result<()> {
    let dir = lakecap_models::home::jobs_dir();
    let jobs = status::all(&dir)?;
    if jobs.is_empty() {
        println!("no job has run yet (history is kept in {})", dir.display());
    } else {
        print!("{}", status::table(&jobs));
    }
    Ok(())
}
