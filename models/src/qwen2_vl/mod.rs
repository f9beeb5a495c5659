//! Qwen2-VL and Qwen2.5-VL (`Qwen2VLForConditionalGeneration`,
//! `Qwen2_5_VLForConditionalGeneration`, any size in config): the
//! native-resolution vision towers ([`vision`]; Qwen2.5-VL's with window
//! attention), their image processor ([`preprocess`]) and the Qwen2 decoder
//! with M-RoPE ([`model`]).

pub mod config;
pub mod model;
pub mod preprocess;
pub mod vision;

pub use config::Qwen2VlConfig;
pub use model::{Qwen2VlDecoder, image_input, load_decoder};
pub use preprocess::{ImagePatches, Qwen2VlPreprocess, smart_resize};
pub use vision::VisionTower;
