//! `embed_text(text [, model])`: unit-length sentence or CLIP text embedding.

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{Documentation, ReturnFieldArgs, ScalarFunctionArgs, Signature};

use super::function::{Model, ModelFunction};
use super::vectors::text_vectors;
use crate::common::args::{Rows, arrays};
use crate::common::arrow::vectors_array;
use crate::common::memo::SessionMemo;
use crate::common::model_args::{
    Param, dim_of, model_id_at_plan, model_id_at_run, model_signature, model_vector_type,
};
use crate::common::options::ModelSetting;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
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

pub type EmbedTextFunc = Model<EmbedText>;

/// `embed_text` under the session's `lakecap.text_model`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EmbedText(pub ModelSetting);

#[async_trait]
impl ModelFunction for EmbedText {
    const NAME: &'static str = "embed_text";

    fn signature() -> Signature {
        model_signature(&[Param::Text])
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn return_type(&self, args: &ReturnFieldArgs) -> Result<DataType> {
        model_vector_type(&model_id_at_plan(args, 1, &self.0)?, false)
    }

    async fn invoke(
        &self,
        args: &ScalarFunctionArgs,
        rows: &Rows<'_>,
        memo: &SessionMemo,
    ) -> Result<ArrayRef> {
        let model = model_id_at_run(&args.args, 1, &self.0)?;
        let v = text_vectors(&arrays(args)?[0], &model, &rows.options, &memo.vectors).await?;
        vectors_array(&v, dim_of(args)?)
    }
}
