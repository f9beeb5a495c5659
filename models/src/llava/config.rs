//! HF `LlavaConfig` (the fields lakecap uses, HF names). The Hub's LLaVA
//! configs list only what differs from `LlamaConfig`'s and
//! `CLIPVisionConfig`'s defaults, so those defaults fill the rest. Ports
//! `models/llava/configuration_llava.py`.

use std::path::Path;

use serde_json::{Value, json};

use crate::clip::ClipVisionConfig;
use crate::error::{ModelError, Result};
use crate::llama::LlamaConfig;

/// transformers' `LlamaConfig()` defaults (Llama-2-7B; Vicuna in LLaVA-1.5).
fn llama_defaults() -> Value {
    json!({
        "model_type": "llama", "vocab_size": 32000, "hidden_size": 4096,
        "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": false,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSelect {
    /// Patch rows only (the class row dropped).
    Default,
    /// The class row too.
    Full,
}

#[derive(Debug, Clone)]
pub struct LlavaConfig {
    pub vision: ClipVisionConfig,
    pub text: LlamaConfig,
    pub image_token_id: u32,
    /// Encoder layers run before the features are read (`hidden_states[k]`).
    pub feature_layers: usize,
    pub select: FeatureSelect,
    pub projector_act: String,
    pub projector_bias: bool,
}

impl LlavaConfig {
    /// Parses `config.json` (at `path`, named in errors).
    pub fn from_json(v: &Value, path: &Path) -> Result<LlavaConfig> {
        let bad = |detail: String| ModelError::bad_file(path, detail);
        if v["model_type"] != "llava" {
            return Err(bad(format!(
                "model_type {} is not llava (LlavaForConditionalGeneration)",
                v["model_type"]
            )));
        }
        let vision: ClipVisionConfig = serde_json::from_value(v["vision_config"].clone())
            .map_err(|e| bad(format!("vision_config: {e}")))?;
        let mut text = llama_defaults();
        if let (Some(t), Some(given)) = (text.as_object_mut(), v["text_config"].as_object()) {
            t.extend(given.clone());
        }
        let text: LlamaConfig =
            serde_json::from_value(text).map_err(|e| bad(format!("text_config: {e}")))?;
        let image_token_id = v["image_token_id"]
            .as_u64()
            .or_else(|| v["image_token_index"].as_u64())
            .ok_or_else(|| bad("no image_token_id (image_token_index)".into()))?
            as u32;
        let depth = vision.num_hidden_layers as i64;
        let layer = v["vision_feature_layer"].as_i64().unwrap_or(-2);
        // hidden_states has depth + 1 entries: the embeddings, then each layer's output.
        let k = if layer < 0 { depth + 1 + layer } else { layer };
        if !(0..=depth).contains(&k) {
            return Err(bad(format!(
                "vision_feature_layer {} outside a {depth}-layer tower (a list of layers is not supported)",
                v["vision_feature_layer"]
            )));
        }
        let select = match v["vision_feature_select_strategy"]
            .as_str()
            .unwrap_or("default")
        {
            "default" => FeatureSelect::Default,
            "full" => FeatureSelect::Full,
            other => return Err(bad(format!("vision_feature_select_strategy `{other}`"))),
        };
        Ok(LlavaConfig {
            vision,
            text,
            image_token_id,
            feature_layers: k as usize,
            select,
            projector_act: v["projector_hidden_act"]
                .as_str()
                .unwrap_or("gelu")
                .to_string(),
            projector_bias: v["multimodal_projector_bias"].as_bool().unwrap_or(true),
        })
    }

    /// Image tokens per image in the prompt.
    pub fn image_tokens(&self) -> usize {
        self.vision.num_patches()
            + match self.select {
                FeatureSelect::Default => 0,
                FeatureSelect::Full => 1,
            }
    }
}
