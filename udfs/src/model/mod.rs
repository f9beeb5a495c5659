//! Model functions, all async: embeddings (`embed_image`, `embed_text`) and
//! their comparison (`clip_score`, `cosine`), captions (`recaption`, with its
//! on-disk cache) and LLM generation (`fuse`, `llm`, sharing `llm_call`).

pub(crate) mod caption_cache;
pub(crate) mod clip_score;
pub(crate) mod cosine;
pub(crate) mod embed_image;
pub(crate) mod embed_text;
pub(crate) mod fuse;
pub(crate) mod llm;
pub(crate) mod llm_call;
pub(crate) mod recaption;
