//! The session memo of model results, and [`MemoBatch`]: one batch's rows
//! checked against it, so that each distinct input of a batch is computed
//! once and every row repeating it gets the same value.
//!
//! DataFusion evaluates a function used in both WHERE and SELECT twice, and
//! recipes embed the same image in several functions; keyed by content, the
//! memo makes each distinct input cost one model call per session.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::Xxh3;

/// Results of model calls keyed by content (see [`memo_key`]), shared by the
/// functions of one session. Bounded: two generations of at most
/// `cap_bytes / 2` each; a full current generation becomes the old one and
/// the old one is dropped.
#[derive(Debug)]
pub struct Memo<V> {
    inner: Mutex<MemoGens<V>>,
    cap_bytes: usize,
}

/// A memoised value and what it costs to keep.
pub trait MemoValue: Clone {
    fn bytes(&self) -> usize;
}

impl MemoValue for Arc<[f32]> {
    fn bytes(&self) -> usize {
        self.len() * 4
    }
}

impl MemoValue for Arc<str> {
    fn bytes(&self) -> usize {
        self.len()
    }
}

/// Embeddings by input.
pub type EmbeddingMemo = Memo<Arc<[f32]>>;
/// Generated texts by (model, settings, prompt).
pub type TextMemo = Memo<Arc<str>>;

/// The memo key of `content` given to `model` as input `kind` (b'i' image,
/// b't' text, b'g' generation prompt).
pub(crate) fn memo_key(model: &str, kind: u8, content: &[u8]) -> u128 {
    let mut h = Xxh3::new();
    h.update(model.as_bytes());
    h.update(&[0, kind]);
    h.update(content);
    h.digest128()
}

#[derive(Debug)]
struct MemoGens<V> {
    cur: HashMap<u128, V>,
    old: HashMap<u128, V>,
    cur_bytes: usize,
}

impl<V> Default for MemoGens<V> {
    fn default() -> Self {
        MemoGens {
            cur: HashMap::new(),
            old: HashMap::new(),
            cur_bytes: 0,
        }
    }
}

impl<V: MemoValue> Default for Memo<V> {
    fn default() -> Self {
        Memo::with_capacity(256 << 20)
    }
}

impl<V: MemoValue> Memo<V> {
    pub fn with_capacity(cap_bytes: usize) -> Memo<V> {
        Memo {
            inner: Mutex::default(),
            cap_bytes,
        }
    }

    pub(crate) fn get(&self, k: u128) -> Option<V> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = g.cur.get(&k) {
            return Some(v.clone());
        }
        let v = g.old.remove(&k)?;
        g.insert(k, v.clone(), self.cap_bytes);
        Some(v)
    }

    pub(crate) fn put(&self, k: u128, v: V) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, v, self.cap_bytes);
    }
}

impl<V: MemoValue> MemoGens<V> {
    fn insert(&mut self, k: u128, v: V, cap: usize) {
        self.cur_bytes += v.bytes() + 48;
        self.cur.insert(k, v);
        if self.cur_bytes > cap / 2 {
            self.old = std::mem::take(&mut self.cur);
            self.cur_bytes = 0;
        }
    }
}

/// The memos of one session.
#[derive(Debug, Default)]
pub struct SessionMemo {
    pub vectors: EmbeddingMemo,
    pub texts: TextMemo,
}

/// Handle for `Eq + Hash` function structs (equal when shared).
#[derive(Debug, Clone, Default)]
pub struct MemoHandle(pub Arc<SessionMemo>);

impl PartialEq for MemoHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MemoHandle {}

impl std::hash::Hash for MemoHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state)
    }
}

/// One batch of rows against a memo: `new` answers the rows whose input is
/// known, [`MemoBatch::todo`] lists the first row of each distinct input that
/// is not, the caller computes those and [`MemoBatch::put`]s them, and
/// [`MemoBatch::finish`] gives rows repeating a computed input its value.
pub(crate) struct MemoBatch<'m, V> {
    memo: &'m Memo<V>,
    keys: Vec<Option<u128>>,
    out: Vec<Option<V>>,
    todo: Vec<usize>,
}

impl<'m, V: MemoValue> MemoBatch<'m, V> {
    /// `keys[i]` is row i's key, `None` for a NULL input (its value stays NULL).
    pub fn new(memo: &'m Memo<V>, keys: Vec<Option<u128>>) -> Self {
        Self::with_fallback(memo, keys, |_| None)
    }

    /// As [`MemoBatch::new`], also asking `fallback` (an on-disk cache) for
    /// keys the memo lacks.
    pub fn with_fallback(
        memo: &'m Memo<V>,
        keys: Vec<Option<u128>>,
        fallback: impl Fn(u128) -> Option<V>,
    ) -> Self {
        let out: Vec<Option<V>> = keys
            .iter()
            .map(|k| k.and_then(|k| memo.get(k).or_else(|| fallback(k))))
            .collect();
        let mut seen = HashSet::new();
        let todo = (0..keys.len())
            .filter(|&i| out[i].is_none() && keys[i].is_some_and(|k| seen.insert(k)))
            .collect();
        MemoBatch {
            memo,
            keys,
            out,
            todo,
        }
    }

    /// The first row of each distinct non-NULL input not known yet.
    pub fn todo(&self) -> &[usize] {
        &self.todo
    }

    /// The key of `row`, one of [`MemoBatch::todo`].
    pub fn key(&self, row: usize) -> u128 {
        self.keys[row].expect("rows to compute have inputs")
    }

    /// Records the value computed for `row`, one of [`MemoBatch::todo`].
    pub fn put(&mut self, row: usize, v: V) {
        self.memo.put(self.key(row), v.clone());
        self.out[row] = Some(v);
    }

    /// Every row's value: rows repeating an input computed in this batch get
    /// its value; a NULL input, or one that could not be computed, stays `None`.
    pub fn finish(mut self) -> Vec<Option<V>> {
        let fresh: HashMap<u128, V> = self
            .todo
            .iter()
            .filter_map(|&i| Some((self.keys[i]?, self.out[i].clone()?)))
            .collect();
        for (k, o) in self.keys.iter().zip(self.out.iter_mut()) {
            if let (Some(k), None) = (k, &o) {
                *o = fresh.get(k).cloned();
            }
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_each_distinct_input_once() {
        let memo = TextMemo::default();
        let key = |s: &str| memo_key("m", b'g', s.as_bytes());
        memo.put(key("known"), "K".into());
        let keys = ["a", "known", "b", "a", "", "b"]
            .iter()
            .map(|s| (!s.is_empty()).then(|| key(s)))
            .collect();
        let on_disk = key("b");
        let mut batch =
            MemoBatch::with_fallback(&memo, keys, |k| (k == on_disk).then(|| "B".into()));
        // "a" once; "known" from the memo, "b" from the fallback; NULL never.
        assert_eq!(batch.todo(), &[0]);
        batch.put(0, "A".into());
        let out: Vec<Option<String>> = batch
            .finish()
            .into_iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect();
        let want = [Some("A"), Some("K"), Some("B"), Some("A"), None, Some("B")];
        assert_eq!(out, want.map(|v| v.map(String::from)));
        assert_eq!(memo.get(key("a")).as_deref(), Some("A"));
    }

    #[test]
    fn a_row_not_computed_stays_null_with_its_repeats() {
        let memo = EmbeddingMemo::default();
        let k = memo_key("m", b'i', b"bad");
        let batch = MemoBatch::new(&memo, vec![Some(k), Some(k)]);
        assert_eq!(batch.todo(), &[0]);
        assert_eq!(batch.finish(), vec![None, None]);
    }
}
