//! CLIP (transformers `CLIPModel`): config, image preprocessing and the two towers.

pub mod config;
pub mod model;
pub mod preprocess;

pub use config::{ClipConfig, ClipTextConfig, ClipVisionConfig};
pub use model::{ClipText, ClipVision};
pub use preprocess::ClipPreprocess;
