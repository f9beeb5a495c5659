//! `cosine(a, b)`: cosine similarity of two vectors.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Float32Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::args::arrays;
use crate::common::model_args::vector_rows;

pub(crate) static DOC: LazyLock<Documentation> = LazyLock::new(|| {
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

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CosineFunc {
    signature: Signature,
}

impl CosineFunc {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for CosineFunc {
    fn default() -> Self {
        Self::new()
    }
}

fn is_vector(t: &DataType) -> bool {
    match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            matches!(
                f.data_type(),
                DataType::Float32 | DataType::Float64 | DataType::Null
            )
        }
        DataType::Null => true,
        _ => false,
    }
}

impl ScalarUDFImpl for CosineFunc {
    fn name(&self) -> &str {
        "cosine"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 {
            return plan_err!("cosine(a, b) takes 2 arguments, got {}", arg_types.len());
        }
        for (name, t) in ["a", "b"].iter().zip(arg_types) {
            if !is_vector(t) {
                return plan_err!(
                    "cosine(a, b): argument `{name}` must be a vector (list of floats), got {t}"
                );
            }
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let cols = arrays(&args)?;
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
        Ok(ColumnarValue::Array(Arc::new(Float32Array::from(out))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
