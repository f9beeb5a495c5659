//! LLaVA-1.5 (`LlavaForConditionalGeneration`, any size in config): the
//! CLIP vision tower read at `vision_feature_layer`, a two-layer projector
//! into the decoder's width, and any Llama-family decoder ([`model`]);
//! `CLIPImageProcessor` preprocessing ([`crate::clip::ClipPreprocess`]).

pub mod config;
pub mod model;

pub use config::LlavaConfig;
pub use model::{LlavaDecoder, LlavaTower, load_decoder};
