//! SmolVLM / Idefics3 (`Idefics3ForConditionalGeneration`, any size in
//! config): the image processor's tiles and global image ([`preprocess`]),
//! the SigLIP-style tower with its pixel-shuffle connector and any
//! Llama-family decoder ([`model`]).

pub mod config;
pub mod model;
pub mod preprocess;

pub use config::Idefics3Config;
pub use model::{Idefics3Decoder, Idefics3Tower, load_decoder};
pub use preprocess::{Idefics3Preprocess, Tiles};
