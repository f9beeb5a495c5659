//! HF `Idefics3Config` (the fields lakecap uses, HF names). Its vision
//! config has CLIP's field names, so it parses as [`ClipVisionConfig`].
//! Ports `models/idefics3/configuration_idefics3.py`.

use std::path::Path;

use serde_json::Value;

use crate::clip::ClipVisionConfig;
use crate::error::{ModelError, Result};
use crate::llama::LlamaConfig;

#[derive(Debug, Clone)]
pub struct Idefics3Config {
    pub vision: ClipVisionConfig,
    pub text: LlamaConfig,
    pub image_token_id: u32,
    /// Pixel shuffle: `scale_factor²` patch rows become one token.
    pub scale_factor: usize,
}

impl Idefics3Config {
    /// Parses `config.json` (at `path`, named in errors).
    pub fn from_json(v: &Value, path: &Path) -> Result<Idefics3Config> {
        let bad = |detail: String| ModelError::bad_file(path, detail);
        if !matches!(v["model_type"].as_str(), Some("idefics3" | "smolvlm")) {
            return Err(bad(format!(
                "model_type {} is not idefics3 (Idefics3ForConditionalGeneration)",
                v["model_type"]
            )));
        }
        let mut vision = v["vision_config"].clone();
        if let Some(o) = vision.as_object_mut() {
            // Idefics3's defaults, where they differ from CLIP's.
            for (k, d) in [
                ("hidden_act", Value::from("gelu_pytorch_tanh")),
                ("layer_norm_eps", Value::from(1e-6)),
            ] {
                o.entry(k).or_insert(d);
            }
        }
        let vision: ClipVisionConfig =
            serde_json::from_value(vision).map_err(|e| bad(format!("vision_config: {e}")))?;
        let mut text: LlamaConfig = serde_json::from_value(v["text_config"].clone())
            .map_err(|e| bad(format!("text_config: {e}")))?;
        text.model_type = "llama".into();
        let scale_factor = v["scale_factor"].as_u64().unwrap_or(2) as usize;
        let side = vision.image_size / vision.patch_size.max(1);
        if scale_factor == 0 || !side.is_multiple_of(scale_factor) {
            return Err(bad(format!(
                "scale_factor {scale_factor} does not divide the {side}-patch side"
            )));
        }
        Ok(Idefics3Config {
            vision,
            text,
            image_token_id: v["image_token_id"]
                .as_u64()
                .ok_or_else(|| bad("no image_token_id".into()))? as u32,
            scale_factor,
        })
    }

    /// Tokens per tile (the processor's `image_seq_len`).
    pub fn image_seq_len(&self) -> usize {
        self.vision.num_patches() / self.scale_factor.pow(2)
    }
}
