//! `hamming(a, b)`: number of differing bits between two 64-bit hashes.

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use lakecap_models::image::hamming;

use crate::common::args::{Arg, Rows};
use crate::common::arrow::column;
use crate::common::plain::{Plain, PlainFunction};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "Hamming distance (0-64) between two 64-bit hashes such as phash() or dhash(). Int64 \
         hashes are read bit for bit, so hashes stored by other tools as signed integers compare correctly.",
        "hamming(a, b)",
    )
    .with_argument("a", "A 64-bit hash (UInt64 or Int64).")
    .with_argument("b", "A 64-bit hash (UInt64 or Int64).")
    .with_sql_example("SELECT a.key, b.key FROM h a JOIN h b ON a.key < b.key WHERE hamming(a.ph, b.ph) <= 6;")
    .with_related_udf("phash")
    .build()
});

pub type HammingFunc = Plain<Hamming>;

pub struct Hamming;

/// Hash values as u64, reinterpreting Int64 bit for bit.
fn as_u64(a: &dyn Array) -> Result<Vec<Option<u64>>> {
    Ok(match a.data_type() {
        DataType::UInt64 => a.as_primitive::<UInt64Type>().iter().collect(),
        DataType::Int64 => a
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| v as u64))
            .collect(),
        other => return exec_err!("hamming: expected UInt64 or Int64, got {other}"),
    })
}

impl PlainFunction for Hamming {
    const NAME: &'static str = "hamming";
    const PARAMS: &'static [(&'static str, Arg)] = &[("a", Arg::Hash), ("b", Arg::Hash)];

    fn return_type() -> DataType {
        DataType::UInt32
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn invoke(_: &Rows, cols: &[ArrayRef]) -> Result<ArrayRef> {
        let (x, y) = (as_u64(&cols[0])?, as_u64(&cols[1])?);
        let distances = x
            .iter()
            .zip(&y)
            .map(|(x, y)| Some(hamming((*x)?, (*y)?)))
            .collect();
        Ok(column::<u32>(distances))
    }
}
