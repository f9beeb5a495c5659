//! `clip_score(img, text [, model])`: CLIPScore, 100 × max(cos, 0).

use std::sync::LazyLock;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{Documentation, ReturnFieldArgs, ScalarFunctionArgs, Signature};

use super::function::{Model, ModelFunction};
use super::vectors::{clip_score, image_vectors, text_vectors};
use crate::common::args::{Rows, arrays};
use crate::common::arrow::column;
use crate::common::memo::SessionMemo;
use crate::common::model_args::{Param, model_id_at_run, model_signature};
use crate::common::options::ModelSetting;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::MODEL,
        "CLIPScore of an image and a text: 100 × max(cosine of the CLIP image and text embeddings, 0) \
         (Hessel et al. 2021 without the 2.5 weight; DataComp filters at cosine 0.28, i.e. score 28). \
         Each distinct image and text is embedded once per session, however often the expression \
         appears (WHERE and SELECT). NULL or undecodable inputs give NULL.",
        "clip_score(img, text [, model])",
    )
    .with_argument("img", "Encoded image bytes.")
    .with_argument("text", "The caption or alt text.")
    .with_argument("model", "Optional CLIP model id or directory; default lakecap.clip_model.")
    .with_sql_example("SELECT key, alt FROM lake WHERE clip_score(img, alt) > 28;")
    .with_related_udf("embed_image")
    .build()
});

pub type ClipScoreFunc = Model<ClipScore>;

/// `clip_score` under the session's `lakecap.clip_model`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClipScore(pub ModelSetting);

#[async_trait]
impl ModelFunction for ClipScore {
    const NAME: &'static str = "clip_score";

    fn signature() -> Signature {
        model_signature(&[Param::Image, Param::Text])
    }

    fn documentation() -> &'static Documentation {
        &DOC
    }

    fn return_type(&self, _: &ReturnFieldArgs) -> Result<DataType> {
        Ok(DataType::Float32)
    }

    async fn invoke(
        &self,
        args: &ScalarFunctionArgs,
        rows: &Rows<'_>,
        memo: &SessionMemo,
    ) -> Result<ArrayRef> {
        let model = model_id_at_run(&args.args, 2, &self.0)?;
        let cols = arrays(args)?;
        let images = image_vectors(rows, &cols[0], &model, &memo.vectors).await?;
        let texts = text_vectors(&cols[1], &model, &rows.options, &memo.vectors).await?;
        let scores = images
            .iter()
            .zip(&texts)
            .map(|(i, t)| Some(clip_score(i.as_deref()?, t.as_deref()?)))
            .collect();
        Ok(column::<f32>(scores))
    }
}
