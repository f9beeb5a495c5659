//! lakecap's SQL functions for DataFusion, one function per file, grouped by
//! family:
//! - `image/`: `image_info`, `image_error`, `phash`, `dhash`, `hamming`,
//!   `thumbnail`; `text/`: `alt_quality`. Synchronous, each a
//!   `PlainFunction` (name, parameters, return type, docs, one batch) that
//!   `common::plain::Plain` turns into a `ScalarUDFImpl` with plan-time
//!   argument checks (`PhashFunc` is `Plain<Phash>`, SQL name `phash`).
//! - `model/`: `embed_image`, `embed_text`, `clip_score`, `cosine`,
//!   `recaption`, `fuse`, `llm`, `vlm`, `nsfw_score`, `embedding_head`. Except `cosine`, async UDFs, each a
//!   `ModelFunction` made a DataFusion function by `model::function::Model`:
//!   they hand whole batches to the model scheduler of `lakecap-models` and
//!   share a [`SessionMemo`] (embeddings and generated texts) so that each
//!   distinct input is computed once per session, however often a query
//!   mentions it (DataFusion evaluates a UDF in WHERE and again in SELECT).
//! - `table/`: the table functions [`NearDuplicatesFunc`] and
//!   [`SemanticDuplicatesFunc`], reading a registered table.
//! - `common/`: what they share.
//!   - [`LakecapOptions`] (`options`): the `lakecap.*` session options
//!     (`SET lakecap.on_error = 'fail'`), typed and checked at `SET`, read by
//!     every invocation from DataFusion's `ConfigOptions`.
//!   - [`Diagnostics`] (`diagnostics`): per-session counters of rows a
//!     function could not process. Under `on_error = 'null'` such a row
//!     yields NULL and one counted warning, never a panic and never a dropped
//!     row.
//!   - `args`: argument coercion (clear plan-time errors for wrong types) and
//!     per-row value access for the plain and view Arrow types parquet
//!     delivers; `model_args`: the same for model functions (signatures,
//!     model argument, embedding width, blocking work).
//!   - `memo`: the session memo and `MemoBatch`, one batch's rows checked
//!     against it; `arrow`: result columns from per-row values.
//!
//! [`register_all`] installs everything into a `SessionContext`.

mod common;
mod image;
mod model;
mod table;
mod text;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, Documentation, ScalarUDF};
use datafusion::prelude::SessionContext;

pub use common::applied::{AppliedOptions, refused_options};
pub use common::diagnostics::{DiagHandle, Diagnostics, WarningCount};
pub use common::memo::{EmbeddingMemo, MemoHandle, SessionMemo, TextMemo};
pub use common::options::{
    DEFAULT_CAPTION_MODEL, DEFAULT_CLIP_MODEL, DEFAULT_FUSE_PROMPT, DEFAULT_LLM_MODEL,
    DEFAULT_NSFW_MODEL, DEFAULT_TEXT_MODEL, DEFAULT_VLM_MODEL, DeviceSetting, FuseOptions,
    LakecapOptions, LakecapSettings, LlmOptions, ModelSetting, OnError, PrecisionSetting, Switch,
    VlmOptions,
};
pub use common::row_keys::{RowKeyFunc, RowKeyRule};
pub use image::dhash::DhashFunc;
pub use image::hamming::HammingFunc;
pub use image::image_error::ImageErrorFunc;
pub use image::image_info::ImageInfoFunc;
pub use image::phash::PhashFunc;
pub use image::thumbnail::ThumbnailFunc;
pub use model::clip_score::ClipScoreFunc;
pub use model::cosine::CosineFunc;
pub use model::embed_image::EmbedImageFunc;
pub use model::embed_text::EmbedTextFunc;
pub use model::embedding_head::EmbeddingHeadFunc;
pub use model::fuse::FuseFunc;
pub use model::llm::LlmFunc;
pub use model::nsfw_score::NsfwScoreFunc;
pub use model::recaption::RecaptionFunc;
pub use model::vlm::VlmFunc;
pub use table::kmeans::KmeansFunc;
pub use table::knn::KnnFunc;
pub use table::near_duplicates::NearDuplicatesFunc;
pub use table::semantic_duplicates::SemanticDuplicatesFunc;
pub use table::table_args::is_table_function_result;
pub use text::alt_quality::AltQualityFunc;
pub use text::caption_stats::CaptionStatsFunc;
pub use text::ngrams::NgramsFunc;

