//! `hamming(a, b)`: number of differing bits between two 64-bit hashes.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use lakecap_models::image::hamming;

use crate::common::args::{Arg, arrays, coerce};

const PARAMS: &[(&str, Arg)] = &[("a", Arg::Hash), ("b", Arg::Hash)];

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

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HammingFunc {
    signature: Signature,
}

impl HammingFunc {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for HammingFunc {
    fn default() -> Self {
        Self::new()
    }
}

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

impl ScalarUDFImpl for HammingFunc {
    fn name(&self) -> &str {
        "hamming"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(self.name(), PARAMS, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let (x, y) = (as_u64(&a[0])?, as_u64(&a[1])?);
        let out: UInt32Array = x
            .iter()
            .zip(&y)
            .map(|(x, y)| Some(hamming((*x)?, (*y)?)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
