//! `embed_image(img [, model])`: unit-length CLIP image embedding.

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use crate::common::args::{Rows, arrays};
use crate::common::diagnostics::DiagHandle;
use crate::common::model_args::{
    MemoHandle, Param, image_vectors, model_id_at_plan, model_id_at_run, model_signature,
    vector_field, vectors_array,
};
use crate::common::options::ModelSetting;

pub(crate) static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::MODEL,
        "Unit-length CLIP image embedding as FixedSizeList<Float32> (width = the model's \
         projection_dim). Images are decoded and preprocessed exactly as CLIPImageProcessor does, \
         batched across partitions (lakecap.batch_size), and each distinct image is computed once \
         per session. Undecodable images give NULL and a counted warning.",
        "embed_image(img [, model])",
    )
    .with_argument("img", "Encoded image bytes.")
    .with_argument(
        "model",
        "Optional CLIP model id (ORG/NAME in lakecap's model home or the HF cache) or directory; default lakecap.clip_model.",
    )
    .with_sql_example("SELECT key, embed_image(img) AS v FROM lake;")
    .with_related_udf("clip_score")
    .with_related_udf("cosine")
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EmbedImageFunc {
    signature: Signature,
    model: ModelSetting,
    memo: MemoHandle,
    diag: DiagHandle,
}

impl EmbedImageFunc {
    pub fn new(model: ModelSetting, memo: MemoHandle, diag: DiagHandle) -> Self {
        Self {
            signature: model_signature(&[Param::Image]),
            model,
            memo,
            diag,
        }
    }
}

impl ScalarUDFImpl for EmbedImageFunc {
    fn name(&self) -> &str {
        "embed_image"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        internal_err!("return_field_from_args is used")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        vector_field(self.name(), &model_id_at_plan(&args, 1, &self.model)?, true)
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        internal_err!("embed_image is async")
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for EmbedImageFunc {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let model = model_id_at_run(&args.args, 1, &self.model)?;
        let dim = crate::common::model_args::dim_of(&args)?;
        let rows = Rows::new("embed_image", &args, 0, &self.diag.0);
        let v = image_vectors(&rows, &arrays(&args)?[0], &model, &self.memo.0.vectors).await?;
        Ok(ColumnarValue::Array(vectors_array(&v, dim)?))
    }
}
