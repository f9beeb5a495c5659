//! `phash(img)`: perceptual DCT hash, bit-identical to Python `imagehash.phash`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use lakecap_models::image::{decode, phash};

use crate::common::args::{Arg, Rows, arrays, coerce};
use crate::common::diagnostics::DiagHandle;

const PARAMS: &[(&str, Arg)] = &[("img", Arg::Image)];

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "64-bit perceptual hash (DCT of a 32x32 Lanczos thumbnail), bit-identical to Python \
         imagehash.phash with default sizes; compare with hamming(). Undecodable images give NULL \
         and a counted warning (or an error under lakecap.on_error = 'fail').",
        "phash(img)",
    )
    .with_argument(
        "img",
        "Encoded image bytes (JPEG, PNG, GIF, WebP, BMP, TIFF).",
    )
    .with_sql_example("SELECT key, phash(img) AS ph FROM lake;")
    .with_related_udf("dhash")
    .with_related_udf("hamming")
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PhashFunc {
    signature: Signature,
    diag: DiagHandle,
}

impl PhashFunc {
    pub fn new(diag: DiagHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            diag,
        }
    }
}

impl ScalarUDFImpl for PhashFunc {
    fn name(&self) -> &str {
        "phash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(self.name(), PARAMS, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = Rows::new("phash", &args, 0, &self.diag.0);
        let limits = rows.limits();
        let hashes = rows.map_images(&arrays(&args)?[0], |b| {
            decode(b, limits).map(|img| phash(&img))
        })?;
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::from(hashes))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
