//! `alt_quality(alt)`: features and a [0, 1] score of a web alt text.

use std::sync::LazyLock;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use lakecap_models::text::{AltQuality as Quality, alt_quality};

use crate::common::args::{Arg, RowFailure, Rows, bytes_rows};
use crate::common::arrow::{StructColumns, field};
use crate::common::plain::{Plain, PlainFunction};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::TEXT,
        "Rule-based alt-text quality after LAION-5B and DataComp basic filtering: a struct of \
         chars, words, is_filename, has_url, is_boilerplate, is_ad, repetition (share of repeated \
         words), lang (ISO 639-3, NULL when unsure), lang_guess (the best guess however unsure, \
         as DataComp's top-1 language filter takes it) and score in [0, 1]. The score starts at 1 and \
         is multiplied by 0.05 for a file name, 0.1 boilerplate, 0.2 advertising, 0.3 a URL, 0.5 \
         for two words or fewer, 0.5 under five characters, and (1 - repetition) when over a third \
         of the words repeat. NULL text gives NULL; binary input that is not UTF-8 gives NULL and a \
         counted warning.",
        "alt_quality(alt)",
    )
    .with_argument("alt", "Alt text or caption.")
    .with_sql_example("SELECT alt, alt_quality(alt)['score'] AS s FROM lake ORDER BY s DESC;")
    .build()
});

static FIELDS: LazyLock<StructColumns<Quality>> = LazyLock::new(|| {
    StructColumns::new(vec![
        field("chars", |q: &Quality| q.chars),
        field("words", |q: &Quality| q.words),
        field("is_filename", |q: &Quality| q.is_filename),
        field("has_url", |q: &Quality| q.has_url),
        field("is_boilerplate", |q: &Quality| q.is_boilerplate),
        field("is_ad", |q: &Quality| q.is_ad),
        field("repetition", |q: &Quality| q.repetition),
        field("lang", |q: &Quality| q.lang),
        field("lang_guess", |q: &Quality| q.lang_guess),
        field("score", |q: &Quality| q.score),
    ])
});

pub type AltQualityFunc = Plain<AltQuality>;

pub struct AltQuality;

impl PlainFunction for AltQuality {
    const NAME: &'static str = "alt_quality";
    const PARAMS: &'static [(&'static str, Arg)] = &[("alt", Arg::Text)];

    fn return_type() -> DataType {
        FIELDS.data_type()
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn invoke(rows: &Rows, cols: &[ArrayRef]) -> Result<ArrayRef> {
        let quality = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(alt_quality)
                .map_err(|e| RowFailure {
                    kind: "invalid utf-8",
                    message: format!("invalid UTF-8: {e}"),
                })
        };
        let q = bytes_rows(&cols[0])?
            .into_iter()
            .enumerate()
            .map(|(i, b)| match b {
                None => Ok(None),
                Some(b) => rows.row(i, quality(b)),
            })
            .collect::<Result<Vec<_>>>()?;
        FIELDS.array(&q)
    }
}
