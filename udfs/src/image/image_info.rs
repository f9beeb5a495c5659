//! `image_info(img)`: format, width, height and channels from the header alone.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, StringArray, StructArray, UInt8Array, UInt32Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use lakecap_models::image::probe;

use crate::common::args::{Arg, Rows, arrays, coerce};
use crate::common::diagnostics::DiagHandle;

const PARAMS: &[(&str, Arg)] = &[("img", Arg::Image)];

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

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("format", DataType::Utf8, true),
        Field::new("width", DataType::UInt32, true),
        Field::new("height", DataType::UInt32, true),
        Field::new("channels", DataType::UInt8, true),
    ])
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageInfoFunc {
    signature: Signature,
    diag: DiagHandle,
}

impl ImageInfoFunc {
    pub fn new(diag: DiagHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            diag,
        }
    }
}

impl ScalarUDFImpl for ImageInfoFunc {
    fn name(&self) -> &str {
        "image_info"
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
        let rows = Rows::new("image_info", &args, 0, &self.diag.0);
        let limits = rows.limits();
        let infos = rows.map_images(&arrays(&args)?[0], |b| probe(b, limits))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                infos
                    .iter()
                    .map(|i| i.map(|i| i.format))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                infos
                    .iter()
                    .map(|i| i.map(|i| i.width))
                    .collect::<UInt32Array>(),
            ),
            Arc::new(
                infos
                    .iter()
                    .map(|i| i.map(|i| i.height))
                    .collect::<UInt32Array>(),
            ),
            Arc::new(
                infos
                    .iter()
                    .map(|i| i.map(|i| i.channels))
                    .collect::<UInt8Array>(),
            ),
        ];
        let nulls = NullBuffer::from(infos.iter().map(Option::is_some).collect::<Vec<_>>());
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
