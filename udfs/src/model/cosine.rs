//! `cosine(a, b)`: cosine similarity of two vectors.

use std::sync::LazyLock;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;

use crate::common::args::{Arg, Rows};
use crate::common::arrow::{column, vector_rows};
use crate::common::plain::{Plain, PlainFunction};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::MODEL,
        "Cosine similarity of two vectors (FixedSizeList or List of Float32/Float64), e.g. two \
         embed_text() columns. NULL when either is NULL or all-zero; vectors of different lengths \
         are an error.",
        "cosine(a, b)",
    )
    .with_argument("a", "A vector.")
    .with_argument("b", "A vector of the same length.")
    .with_sql_example("SELECT cosine(embed_text(alt), embed_text(caption)) FROM lake;")
    .with_related_udf("embed_text")
    .build()
});

pub type CosineFunc = Plain<Cosine>;

pub struct Cosine;

impl PlainFunction for Cosine {
    const NAME: &'static str = "cosine";
    const PARAMS: &'static [(&'static str, Arg)] = &[("a", Arg::Vector), ("b", Arg::Vector)];

    fn return_type() -> DataType {
        DataType::Float32
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn invoke(_: &Rows, cols: &[ArrayRef]) -> Result<ArrayRef> {
        let (a, b) = (
            vector_rows(cols[0].as_ref())?,
            vector_rows(cols[1].as_ref())?,
        );
        let mut out = Vec::with_capacity(a.len());
        for (row, (x, y)) in a.iter().zip(&b).enumerate() {
            out.push(match (x, y) {
                (Some(x), Some(y)) if x.len() != y.len() => {
                    return exec_err!(
                        "cosine: row {row}: vectors of length {} and {}",
                        x.len(),
                        y.len()
                    );
                }
                (Some(x), Some(y)) => {
                    let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
                    let n = x.iter().map(|p| p * p).sum::<f32>().sqrt()
                        * y.iter().map(|q| q * q).sum::<f32>().sqrt();
                    (n > 0.0).then(|| dot / n)
                }
                _ => None,
            });
        }
        Ok(column(out))
    }
}
