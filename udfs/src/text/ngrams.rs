//! `ngrams(text, n)`: the lower-cased word n-grams of a text, in order.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{ArrayRef, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;

use crate::common::args::{Arg, RowFailure, Rows, bytes_rows};
use crate::common::plain::{Plain, PlainFunction};

/// The largest n: longer n-grams are rarely repeated, so they measure nothing.
const MAX_N: i64 = 16;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::TEXT,
        "The word n-grams of a text, in order: words are its letter-or-digit runs, lower-cased, \
         and an n-gram is n consecutive words joined by one space. A text of fewer than n words \
         gives an empty list; NULL gives NULL; binary input that is not UTF-8 gives NULL and a \
         counted warning. Corpus-level distinct-n (Li et al. 2016) is the number of distinct \
         n-grams over the number of n-grams.",
        "ngrams(text, n)",
    )
    .with_argument("text", "A caption or alt text.")
    .with_argument("n", "Words per n-gram, 1 to 16.")
    .with_sql_example(
        "SELECT count(DISTINCT g) * 1.0 / count(g) AS distinct_2 FROM \
         (SELECT unnest(ngrams(caption, 2)) AS g FROM captions);",
    )
    .build()
});

pub type NgramsFunc = Plain<Ngrams>;

pub struct Ngrams;

/// The n-grams of `text`.
pub(crate) fn ngrams(text: &str, n: usize) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.windows(n).map(|w| w.join(" ")).collect()
}

impl PlainFunction for Ngrams {
    const NAME: &'static str = "ngrams";
    const PARAMS: &'static [(&'static str, Arg)] = &[("text", Arg::Text), ("n", Arg::Integer)];

    fn return_type() -> DataType {
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn invoke(rows: &Rows, cols: &[ArrayRef]) -> Result<ArrayRef> {
        let ns = cols[1].as_primitive::<Int64Type>();
        let mut out = ListBuilder::new(StringBuilder::new());
        for (i, (text, n)) in bytes_rows(&cols[0])?.into_iter().zip(ns.iter()).enumerate() {
            let (Some(text), Some(n)) = (text, n) else {
                out.append_null();
                continue;
            };
            if !(1..=MAX_N).contains(&n) {
                return exec_err!("ngrams(text, n): n must be between 1 and {MAX_N}, got {n}");
            }
            let text = std::str::from_utf8(text).map_err(|e| RowFailure {
                kind: "invalid utf-8",
                message: format!("invalid UTF-8: {e}"),
            });
            match rows.row(i, text)? {
                Some(t) => {
                    for g in ngrams(t, n as usize) {
                        out.values().append_value(g);
                    }
                    out.append(true);
                }
                None => out.append_null(),
            }
        }
        Ok(Arc::new(out.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_letter_runs_lower_cased() {
        assert_eq!(
            ngrams("A red-brick House, 1890!", 1),
            ["a", "red", "brick", "house", "1890"]
        );
        assert_eq!(
            ngrams("A red-brick House", 2),
            ["a red", "red brick", "brick house"]
        );
        assert_eq!(ngrams("Zürich Straße", 2), ["zürich straße"]);
        assert!(ngrams("one two", 3).is_empty());
        assert!(ngrams("  ", 1).is_empty());
    }
}
