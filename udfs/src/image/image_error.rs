//! `image_error(img)`: why an image does not decode, or NULL when it does.

use std::sync::LazyLock;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use lakecap_models::image::decode;

use crate::common::args::{Arg, IMAGE, Rows, bytes_rows};
use crate::common::arrow::column;
use crate::common::plain::{Plain, PlainFunction};

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

pub type ImageErrorFunc = Plain<ImageError>;

pub struct ImageError;

impl PlainFunction for ImageError {
    const NAME: &'static str = "image_error";
    const PARAMS: &'static [(&'static str, Arg)] = IMAGE;

    fn return_type() -> DataType {
        DataType::Utf8
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    /// Never warns: the reason is the value.
    fn invoke(rows: &Rows, cols: &[ArrayRef]) -> Result<ArrayRef> {
        let limits = rows.limits();
        let reasons = bytes_rows(&cols[0])?
            .into_iter()
            .map(|b| match b {
                None => Some(MISSING.to_string()),
                Some(b) => decode(b, limits).err().map(|e| e.to_string()),
            })
            .collect();
        Ok(column(reasons))
    }
}