/// Every lakecap scalar function, reporting into `diag`; the model functions
/// follow the model settings of `options` (the session's) and share one memo.
pub fn scalar_functions(diag: &Arc<Diagnostics>, options: &LakecapOptions) -> Vec<ScalarUDF> {
    use model::clip_score::ClipScore;
    use model::embed_image::EmbedImage;
    use model::embed_text::EmbedText;
    use model::{fuse::Fuse, llm::Llm, nsfw_score::NsfwScore, recaption::Recaption, vlm::Vlm};
    let d = DiagHandle(Arc::clone(diag));
    let memo = MemoHandle::default();
    let (clip, text) = (&options.clip_model, &options.text_model);
    vec![
        EmbedImageFunc::new(EmbedImage(clip.clone()), memo.clone(), d.clone()).into_udf(),
        EmbedTextFunc::new(EmbedText(text.clone()), memo.clone(), d.clone()).into_udf(),
        ClipScoreFunc::new(ClipScore(clip.clone()), memo.clone(), d.clone()).into_udf(),
        RecaptionFunc::new(Recaption, memo.clone(), d.clone()).into_udf(),
        FuseFunc::new(Fuse, memo.clone(), d.clone()).into_udf(),
        LlmFunc::new(Llm, memo.clone(), d.clone()).into_udf(),
        VlmFunc::new(Vlm, memo.clone(), d.clone()).into_udf(),
        NsfwScoreFunc::new(NsfwScore(options.nsfw_model.clone()), memo, d.clone()).into_udf(),
        ScalarUDF::from(EmbeddingHeadFunc::default()),
        ScalarUDF::from(CosineFunc::new(d.clone())),
        ScalarUDF::from(ImageInfoFunc::new(d.clone())),
        ScalarUDF::from(ImageErrorFunc::new(d.clone())),
        ScalarUDF::from(PhashFunc::new(d.clone())),
        ScalarUDF::from(DhashFunc::new(d.clone())),
        ScalarUDF::from(HammingFunc::new(d.clone())),
        ScalarUDF::from(ThumbnailFunc::new(d.clone())),
        ScalarUDF::from(AltQualityFunc::new(d.clone())),
        ScalarUDF::from(NgramsFunc::new(d)),
    ]
}

/// A function's documentation. DataFusion's async wrapper does not forward
/// `documentation()`, so the model functions' docs are looked up by name.
pub fn documentation(udf: &ScalarUDF) -> Option<&Documentation> {
    udf.documentation()
        .or_else(|| model::documentation(udf.name()))
}

/// Registers every lakecap function (scalar and table) into `ctx`, bound to
/// the session's `lakecap.*` options (registered first by the engine).
pub fn register_all(ctx: &SessionContext, diag: &Arc<Diagnostics>) {
    let options = LakecapOptions::from_config(ctx.state().config_options());
    let functions = scalar_functions(diag, &options);
    let names = functions
        .iter()
        .map(|f| f.name().to_string())
        .collect::<Vec<_>>();
    for f in functions {
        ctx.register_udf(f);
    }
    ctx.register_udf(ScalarUDF::from(RowKeyFunc::default()));
    ctx.add_analyzer_rule(Arc::new(RowKeyRule::new(names)));
    ctx.register_udtf("near_duplicates", Arc::new(NearDuplicatesFunc));
    ctx.register_udtf("semantic_duplicates", Arc::new(SemanticDuplicatesFunc));
    ctx.register_udtf("kmeans", Arc::new(KmeansFunc));
    ctx.register_udtf("knn", Arc::new(KnnFunc));
    ctx.register_udaf(AggregateUDF::from(CaptionStatsFunc::default()));
}
