//! The models crate's integration tests, one binary: parity with transformers
//! (tiny random-init fixtures and the real MiniLM, SmolLM2 and open_nsfw
//! weights), hash parity
//! with imagehash, split passes and SemDeDup on the configured device.

mod bert_parity;
mod blip_parity;
mod clip_parity;
mod common;
mod hash_parity;
mod llm_parity;
mod minilm_parity;
mod nsfw_parity;
mod semdedup_device;
mod split_passes;
mod vlm_parity;
