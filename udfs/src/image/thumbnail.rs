//! `thumbnail(img, max_side)`: a JPEG preview that fits in `max_side` pixels.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{AsArray, BinaryArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use lakecap_models::image::{decode, thumbnail_jpeg};

use crate::common::args::{Arg, RowFailure, Rows, arrays, bytes_rows, coerce};
use crate::common::diagnostics::DiagHandle;

const PARAMS: &[(&str, Arg)] = &[("img", Arg::Image), ("max_side", Arg::Integer)];
const MAX_SIDE: i64 = 4096;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "Downscales (never upscales) to fit max_side x max_side with Lanczos, flattens alpha onto \
         white and encodes a quality-85 JPEG: previews for reports and UIs. Undecodable images give \
         NULL and a counted warning (or an error under lakecap.on_error = 'fail').",
        "thumbnail(img, max_side)",
    )
    .with_argument("img", "Encoded image bytes.")
    .with_argument("max_side", "Longest side of the result in pixels, 1 to 4096.")
    .with_sql_example("COPY (SELECT key, thumbnail(img, 128) AS thumb FROM lake) TO 'previews/' STORED AS PARQUET;")
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ThumbnailFunc {
    signature: Signature,
    diag: DiagHandle,
}

impl ThumbnailFunc {
    pub fn new(diag: DiagHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            diag,
        }
    }
}

impl ScalarUDFImpl for ThumbnailFunc {
    fn name(&self) -> &str {
        "thumbnail"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(self.name(), PARAMS, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = Rows::new("thumbnail", &args, 0, &self.diag.0);
        let limits = rows.limits();
        let a = arrays(&args)?;
        let sides = a[1].as_primitive::<Int64Type>();
        let mut out = Vec::with_capacity(a[0].len());
        for (i, (img, side)) in bytes_rows(&a[0])?.into_iter().zip(sides.iter()).enumerate() {
            let (Some(img), Some(side)) = (img, side) else {
                out.push(None);
                continue;
            };
            if !(1..=MAX_SIDE).contains(&side) {
                return exec_err!(
                    "thumbnail(img, max_side): max_side must be between 1 and {MAX_SIDE}, got {side}"
                );
            }
            let thumb = decode(img, limits).and_then(|d| thumbnail_jpeg(&d, side as u32));
            out.push(rows.row(i, thumb.map_err(RowFailure::from))?);
        }
        Ok(ColumnarValue::Array(Arc::new(
            out.into_iter().collect::<BinaryArray>(),
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
