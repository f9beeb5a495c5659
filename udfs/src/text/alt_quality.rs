//! `alt_quality(alt)`: features and a [0, 1] score of a web alt text.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, StringArray, StructArray, UInt32Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use lakecap_models::text::{AltQuality, alt_quality};

use crate::common::args::{Arg, RowFailure, Rows, arrays, bytes_rows, coerce};
use crate::common::diagnostics::DiagHandle;

const PARAMS: &[(&str, Arg)] = &[("alt", Arg::Text)];

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::TEXT,
        "Rule-based alt-text quality after LAION-5B and DataComp basic filtering: a struct of \
         chars, words, is_filename, has_url, is_boilerplate, is_ad, repetition (share of repeated \
         words), lang (ISO 639-3, NULL when unsure) and score in [0, 1]. The score starts at 1 and \
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

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("chars", DataType::UInt32, true),
        Field::new("words", DataType::UInt32, true),
        Field::new("is_filename", DataType::Boolean, true),
        Field::new("has_url", DataType::Boolean, true),
        Field::new("is_boilerplate", DataType::Boolean, true),
        Field::new("is_ad", DataType::Boolean, true),
        Field::new("repetition", DataType::Float32, true),
        Field::new("lang", DataType::Utf8, true),
        Field::new("score", DataType::Float32, true),
    ])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AltQualityFunc {
    signature: Signature,
    diag: DiagHandle,
}

impl AltQualityFunc {
    pub fn new(diag: DiagHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            diag,
        }
    }
}

impl ScalarUDFImpl for AltQualityFunc {
    fn name(&self) -> &str {
        "alt_quality"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(self.name(), PARAMS, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = Rows::new("alt_quality", &args, 0, &self.diag.0);
        let a = arrays(&args)?;
        let mut q: Vec<Option<AltQuality>> = Vec::with_capacity(a[0].len());
        for (i, bytes) in bytes_rows(&a[0])?.into_iter().enumerate() {
            q.push(match bytes {
                None => None,
                Some(b) => rows.row(
                    i,
                    std::str::from_utf8(b)
                        .map(alt_quality)
                        .map_err(|e| RowFailure {
                            kind: "invalid utf-8",
                            message: format!("invalid UTF-8: {e}"),
                        }),
                )?,
            });
        }
        let get = |f: fn(&AltQuality) -> u32| {
            q.iter().map(|v| v.as_ref().map(f)).collect::<UInt32Array>()
        };
        let flag = |f: fn(&AltQuality) -> bool| {
            q.iter()
                .map(|v| v.as_ref().map(f))
                .collect::<BooleanArray>()
        };
        let real = |f: fn(&AltQuality) -> f32| {
            q.iter()
                .map(|v| v.as_ref().map(f))
                .collect::<Float32Array>()
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(get(|v| v.chars)),
            Arc::new(get(|v| v.words)),
            Arc::new(flag(|v| v.is_filename)),
            Arc::new(flag(|v| v.has_url)),
            Arc::new(flag(|v| v.is_boilerplate)),
            Arc::new(flag(|v| v.is_ad)),
            Arc::new(real(|v| v.repetition)),
            Arc::new(
                q.iter()
                    .map(|v| v.as_ref().and_then(|v| v.lang))
                    .collect::<StringArray>(),
            ),
            Arc::new(real(|v| v.score)),
        ];
        let nulls = NullBuffer::from(q.iter().map(Option::is_some).collect::<Vec<_>>());
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            fields(),
            columns,
            Some(nulls),
        )?)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
