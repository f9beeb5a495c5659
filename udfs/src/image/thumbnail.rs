//! `thumbnail(img, max_side)`: a JPEG preview that fits in `max_side` pixels.

use std::sync::LazyLock;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use lakecap_models::image::{decode, thumbnail_jpeg};

use crate::common::args::{Arg, RowFailure, Rows, bytes_rows};
use crate::common::arrow::column;
use crate::common::plain::{Plain, PlainFunction};

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

pub type ThumbnailFunc = Plain<Thumbnail>;

pub struct Thumbnail;

impl PlainFunction for Thumbnail {
    const NAME: &'static str = "thumbnail";
    const PARAMS: &'static [(&'static str, Arg)] =
        &[("img", Arg::Image), ("max_side", Arg::Integer)];

    fn return_type() -> DataType {
        DataType::Binary
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn invoke(rows: &Rows, cols: &[ArrayRef]) -> Result<ArrayRef> {
        let limits = rows.limits();
        let sides = cols[1].as_primitive::<Int64Type>();
        let mut out = Vec::with_capacity(cols[0].len());
        for (i, (img, side)) in bytes_rows(&cols[0])?
            .into_iter()
            .zip(sides.iter())
            .enumerate()
        {
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
        Ok(column(out))
    }
}
