//! `image_info(img)`: format, width, height and channels from the header alone.

use std::sync::LazyLock;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use lakecap_models::image::{ImageInfo as Header, probe};

use crate::common::args::{Arg, IMAGE, Rows};
use crate::common::arrow::{StructColumns, field};
use crate::common::plain::{Plain, PlainFunction};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::IMAGE,
        "Reads format ('jpeg', 'png', 'gif', 'webp', 'bmp', 'tiff'), width, height and channels \
         from the image header without decoding pixels, so it is cheap enough to filter a whole \
         lake by size. Unreadable headers and images over lakecap.max_pixels give NULL and a \
         counted warning (or an error under lakecap.on_error = 'fail').",
        "image_info(img)",
    )
    .with_argument("img", "Encoded image bytes.")
    .with_sql_example(
        "SELECT image_info(img)['width'] AS w, image_info(img)['height'] AS h FROM lake\n\
         WHERE image_info(img)['width'] >= 256;",
    )
    .with_related_udf("image_error")
    .build()
});

static FIELDS: LazyLock<StructColumns<Header>> = LazyLock::new(|| {
    StructColumns::new(vec![
        field("format", |i: &Header| i.format),
        field("width", |i: &Header| i.width),
        field("height", |i: &Header| i.height),
        field("channels", |i: &Header| i.channels),
    ])
});

pub type ImageInfoFunc = Plain<ImageInfo>;

pub struct ImageInfo;

impl PlainFunction for ImageInfo {
    const NAME: &'static str = "image_info";
    const PARAMS: &'static [(&'static str, Arg)] = IMAGE;

    fn return_type() -> DataType {
        FIELDS.data_type()
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn invoke(rows: &Rows, cols: &[ArrayRef]) -> Result<ArrayRef> {
        let limits = rows.limits();
        FIELDS.array(&rows.map_images(&cols[0], |b| probe(b, limits))?)
    }
}
