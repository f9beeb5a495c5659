//! Counted warnings for rows that functions could not process.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// One kind of warning and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningCount {
    pub function: String,
    pub column: String,
    /// Short category, e.g. `truncated`, `not an image`, `invalid utf-8`.
    pub kind: String,
    pub count: u64,
    /// The first full message of this kind (names the row).
    pub example: String,
    /// The rows kept a fallback value (`fuse` keeps the caption) instead of NULL.
    pub fallback: bool,
}

/// `phash(img): 3 row(s) gave NULL: truncated (first: phash(img) at key = 'a1': truncated jpeg)`.
impl std::fmt::Display for WarningCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}({}): {} row(s) {}: {} (first: {})",
            self.function,
            self.column,
            self.count,
            if self.fallback {
                "kept a fallback"
            } else {
                "gave NULL"
            },
            self.kind,
            self.example
        )
    }
}

/// (function, column, kind) -> (count, first message, fallback).
type Counts = BTreeMap<(String, String, String), (u64, String, bool)>;

/// Per-session warning counters, shared by every function of a session.
#[derive(Debug, Default)]
pub struct Diagnostics {
    counts: Mutex<Counts>,
}

impl Diagnostics {
    /// Records one row that yielded NULL instead of a value.
    pub fn warn(&self, function: &str, column: &str, kind: &str, message: impl FnOnce() -> String) {
        self.record(function, column, kind, message, false);
    }

    /// Records one row that kept a fallback value instead of the function's own.
    pub fn warn_fallback(
        &self,
        function: &str,
        column: &str,
        kind: &str,
        message: impl FnOnce() -> String,
    ) {
        self.record(function, column, kind, message, true);
    }

    fn record(
        &self,
        function: &str,
        column: &str,
        kind: &str,
        message: impl FnOnce() -> String,
        fallback: bool,
    ) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counts
            .entry((function.to_string(), column.to_string(), kind.to_string()))
            .or_insert_with(|| (0, message(), fallback));
        entry.0 += 1;
    }

    /// All warnings so far, sorted by function, column, kind.
    pub fn snapshot(&self) -> Vec<WarningCount> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .map(
                |((function, column, kind), (count, example, fallback))| WarningCount {
                    function: function.clone(),
                    column: column.clone(),
                    kind: kind.clone(),
                    count: *count,
                    example: example.clone(),
                    fallback: *fallback,
                },
            )
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|(c, _, _)| c)
            .sum()
    }

    /// Returns and clears the warnings (e.g. after each statement of a script).
    pub fn take(&self) -> Vec<WarningCount> {
        let out = self.snapshot();
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        out
    }
}

/// The diagnostics a function reports into. DataFusion requires functions to be
/// `Eq + Hash`; two handles are equal when they share one session's counters.
#[derive(Debug, Clone)]
pub struct DiagHandle(pub Arc<Diagnostics>);

impl PartialEq for DiagHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DiagHandle {}

impl Hash for DiagHandle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_keeps_first_example() {
        let d = Diagnostics::default();
        d.warn("phash", "img", "truncated", || {
            "row 3: truncated png".into()
        });
        d.warn("phash", "img", "truncated", || {
            "row 9: truncated png".into()
        });
        d.warn("phash", "img", "not an image", || "row 4".into());
        assert_eq!(d.total(), 3);
        let s = d.take();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].kind, "truncated");
        assert_eq!(s[1].count, 2);
        assert_eq!(s[1].example, "row 3: truncated png");
        assert_eq!(
            s[1].to_string(),
            "phash(img): 2 row(s) gave NULL: truncated (first: row 3: truncated png)"
        );
        assert_eq!(d.total(), 0);
        d.warn_fallback("fuse", "alt", "ungrounded_fusion", || "row 1".into());
        assert_eq!(
            d.take()[0].to_string(),
            "fuse(alt): 1 row(s) kept a fallback: ungrounded_fusion (first: row 1)"
        );
    }
}
