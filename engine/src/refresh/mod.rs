//! `lakecap refresh`: incremental, exactly-once lake jobs.
//!
//! A [`Job`] names a source lake, a SQL transform, a key and an output. A run
//! ([`run()`], in `run.rs` with one function per step):
//! 1. takes the output's [`lock::OutputLock`];
//! 2. reads the output's [`sink::Ledger`]: the source files already committed
//!    under this job version, stored in each commit's own metadata;
//! 3. lists the source and keeps the files that are new or changed;
//! 4. per group of `files_per_commit` files, reads just those files
//!    ([`group::GroupTable`], also on a cluster's executors), drops rows whose key the output already holds
//!    for this version (a key anti-join, before any model runs), runs the
//!    transform, adds lineage columns and commits rows and ledger together;
//! 5. after a version change, drops the older version's rows once every
//!    file is reprocessed.
//!
//! A crash anywhere loses at most the uncommitted group, which the next run
//! redoes: committed files are skipped by the ledger, and rows of a changed
//! file already in the output by the anti-join. [`Schedule`] repeats a job
//! on an interval or a cron expression; [`status`] keeps each job's runs.

pub mod group;
pub mod job;
pub mod lock;
mod run;
pub mod sink;
pub mod status;
pub mod store;

use std::time::Duration;

use anyhow::{Context, Result, bail};

pub use job::{Job, OutputFormat};
pub use run::run;

use crate::progress::ProgressMode;

/// How to run a job.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefreshOptions {
    /// Wait for a run holding the output's lock instead of failing.
    pub wait: bool,
    pub progress: ProgressMode,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub job: String,
    pub version: i64,
    pub run: String,
    /// Source files listed, and those processed by this run.
    pub files_total: usize,
    pub files_processed: usize,
    /// Files processed again because their size or modification time changed.
    pub files_changed: usize,
    pub commits: usize,
    /// Source rows read from the processed files, and of them the ones whose
    /// key the output already held (skipped before the transform).
    pub rows_read: usize,
    pub rows_already_done: usize,
    /// Rows with a NULL key: they cannot be tracked, so they are skipped and counted.
    pub rows_null_key: usize,
    pub rows_written: usize,
    /// The version whose rows this run replaced, after a version change.
    pub replaced_version: Option<i64>,
    pub seconds: f64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "refresh {} v{} (run {})",
            self.job, self.version, self.run
        )?;
        writeln!(
            f,
            "  source files  {} listed, {} processed ({} changed), {} already done",
            self.files_total,
            self.files_processed,
            self.files_changed,
            self.files_total - self.files_processed
        )?;
        writeln!(
            f,
            "  rows          {} read, {} already in the output, {} with NULL key skipped, {} written",
            self.rows_read, self.rows_already_done, self.rows_null_key, self.rows_written
        )?;
        if let Some(v) = self.replaced_version {
            writeln!(f, "  replaced      rows of version {v}")?;
        }
        write!(f, "  {} commits in {:.1}s", self.commits, self.seconds)
    }
}

/// Lineage columns added to every output row.
pub const LINEAGE: [&str; 4] = [
    "_lakecap_job",
    "_lakecap_job_version",
    "_lakecap_models",
    "_lakecap_processed_at",
];

/// When to run a job again.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    pub fn every(s: &str) -> Result<Self> {
        let d = humantime::parse_duration(s)
            .with_context(|| format!("--every '{s}': use a duration such as 30m, 1h or 1d"))?;
        if d.is_zero() {
            bail!("--every must be longer than zero");
        }
        Ok(Self::Every(d))
    }

    pub fn cron(s: &str) -> Result<Self> {
        let c: croner::Cron = s
            .parse()
            .with_context(|| format!("--cron '{s}' is not a cron expression"))?;
        Ok(Self::Cron(Box::new(c)))
    }

    /// Time to wait from `now` until the next run.
    pub fn wait_from(&self, now: chrono::DateTime<chrono::Local>) -> Result<Duration> {
        match self {
            Self::Every(d) => Ok(*d),
            Self::Cron(c) => {
                let next = c
                    .find_next_occurrence(&now, false)
                    .context("the cron expression has no next occurrence")?;
                Ok((next - now).to_std().unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_parse_and_say_when() {
        let now = chrono::Local
            .with_ymd_and_hms(2026, 11, 28, 10, 15, 0)
            .unwrap();
        assert_eq!(
            Schedule::every("1h").unwrap().wait_from(now).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            Schedule::cron("30 * * * *")
                .unwrap()
                .wait_from(now)
                .unwrap(),
            Duration::from_secs(15 * 60)
        );
        assert!(
            Schedule::every("soon")
                .unwrap_err()
                .to_string()
                .contains("--every 'soon'")
        );
        assert!(Schedule::every("0s").is_err());
        assert!(Schedule::cron("61 * * * *").is_err());
    }
}
