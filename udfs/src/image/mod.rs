//! Image functions: decode-safe inspection (`image_info`, `image_error`),
//! perceptual hashes (`phash`, `dhash`) and their distance (`hamming`), and
//! previews (`thumbnail`).

/// Declares `$func`, the function `$name(img [, mode])` → UInt64 computing
/// `$hash` of each image's grayscale plane (documented by the module's
/// `DOC`); `'fast'` reads JPEGs from their DC coefficients or luma alone.
macro_rules! image_hash_function {
    ($func:ident = $marker:ident($name:literal, $hash:path)) => {
        pub type $func = $crate::common::plain::Plain<$marker>;

        pub struct $marker;

        impl $crate::common::plain::PlainFunction for $marker {
            const NAME: &'static str = $name;
            const PARAMS: &'static [(&'static str, $crate::common::args::Arg)] = &[
                ("img", $crate::common::args::Arg::Image),
                ("mode", $crate::common::args::Arg::Text),
            ];
            const OPTIONAL: usize = 1;

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
                let fast = $crate::image::fast_mode($name, cols.get(1))?;
                $crate::image::hash_images(rows, &cols[0], $hash, fast)
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

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use lakecap_models::image::{LumaPlane, decode, decode_luma_fast, to_luma};

use crate::common::args::Rows;
use crate::common::arrow::column;

/// Whether a hash call's `mode` argument is `'fast'` (else `'exact'`, the
/// default); every row must give the same mode.
fn fast_mode(func: &str, mode: Option<&ArrayRef>) -> Result<bool> {
    let Some(mode) = mode else { return Ok(false) };
    let mode = cast(mode, &DataType::Utf8)?;
    let mut modes = mode.as_string::<i32>().iter();
    let first = modes.next().flatten();
    if modes.any(|m| m != first) {
        return plan_err!("{func}(img, mode): mode must be the same for every row");
    }
    // NULL is the default, as an absent mode is.
    match first.unwrap_or("exact") {
        "exact" => Ok(false),
        "fast" => Ok(true),
        other => plan_err!("{func}(img, mode): mode must be 'exact' or 'fast', got '{other}'"),
    }
}

/// The 64-bit `hash` of the grayscale plane of every image of `col`: NULL
/// for NULL, and `lakecap.on_error` for images that do not decode. `fast`
/// takes [`decode_luma_fast`]'s plane.
fn hash_images(
    rows: &Rows,
    col: &ArrayRef,
    hash: fn(&LumaPlane) -> u64,
    fast: bool,
) -> Result<ArrayRef> {
    let limits = rows.limits();
    Ok(column(rows.map_images(col, |b| {
        let plane = match fast {
            true => decode_luma_fast(b, limits)?,
            false => LumaPlane::pixels(to_luma(&decode(b, limits)?)),
        };
        Ok(hash(&plane))
    })?))
}
