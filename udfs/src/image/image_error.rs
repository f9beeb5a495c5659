//! `image_error(img)`: why an image does not decode, or NULL when it does.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use lakecap_models::image::decode;

use crate::common::args::{Arg, arrays, bytes_rows, coerce};
use crate::common::options::LakecapOptions;

const PARAMS: &[(&str, Arg)] = &[("img", Arg::Image)];

/// The reason given for a NULL image, so that `image_error(img) IS NULL` means "usable".
const MISSING: &str = "missing image (NULL)";

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "NULL when the image decodes fully within lakecap.max_pixels and lakecap.max_image_bytes; \
         otherwise a short reason (empty, not an image, truncated jpeg, corrupt png: ..., \
         100000x100000 exceeds lakecap.max_pixels, ...). A NULL image gives 'missing image (NULL)', \
         so `image_error(img) IS NULL` selects exactly the usable rows. Never warns: it is the diagnosis.",
        "image_error(img)",
    )
    .with_argument("img", "Encoded image bytes.")
    .with_sql_example("SELECT image_error(img) AS reason, count(*) FROM lake GROUP BY 1;")
    .with_related_udf("image_info")
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageErrorFunc {
    signature: Signature,
}

impl ImageErrorFunc {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for ImageErrorFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for ImageErrorFunc {
    fn name(&self) -> &str {
        "image_error"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(self.name(), PARAMS, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let limits = LakecapOptions::from_config(&args.config_options).decode_limits();
        let a = arrays(&args)?;
        let reasons: StringArray = bytes_rows(&a[0])?
            .into_iter()
            .map(|b| match b {
                None => Some(MISSING.to_string()),
                Some(b) => decode(b, limits).err().map(|e| e.to_string()),
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(reasons)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
