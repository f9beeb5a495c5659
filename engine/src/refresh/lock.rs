//! One run per output: a lock object beside the output (`_lakecap/lock.json`),
//! created with a create-if-absent put so that exactly one run wins, on local
//! disk and on object stores alike.
//!
//! A lock is stale, and is taken over, when its owner is a process on this
//! host that no longer exists (a `kill -9`), or when its heartbeat (renewed
//! every [`HEARTBEAT`]) is older than [`STALE_AFTER`] (a lost machine).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

pub const HEARTBEAT: Duration = Duration::from_secs(30);
pub const STALE_AFTER: Duration = Duration::from_secs(180);
const WAIT_POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub job: String,
    pub run: String,
    pub host: String,
    pub pid: u32,
    pub started: u64,
    pub heartbeat: u64,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true // elsewhere only the heartbeat says a lock is stale
    }
}

impl LockInfo {
    fn stale(&self, now: u64) -> Option<String> {
        if self.host == hostname() && self.pid != std::process::id() && !pid_alive(self.pid) {
            return Some(format!("process {} on {} is gone", self.pid, self.host));
        }
        let age = now.saturating_sub(self.heartbeat);
        (age > STALE_AFTER.as_secs()).then(|| format!("no heartbeat for {age}s"))
    }
}

/// A held lock; released by [`OutputLock::release`] (a crash leaves it stale).
pub struct OutputLock {
    store: Arc<dyn ObjectStore>,
    path: Path,
    info: LockInfo,
    heartbeat: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

async fn read(store: &dyn ObjectStore, path: &Path) -> Result<Option<LockInfo>> {
    match store.get(path).await {
        Ok(r) => {
            let bytes = r.bytes().await?;
            // A torn or foreign file is treated as held by nobody we know: stale at once.
            Ok(Some(serde_json::from_slice(&bytes).unwrap_or(LockInfo {
                job: "?".into(),
                run: "?".into(),
                host: "?".into(),
                pid: 0,
                started: 0,
                heartbeat: 0,
            })))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl OutputLock {
    /// Takes the lock at `path`, waiting for a live holder when `wait`, else
    /// failing with who holds it.
    pub async fn acquire(
        store: Arc<dyn ObjectStore>,
        path: Path,
        job: &str,
        run: &str,
        wait: bool,
    ) -> Result<Self> {
        let now = now_secs();
        let info = LockInfo {
            job: job.into(),
            run: run.into(),
            host: hostname(),
            pid: std::process::id(),
            started: now,
            heartbeat: now,
        };
        let body = serde_json::to_vec(&info)?;
        let mut announced = false;
        loop {
            let put = store
                .put_opts(
                    &path,
                    PutPayload::from(body.clone()),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            match put {
                Ok(_) => break,
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create lock {path}")),
            }
            let Some(holder) = read(store.as_ref(), &path).await? else {
                continue; // released meanwhile
            };
            if let Some(why) = holder.stale(now_secs()) {
                eprintln!(
                    "lakecap: taking over a stale lock of job '{}' (run {}): {why}",
                    holder.job, holder.run
                );
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e).context("cannot remove a stale lock"),
                }
            }
            if !wait {
                bail!(
                    "output is locked by job '{}' (run {}, pid {} on {}, started {}s ago): \
                     another run is in progress; pass --wait to wait for it",
                    holder.job,
                    holder.run,
                    holder.pid,
                    holder.host,
                    now_secs().saturating_sub(holder.started)
                );
            }
            if !announced {
                eprintln!(
                    "lakecap: waiting for run {} of job '{}' (pid {} on {}) to finish",
                    holder.run, holder.job, holder.pid, holder.host
                );
                announced = true;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
        // Two runs that took over the same stale lock at once: the later
        // create wins the file, the other finds it is not the holder.
        match read(store.as_ref(), &path).await? {
            Some(h) if h.run == info.run => {}
            _ => bail!("lost the race for the output lock; retry"),
        }
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (store, path, mut info) = (Arc::clone(&store), path.clone(), info.clone());
            let lost = Arc::clone(&lost);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    // Never overwrite a lock another run took over (after our
                    // heartbeat stalled): that run owns the output now.
                    match read(store.as_ref(), &path).await {
                        Ok(Some(h)) if h.run == info.run => {}
                        _ => {
                            eprintln!("lakecap: run {} lost its output lock", info.run);
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                    info.heartbeat = now_secs();
                    if let Ok(b) = serde_json::to_vec(&info) {
                        let _ = store.put(&path, PutPayload::from(b)).await;
                    }
                }
            })
        };
        Ok(Self {
            store,
            path,
            info,
            heartbeat,
            lost,
        })
    }

    /// Fails once another run has taken the lock over (this run stalled past
    /// [`STALE_AFTER`]): checked before every commit.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            bail!(
                "another run took over the output lock while this one stalled; stopping before the next commit"
            );
        }
        Ok(())
    }

    pub async fn release(self) -> Result<()> {
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        if read(self.store.as_ref(), &self.path)
            .await?
            .is_some_and(|h| h.run == self.info.run)
        {
            self.store.delete(&self.path).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn one_holder_stale_locks_are_taken_over() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("out/_lakecap/lock.json");
        let a = OutputLock::acquire(Arc::clone(&store), path.clone(), "j", "r1", false)
            .await
            .unwrap();
        let err = OutputLock::acquire(Arc::clone(&store), path.clone(), "j", "r2", false)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("output is locked by job 'j' (run r1"), "{err}");
        a.release().await.unwrap();
        let b = OutputLock::acquire(Arc::clone(&store), path.clone(), "j", "r3", false)
            .await
            .unwrap();
        b.release().await.unwrap();

        // A lock left by a dead process on this host.
        let dead = LockInfo {
            job: "j".into(),
            run: "r0".into(),
            host: hostname(),
            pid: u32::MAX - 1,
            started: now_secs(),
            heartbeat: now_secs(),
        };
        store
            .put(&path, PutPayload::from(serde_json::to_vec(&dead).unwrap()))
            .await
            .unwrap();
        let c = OutputLock::acquire(Arc::clone(&store), path.clone(), "j", "r4", false)
            .await
            .unwrap();
        c.release().await.unwrap();

        // A live holder elsewhere whose heartbeat stopped long ago.
        let lost = LockInfo {
            host: "elsewhere".into(),
            pid: 1,
            heartbeat: now_secs() - STALE_AFTER.as_secs() - 5,
            ..dead
        };
        assert!(lost.stale(now_secs()).unwrap().contains("no heartbeat"));
        let fresh = LockInfo {
            heartbeat: now_secs(),
            ..lost
        };
        assert_eq!(fresh.stale(now_secs()), None);
    }
}
