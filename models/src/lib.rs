//! Models behind lakecap's SQL functions.
//!
//! - [`image`]: bounded, panic-free decoding of untrusted image bytes
//!   ([`image::decode`], [`image::probe`] under [`image::DecodeLimits`]),
//!   Pillow-compatible grayscale, the perceptual hashes ([`image::phash`],
//!   [`image::dhash`], bit-identical to Python's `imagehash`) and thumbnails.
//! - [`dedup`]: near-duplicate clustering of 64-bit hashes by multi-index hashing.
//! - [`text`]: rule-based alt-text quality ([`text::AltQuality`]), the cheap
//!   first filter of every curation recipe.
//! - [`semdedup`]: SemDeDup (spherical k-means, then greedy within-cluster
//!   deduplication by cosine) over image or text embeddings, on a backend the
//!   runtime shares per device; [`knn`]: exact nearest neighbours by cosine.
//!
//! Neural models, in layers (each imports only the layers above it):
//! - Shared pieces: [`nn`] (linear, layer norm, attention, MLP, encoder
//!   layers, written once), [`weights`] (memory-mapped safetensors, sharded
//!   too), [`tokenize`] (`tokenizer.json`), [`gguf`] (GGUF files: quantised
//!   weights, embedded tokenizers), [`chat`] (Jinja chat templates), [`home`]
//!   (lakecap's folders on disk) and [`hub`] (finding a model by path, in
//!   lakecap's model home or in the Hugging Face cache).
//! - [`decode`]: the decoder seam ([`decode::Decoder`], [`decode::Logits`],
//!   [`decode::GenParams`]) that generative architectures implement.
//! - Architectures, one folder each, generic over `lakecap_kernels::Backend`
//!   and ported from a named reference: [`clip`] (CLIP vision and text towers,
//!   `CLIPImageProcessor`-exact preprocessing), [`bert`] (sentence encoders,
//!   all-MiniLM-L6-v2), [`llama`] (Llama, Mistral, Qwen2, SmolLM2 from HF
//!   safetensors or GGUF), [`blip`] (BLIP's vision encoder and cross-attending
//!   text decoder, `BlipImageProcessor`-exact preprocessing), [`qwen2_vl`]
//!   (Qwen2-VL: native-resolution vision tower, M-RoPE decoder on the Llama
//!   blocks, `Qwen2VLImageProcessor`-exact preprocessing), [`llava`]
//!   (LLaVA-1.5: CLIP tower, projector, any Llama-family decoder),
//!   [`idefics3`] (SmolVLM: tiles and a global image, SigLIP tower, pixel
//!   shuffle), [`open_nsfw`] (Yahoo's NSFW ResNet from its ONNX graph,
//!   read by [`onnx`]); the
//!   decoder half these VLMs share is [`multimodal`].
//! - [`runtime`]: where models run ([`runtime::Device`],
//!   [`runtime::Precision`]; the only place a backend is chosen and built),
//!   the registry of loaded-once models, the batching
//!   [`runtime::Scheduler`] and the model worker thread.
//! - [`generate`]: the serving loop of text generation (continuous batching
//!   over the shared KV-cache attention, transformers-compatible sampling and
//!   beam search) for any [`decode::Decoder`].
//! - [`serve`]: the front ends the SQL functions call: [`serve::embed`]
//!   (image and text embedders), [`serve::caption`] (the BLIP captioner:
//!   images are the generator's per-row contexts, encoded once per row in
//!   batches), [`serve::llm`] (Llama-family generation with chat templates)
//!   [`serve::vlm`] (instruction VLMs, an image and a prompt per row) and
//!   [`serve::nsfw`] (open_nsfw's P(NSFW)).
//!
//! Nothing in this crate knows about DataFusion or Arrow: the `udfs` crate
//! adapts it to SQL.

pub mod bert;
pub mod blip;
pub mod chat;
pub mod clip;
pub mod decode;
pub mod dedup;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod head;
pub mod home;
pub mod hub;
pub mod idefics3;
pub mod image;
pub mod knn;
pub mod llama;
pub mod llava;
pub mod multimodal;
pub mod nn;
pub mod onnx;
pub mod open_nsfw;
pub mod qwen2_vl;
pub mod runtime;
pub mod semdedup;
pub mod serve;
pub mod text;
pub mod tokenize;
pub mod weights;

pub use error::{ModelError, Result};
pub use lakecap_kernels::cpu::tune_allocator;
