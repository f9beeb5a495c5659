//! `embed_text(text [, model])`: unit-length sentence or CLIP text embedding.

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use crate::common::args::arrays;
use crate::common::model_args::{
    MemoHandle, Param, model_id_at_plan, model_id_at_run, model_signature, text_vectors,
    vector_field, vectors_array,
};
use crate::common::options::{LakecapOptions, ModelSetting};

pub(crate) static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::MODEL,
        "Unit-length text embedding as FixedSizeList<Float32>: a sentence encoder's mean-pooled \
         output (all-MiniLM-L6-v2 by default, identical to sentence-transformers) or a CLIP text \
         tower's projection. Texts longer than the model's limit are truncated as the reference \
         tokenizer does. NULL gives NULL.",
        "embed_text(text [, model])",
    )
    .with_argument("text", "A string column.")
    .with_argument(
        "model",
        "Optional model id or directory (BERT-style or CLIP); default lakecap.text_model.",
    )
    .with_sql_example("SELECT key, embed_text(alt) AS v FROM lake;")
    .with_related_udf("cosine")
    .with_related_udf("embed_image")
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EmbedTextFunc {
    signature: Signature,
    model: ModelSetting,
    memo: MemoHandle,
}

impl EmbedTextFunc {
    pub fn new(model: ModelSetting, memo: MemoHandle) -> Self {
        Self {
            signature: model_signature(&[Param::Text]),
            model,
            memo,
        }
    }
}

impl ScalarUDFImpl for EmbedTextFunc {
    fn name(&self) -> &str {
        "embed_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        internal_err!("return_field_from_args is used")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        vector_field(
            self.name(),
            &model_id_at_plan(&args, 1, &self.model)?,
            false,
        )
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        internal_err!("embed_text is async")
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for EmbedTextFunc {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let model = model_id_at_run(&args.args, 1, &self.model)?;
        let dim = crate::common::model_args::dim_of(&args)?;
        let options = LakecapOptions::from_config(&args.config_options);
        let v = text_vectors(&arrays(&args)?[0], &model, &options, &self.memo.0.vectors).await?;
        Ok(ColumnarValue::Array(vectors_array(&v, dim)?))
    }
}
