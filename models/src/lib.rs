//! Models behind lakecap's SQL functions.
//!
//! - [`image`]: bounded, panic-free decoding of untrusted image bytes
//!   ([`image::decode`], [`image::probe`] under [`image::DecodeLimits`]),
//!   Pillow-compatible grayscale, the perceptual hashes ([`image::phash`],
//!   [`image::dhash`], bit-identical to Python's `imagehash`) and thumbnails.
//! - [`dedup`]: near-duplicate clustering of 64-bit hashes by multi-index hashing.
//! - [`text`]: rule-based alt-text quality ([`text::AltQuality`]), the cheap
//!   first filter of every curation recipe.
//!
//!
//! Neural models, one folder each, generic over `lakecap_kernels::Backend`:
//! - [`clip`]: CLIP vision and text towers with `CLIPImageProcessor`-exact
//!   preprocessing; [`bert`]: BERT sentence encoders (all-MiniLM-L6-v2).
//! - Shared pieces: [`nn`] (linear, layer norm, attention, MLP, encoder
//!   layers, written once), [`weights`] (memory-mapped safetensors, sharded
//!   too), [`tokenize`] (`tokenizer.json`), [`hub`] (finding a model by path,
//!   in lakecap's model home or in the Hugging Face cache).
//! - Serving: [`scheduler::Scheduler`] (one worker per model, batches formed
//!   across concurrent callers, bounded queue) and [`embed`] (process-wide
//!   loaded-once embedders that the SQL functions call).
//! - Text generation: [`llama`] (Llama, Mistral, Qwen2, SmolLM2 from HF
//!   safetensors or [`gguf`] files with quantised weights and embedded
//!   tokenizers), [`generate`] (continuous batching over the shared KV-cache
//!   attention, transformers-compatible sampling), [`chat`] (Jinja chat
//!   templates) and [`llm`] (the loaded-once service the SQL functions call).
//! - Captioning: [`blip`] (BLIP's vision encoder and cross-attending text
//!   decoder, `BlipImageProcessor`-exact preprocessing) and [`caption`] (the
//!   loaded-once captioner: images are the generator's per-row contexts,
//!   encoded once per row in batches).
//! - [`semdedup`]: SemDeDup (spherical k-means, then greedy within-cluster
//!   deduplication by cosine) over image or text embeddings.
//!
//! Nothing in this crate knows about DataFusion or Arrow: the `udfs` crate
//! adapts it to SQL.

pub mod bert;
pub mod blip;
pub mod caption;
pub mod chat;
pub mod clip;
pub mod dedup;
pub mod embed;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod hub;
pub mod image;
pub mod llama;
pub mod llm;
pub mod nn;
pub mod scheduler;
pub mod semdedup;
pub mod text;
pub mod tokenize;
pub mod weights;

pub use error::{ModelError, Result};
pub use lakecap_kernels::cpu::tune_allocator;
