//! BLIP captioning (`BlipForConditionalGeneration`, any size in config).

pub mod config;
pub mod model;
pub mod preprocess;

pub use config::BlipConfig;
pub use model::{BlipCaptioner, BlipText, BlipVision};
pub use preprocess::BlipPreprocess;
