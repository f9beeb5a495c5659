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
//! Neural architectures (CLIP, BLIP, BERT, the Llama family) will live here one
//! folder per model, on the tensors of `lakecap-kernels`. Nothing in this crate
//! knows about DataFusion or Arrow: the `udfs` crate adapts it to SQL.

pub mod dedup;
pub mod image;
pub mod text;
