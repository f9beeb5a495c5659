//! `clip_score(img, text [, model])`: CLIPScore, 100 × max(cos, 0).

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::Float32Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use crate::common::args::{Rows, arrays};
use crate::common::diagnostics::DiagHandle;
use crate::common::model_args::{
    MemoHandle, Param, clip_score, image_vectors, model_id_at_run, model_signature, text_vectors,
};
use crate::common::options::ModelSetting;

pub(crate) static DOC: LazyLock<Documentation> = LazyLock::new(|| {
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

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClipScoreFunc {
    signature: Signature,
    model: ModelSetting,
    memo: MemoHandle,
    diag: DiagHandle,
}

impl ClipScoreFunc {
    pub fn new(model: ModelSetting, memo: MemoHandle, diag: DiagHandle) -> Self {
        Self {
            signature: model_signature(&[Param::Image, Param::Text]),
            model,
            memo,
            diag,
        }
    }
}

impl ScalarUDFImpl for ClipScoreFunc {
    fn name(&self) -> &str {
        "clip_score"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        internal_err!("clip_score is async")
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for ClipScoreFunc {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let model = model_id_at_run(&args.args, 2, &self.model)?;
        let cols = arrays(&args)?;
        let rows = Rows::new("clip_score", &args, 0, &self.diag.0);
        let images = image_vectors(&rows, &cols[0], &model, &self.memo.0.vectors).await?;
        let texts = text_vectors(&cols[1], &model, &rows.options, &self.memo.0.vectors).await?;
        let scores: Float32Array = images
            .iter()
            .zip(&texts)
            .map(|(i, t)| Some(clip_score(i.as_deref()?, t.as_deref()?)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(scores)))
    }
}
