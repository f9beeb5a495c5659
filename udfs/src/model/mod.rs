//! Model functions, all async ([`function::Model`]): embeddings
//! (`embed_image`, `embed_text`, through `vectors`) and their comparison
//! (`clip_score`, `cosine`), captions (`recaption`, with its on-disk
//! `caption_cache`), heads over embeddings (`embedding_head`), image safety (`nsfw_score`), LLM generation (`fuse`, `llm`, sharing `llm_call`) and
//! questions about images (`vlm`).

pub(crate) mod caption_cache;
pub(crate) mod clip_score;
pub(crate) mod cosine;
pub(crate) mod embed_image;
pub(crate) mod embed_text;
pub(crate) mod embedding_head;
pub(crate) mod function;
pub(crate) mod fuse;
pub(crate) mod fusion_judge;
pub(crate) mod llm;
pub(crate) mod llm_call;
pub(crate) mod nsfw_score;
pub(crate) mod recaption;
pub(crate) mod vectors;
pub(crate) mod vlm;

use datafusion::logical_expr::Documentation;

use clip_score::ClipScore;
use embed_image::EmbedImage;
use embed_text::EmbedText;
use function::ModelFunction;
use fuse::Fuse;
use llm::Llm;
use nsfw_score::NsfwScore;
use recaption::Recaption;
use vlm::Vlm;

/// The documentation of the async function `name`: DataFusion's async
/// wrapper does not forward `documentation()`.
pub(crate) fn documentation(name: &str) -> Option<&'static Documentation> {
    fn doc<F: ModelFunction>(name: &str) -> Option<&'static Documentation> {
        (name == F::NAME).then(F::documentation)
    }
    doc::<EmbedImage>(name)
        .or_else(|| doc::<EmbedText>(name))
        .or_else(|| doc::<ClipScore>(name))
        .or_else(|| doc::<Recaption>(name))
        .or_else(|| doc::<Fuse>(name))
        .or_else(|| doc::<Llm>(name))
        .or_else(|| doc::<Vlm>(name))
        .or_else(|| doc::<NsfwScore>(name))
}
