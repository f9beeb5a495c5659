//! Image functions: decode-safe inspection (`image_info`, `image_error`),
//! perceptual hashes (`phash`, `dhash`) and their distance (`hamming`), and
//! previews (`thumbnail`).

/// Declares `$func`, the image → UInt64 function `$name` computing `$hash`
/// of each image (documented by the module's `DOC`).
macro_rules! image_hash_function {
    ($func:ident = $marker:ident($name:literal, $hash:path)) => {
        pub type $func = $crate::common::plain::Plain<$marker>;

        pub struct $marker;

        impl $crate::common::plain::PlainFunction for $marker {
            const NAME: &'static str = $name;
            const PARAMS: &'static [(&'static str, $crate::common::args::Arg)] =
                $crate::common::args::IMAGE;

            fn return_type() -> datafusion::arrow::datatypes::DataType {
                datafusion::arrow::datatypes::DataType::UInt64
            }

            fn documentation() -> &'static datafusion::logical_expr::Documentation {
                &DOC
            }

            fn invoke(
                rows: &$crate::common::args::Rows,
                cols: &[datafusion::arrow::array::ArrayRef],
            ) -> datafusion::common::Result<datafusion::arrow::array::ArrayRef> {
                $crate::image::hash_images(rows, &cols[0], $hash)
            }
        }
    };
}

pub(crate) mod dhash;
pub(crate) mod hamming;
pub(crate) mod image_error;
pub(crate) mod image_info;
pub(crate) mod phash;
pub(crate) mod thumbnail;

use datafusion::arrow::array::ArrayRef;
use datafusion::common::Result;
use lakecap_models::image::{DynamicImage, decode};

use crate::common::args::Rows;
use crate::common::arrow::column;

/// The 64-bit `hash` of every image of `col`: NULL for NULL, and
/// `lakecap.on_error` for images that do not decode.
fn hash_images(rows: &Rows, col: &ArrayRef, hash: fn(&DynamicImage) -> u64) -> Result<ArrayRef> {
    let limits = rows.limits();
    Ok(column(rows.map_images(col, |b| {
        decode(b, limits).map(|img| hash(&img))
    })?))
}
