//! `embed_image(img [, model])`: unit-length CLIP image embedding.

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{Documentation, ReturnFieldArgs, ScalarFunctionArgs, Signature};

use super::function::{Model, ModelFunction};
use super::vectors::image_vectors;
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

pub type EmbedImageFunc = Model<EmbedImage>;

/// `embed_image` under the session's `lakecap.clip_model`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct EmbedImage(pub ModelSetting);

#[async_trait]
impl ModelFunction for EmbedImage {
    const NAME: &'static str = "embed_image";

    fn signature() -> Signature {
        model_signature(&[Param::Image])
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn return_type(&self, args: &ReturnFieldArgs) -> Result<DataType> {
        model_vector_type(&model_id_at_plan(args, 1, &self.0)?, true)
    }

    async fn invoke(
        &self,
        args: &ScalarFunctionArgs,
        rows: &Rows<'_>,
        memo: &SessionMemo,
    ) -> Result<ArrayRef> {
        let model = model_id_at_run(&args.args, 1, &self.0)?;
        let v = image_vectors(rows, &arrays(args)?[0], &model, &memo.vectors).await?;
        vectors_array(&v, dim_of(args)?)
    }
}
