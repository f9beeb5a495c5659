//! The Llama family (Llama, Mistral, Qwen2, SmolLM2) from HF safetensors or GGUF.

pub mod config;
pub mod gguf;
pub mod model;

pub use config::LlamaConfig;
pub use gguf::{GgufWeights, config_from_gguf};
pub use model::{Llama, LlamaDecoder};
