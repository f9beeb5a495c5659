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

mod args;
mod caption_cache;
mod diagnostics;
mod docs;
mod llm_call;
mod model_args;
mod options;
mod table_args;

mod alt_quality;
mod clip_score;
mod cosine;
mod dhash;
mod embed_image;
mod embed_text;
mod fuse;
mod hamming;
mod image_error;
mod image_info;
mod llm;
mod near_duplicates;
mod phash;
mod recaption;
mod semantic_duplicates;
mod thumbnail;

use std::sync::Arc;

use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::logical_expr::{Documentation, ScalarUDF};
use datafusion::prelude::SessionContext;

pub use alt_quality::AltQualityFunc;
pub use clip_score::ClipScoreFunc;
pub use cosine::CosineFunc;
pub use dhash::DhashFunc;
pub use diagnostics::{DiagHandle, Diagnostics, WarningCount};
pub use embed_image::EmbedImageFunc;
pub use embed_text::EmbedTextFunc;
pub use fuse::FuseFunc;
pub use hamming::HammingFunc;
pub use image_error::ImageErrorFunc;
pub use image_info::ImageInfoFunc;
pub use llm::LlmFunc;
pub use model_args::{EmbeddingMemo, MemoHandle, SessionMemo, TextMemo};
pub use near_duplicates::NearDuplicatesFunc;
pub use options::{
    DEFAULT_CAPTION_MODEL, DEFAULT_CLIP_MODEL, DEFAULT_FUSE_PROMPT, DEFAULT_LLM_MODEL,
    DEFAULT_TEXT_MODEL, FuseOptions, LakecapOptions, LlmOptions, ModelSetting, OnError, Switch,
};
pub use phash::PhashFunc;
pub use recaption::RecaptionFunc;
pub use semantic_duplicates::SemanticDuplicatesFunc;
pub use thumbnail::ThumbnailFunc;

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
        "embed_image" => Some(&*embed_image::DOC),
        "embed_text" => Some(&*embed_text::DOC),
        "clip_score" => Some(&*clip_score::DOC),
        "fuse" => Some(&*fuse::DOC),
        "recaption" => Some(&*recaption::DOC),
        "llm" => Some(&*llm::DOC),
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
