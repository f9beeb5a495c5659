//! Text-side models. Today: rule-based alt-text quality.

mod quality;

pub use quality::{AltQuality, alt_quality};
