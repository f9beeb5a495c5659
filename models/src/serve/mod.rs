//! Serving front ends: the process-wide, loaded-once models that the SQL
//! functions call, each a model of [`crate::clip`], [`crate::bert`],
//! [`crate::blip`] or [`crate::llama`] on a [`crate::runtime`] worker.
//!
//! - [`embed`]: image and text embedders behind a batching scheduler.
//! - [`caption`]: the BLIP captioner behind the continuous-batching
//!   generator, images as the rows' contexts.
//! - [`llm`]: Llama-family text generation (HF or GGUF) with chat templates.
//! - [`nsfw`]: the open_nsfw scorer (an ONNX convnet) behind a batching
//!   scheduler.
//! - [`vlm`]: instruction vision-language models (Qwen2-VL): an image and a
//!   prompt through the chat template, the image encoded once per row.

pub mod caption;
pub mod embed;
pub mod llm;
pub mod nsfw;
pub mod vlm;

use std::path::Path;

use crate::error::{ModelError, Result};

/// A JSON file of a model directory; its errors name the file.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::bad_file(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::bad_file(path, e))
}
