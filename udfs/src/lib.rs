//! lakecap's SQL functions for DataFusion.
//!
//! Every function is a [`datafusion::logical_expr::ScalarUDFImpl`] in its own
//! file (struct `PhashFunc`, SQL name `phash`, ...) or a table function
//! ([`NearDuplicatesFunc`], [`SemanticDuplicatesFunc`]). They share three pieces:
//! - [`LakecapOptions`]: the `lakecap.*` session options (`SET lakecap.on_error = 'fail'`),
//!   read by every invocation from DataFusion's `ConfigOptions`.
//! - [`Diagnostics`]: per-session counters of rows a function could not process.
//!   Under `on_error = 'null'` such a row yields NULL and one counted warning,
//!   never a panic and never a dropped row.
//! - `args`: argument coercion (clear plan-time errors for wrong types) and
//!   per-row value access for the plain and view Arrow types parquet delivers.
//!
//! Model functions (`embed_image`, `embed_text`, `clip_score`, and the
//! generation functions `recaption`, `fuse` and `llm`) are async UDFs:
//! they hand whole batches to the model scheduler of `lakecap-models` and
//! share a [`SessionMemo`] (embeddings and generated texts) so that each
//! distinct input is computed once per
//! session, however often a query mentions it (DataFusion evaluates a UDF in
//! WHERE and again in SELECT). `model_args` holds what they share.
//!
//! [`register_all`] installs everything into a `SessionContext`.

mod common;
mod image;
mod model;
mod table;
mod text;

use std::sync::Arc;

use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::logical_expr::{Documentation, ScalarUDF};
use datafusion::prelude::SessionContext;

pub use common::diagnostics::{DiagHandle, Diagnostics, WarningCount};
pub use common::model_args::{EmbeddingMemo, MemoHandle, SessionMemo, TextMemo};
pub use common::options::{
    DEFAULT_CAPTION_MODEL, DEFAULT_CLIP_MODEL, DEFAULT_FUSE_PROMPT, DEFAULT_LLM_MODEL,
    DEFAULT_TEXT_MODEL, FuseOptions, LakecapOptions, LlmOptions, ModelSetting, OnError, Switch,
};
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
pub use model::fuse::FuseFunc;
pub use model::llm::LlmFunc;
pub use model::recaption::RecaptionFunc;
pub use table::near_duplicates::NearDuplicatesFunc;
pub use table::semantic_duplicates::SemanticDuplicatesFunc;
pub use text::alt_quality::AltQualityFunc;

/// Every lakecap scalar function, reporting into `diag`; the model functions
/// follow the model settings of `options` (the session's) and share one memo.
pub fn scalar_functions(diag: &Arc<Diagnostics>, options: &LakecapOptions) -> Vec<ScalarUDF> {
    let d = DiagHandle(Arc::clone(diag));
    let memo = MemoHandle::default();
    let asynchronous = |f: Arc<dyn datafusion::logical_expr::async_udf::AsyncScalarUDFImpl>| {
        AsyncScalarUDF::new(f).into_scalar_udf()
    };
    vec![
        asynchronous(Arc::new(EmbedImageFunc::new(
            options.clip_model.clone(),
            memo.clone(),
            d.clone(),
        ))),
        asynchronous(Arc::new(EmbedTextFunc::new(
            options.text_model.clone(),
            memo.clone(),
        ))),
        asynchronous(Arc::new(ClipScoreFunc::new(
            options.clip_model.clone(),
            memo.clone(),
            d.clone(),
        ))),
        asynchronous(Arc::new(RecaptionFunc::new(memo.clone(), d.clone()))),
        asynchronous(Arc::new(FuseFunc::new(memo.clone(), d.clone()))),
        asynchronous(Arc::new(LlmFunc::new(memo, d.clone()))),
        ScalarUDF::from(CosineFunc::new()),
        ScalarUDF::from(ImageInfoFunc::new(d.clone())),
        ScalarUDF::from(ImageErrorFunc::new()),
        ScalarUDF::from(PhashFunc::new(d.clone())),
        ScalarUDF::from(DhashFunc::new(d.clone())),
        ScalarUDF::from(HammingFunc::new()),
        ScalarUDF::from(ThumbnailFunc::new(d.clone())),
        ScalarUDF::from(AltQualityFunc::new(d)),
    ]
}

/// A function's documentation. DataFusion's async wrapper does not forward
/// `documentation()`, so the model functions' docs are looked up by name.
pub fn documentation(udf: &ScalarUDF) -> Option<&Documentation> {
    udf.documentation().or_else(|| match udf.name() {
        "embed_image" => Some(&*model::embed_image::DOC),
        "embed_text" => Some(&*model::embed_text::DOC),
        "clip_score" => Some(&*model::clip_score::DOC),
        "fuse" => Some(&*model::fuse::DOC),
        "recaption" => Some(&*model::recaption::DOC),
        "llm" => Some(&*model::llm::DOC),
        _ => None,
    })
}

/// Registers every lakecap function (scalar and table) into `ctx`, bound to
/// the session's `lakecap.*` options (registered first by the engine).
pub fn register_all(ctx: &SessionContext, diag: &Arc<Diagnostics>) {
    let options = LakecapOptions::from_config(ctx.state().config_options());
    for f in scalar_functions(diag, &options) {
        ctx.register_udf(f);
    }
    ctx.register_udtf("near_duplicates", Arc::new(NearDuplicatesFunc));
    ctx.register_udtf("semantic_duplicates", Arc::new(SemanticDuplicatesFunc));
}
