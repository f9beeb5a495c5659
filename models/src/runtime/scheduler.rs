//! The batching inference scheduler.
//!
//! One worker thread per (model, device) owns the compute. Callers (one async
//! UDF call per DataFusion partition) submit their rows and await a reply; the
//! worker drains the queue into batches of up to `batch_size` rows *across*
//! callers, runs the model, and splits the results back. The queue is bounded,
//! so producers wait (backpressure) instead of piling rows up in memory, and
//! tokio threads never block on compute: they only await channels.
//!
//! Overlap: decoding and preprocessing happen on the callers' side (in
//! `spawn_blocking`), so while the worker runs one batch, the next batch is
//! being decoded; [`Scheduler::submit`] also splits a large request into
//! `batch_size` pieces that enter the queue independently, so the worker starts
//! on the first piece while later ones are still being prepared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::{Receiver, Sender};
use tokio::sync::oneshot;

use super::worker::{catch, spawn_worker};
use crate::error::{ModelError, Result};

struct Request<I, O> {
    items: Vec<I>,
    reply: oneshot::Sender<Result<Vec<O>>>,
}

/// Counters a caller can read (tests prove rows are computed once; progress shows batches).
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Rows that went through the model.
    pub rows: AtomicU64,
    /// Model invocations (batches).
    pub batches: AtomicU64,
}

/// A handle to one model worker; cheap to clone.
pub struct Scheduler<I, O> {
    tx: Sender<Request<I, O>>,
    batch_size: usize,
    pub stats: Arc<SchedulerStats>,
}

impl<I, O> Clone for Scheduler<I, O> {
    fn clone(&self) -> Self {
        Scheduler {
            tx: self.tx.clone(),
            batch_size: self.batch_size,
            stats: Arc::clone(&self.stats),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Scheduler<I, O> {
    /// Starts a worker named `name` that runs `run` on batches of at most
    /// `batch_size` rows; `run` must return one output per input, in order.
    pub fn spawn(
        name: &str,
        batch_size: usize,
        run: impl FnMut(Vec<I>) -> Result<Vec<O>> + Send + 'static,
    ) -> Scheduler<I, O> {
        Self::spawn_with(name, batch_size, move || Ok(run)).expect("an infallible init")
    }

    /// Like [`Scheduler::spawn`], but builds `run` on the worker thread with
    /// `init` (loading a model there keeps device contexts on the thread that
    /// uses them); returns `init`'s error if it fails.
    pub fn spawn_with<R>(
        name: &str,
        batch_size: usize,
        init: impl FnOnce() -> Result<R> + Send + 'static,
    ) -> Result<Scheduler<I, O>>
    where
        R: FnMut(Vec<I>) -> Result<Vec<O>> + 'static,
    {
        let batch_size = batch_size.max(1);
        // Up to four batches queued: enough to keep the worker fed, small
        // enough that memory stays bounded.
        let (tx, rx) = tokio::sync::mpsc::channel::<Request<I, O>>(4);
        let stats = Arc::new(SchedulerStats::default());
        let st = Arc::clone(&stats);
        spawn_worker(name, init, move |mut run| {
            worker(rx, batch_size, &st, &mut run)
        })?;
        Ok(Scheduler {
            tx,
            batch_size,
            stats,
        })
    }

    /// Runs `items` through the model; the result has one output per item.
    pub async fn submit(&self, mut items: Vec<I>) -> Result<Vec<O>> {
        let mut pending = Vec::new();
        while !items.is_empty() {
            let rest = items.split_off(items.len().min(self.batch_size));
            let (reply, rx) = oneshot::channel();
            // A full queue makes the caller wait here (backpressure).
            self.tx
                .send(Request { items, reply })
                .await
                .map_err(|_| worker_exited())?;
            pending.push(rx);
            items = rest;
        }
        let mut out = Vec::new();
        for rx in pending {
            out.extend(rx.await.map_err(|_| worker_exited())??);
        }
        Ok(out)
    }
}

fn worker_exited() -> ModelError {
    ModelError::Worker("the model worker exited".into())
}

fn worker<I, O>(
    mut rx: Receiver<Request<I, O>>,
    batch_size: usize,
    stats: &SchedulerStats,
    run: &mut impl FnMut(Vec<I>) -> Result<Vec<O>>,
) {
    // The worker is a plain thread, so it may block on the queue.
    while let Some(first) = rx.blocking_recv() {
        // A caller that went away (its query was cancelled) needs no answer:
        // its queued rows are dropped, not computed.
        if first.reply.is_closed() {
            continue;
        }
        // Gather what is already waiting, up to one batch.
        let mut reqs = vec![first];
        let mut n = reqs[0].items.len();
        while n < batch_size {
            match rx.try_recv() {
                Ok(r) if r.reply.is_closed() => {}
                Ok(r) => {
                    n += r.items.len();
                    reqs.push(r);
                }
                Err(_) => break,
            }
        }
        let sizes: Vec<usize> = reqs.iter().map(|r| r.items.len()).collect();
        let mut items = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(reqs.len());
        for r in reqs {
            items.extend(r.items);
            replies.push(r.reply);
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.rows.fetch_add(n as u64, Ordering::Relaxed);
        let outcome = catch(|| run(items));
        match outcome {
            Ok(mut out) if out.len() == n => {
                for (reply, k) in replies.into_iter().zip(sizes).rev() {
                    let tail = out.split_off(out.len() - k);
                    let _ = reply.send(Ok(tail));
                }
            }
            Ok(out) => {
                let msg = format!("model returned {} outputs for {n} inputs", out.len());
                for reply in replies {
                    let _ = reply.send(Err(ModelError::Worker(msg.clone())));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(ModelError::Worker(msg.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batches_across_callers_and_keeps_order() {
        let s = Scheduler::spawn("test", 8, |v: Vec<u32>| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(v.into_iter().map(|x| x * 2).collect())
        });
        let mut handles = Vec::new();
        for c in 0..6u32 {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                let items: Vec<u32> = (0..5).map(|i| c * 100 + i).collect();
                (c, s.submit(items).await.unwrap())
            }));
        }
        for h in handles {
            let (c, out) = h.await.unwrap();
            assert_eq!(out, (0..5).map(|i| (c * 100 + i) * 2).collect::<Vec<_>>());
        }
        let rows = s.stats.rows.load(Ordering::Relaxed);
        let batches = s.stats.batches.load(Ordering::Relaxed);
        assert_eq!(rows, 30);
        assert!(batches < 6, "callers should share batches, got {batches}");

        // A request larger than a batch is split and reassembled in order.
        let big: Vec<u32> = (0..21).collect();
        assert_eq!(
            s.submit(big.clone()).await.unwrap(),
            big.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn rows_of_callers_that_went_away_are_not_computed() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut replies = Vec::new();
        for (items, keep) in [(vec![1u32, 2], false), (vec![3], true), (vec![4], false)] {
            let (reply, answer) = oneshot::channel();
            tx.try_send(Request { items, reply }).unwrap();
            if keep {
                replies.push(answer);
            }
        }
        drop(tx);
        let mut seen = Vec::new();
        let stats = SchedulerStats::default();
        worker(rx, 8, &stats, &mut |v: Vec<u32>| {
            seen.extend(v.iter().copied());
            Ok(v)
        });
        assert_eq!(seen, vec![3]);
        assert_eq!(
            replies.pop().unwrap().blocking_recv().unwrap().unwrap(),
            vec![3]
        );
    }

    #[tokio::test]
    async fn model_errors_and_panics_reach_the_caller() {
        let s: Scheduler<u32, u32> = Scheduler::spawn("failing", 4, |v: Vec<u32>| {
            if v.contains(&7) {
                panic!("seven");
            }
            Err(ModelError::Unsupported("nope".into()))
        });
        assert!(
            s.submit(vec![1])
                .await
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
        assert!(
            s.submit(vec![7])
                .await
                .unwrap_err()
                .to_string()
                .contains("seven")
        );
        // The worker survives a panic.
        assert!(s.submit(vec![2]).await.is_err());
    }
}
