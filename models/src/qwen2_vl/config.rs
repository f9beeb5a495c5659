//! HF `Qwen2VLConfig` and `Qwen2_5_VLConfig` (the fields lakecap uses, HF
//! names) in both layouts:
//! the Hub's, with the text model's fields at the top level, and
//! transformers 5's, with a nested `text_config`. Ports
//! `models/qwen2_vl/configuration_qwen2_vl.py` and
//! `models/qwen2_5_vl/configuration_qwen2_5_vl.py`.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::llama::LlamaConfig;

fn three() -> usize {
    3
}
fn fourteen() -> usize {
    14
}
fn two() -> usize {
    2
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}

/// `Qwen2VLVisionConfig` and `Qwen2_5_VLVisionConfig`. Qwen2-VL names the
/// tower's width `embed_dim` and the merger's output `hidden_size`;
/// Qwen2.5-VL names them `hidden_size` and `out_hidden_size`.
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub embed_dim: Option<usize>,
    pub hidden_size: usize,
    pub out_hidden_size: Option<usize>,
    /// Qwen2-VL's MLP: `embed_dim · mlp_ratio`, plain.
    pub mlp_ratio: Option<f64>,
    /// Qwen2.5-VL's MLP: gated, this wide.
    pub intermediate_size: Option<usize>,
    /// Qwen2.5-VL: window attention over `window_size` pixels, except in
    /// the layers of `fullatt_block_indexes`.
    pub window_size: Option<usize>,
    #[serde(default)]
    pub fullatt_block_indexes: Vec<usize>,
    pub num_heads: usize,
    #[serde(default = "three", alias = "in_chans")]
    pub in_channels: usize,
    #[serde(default = "fourteen")]
    pub patch_size: usize,
    #[serde(default = "two")]
    pub spatial_merge_size: usize,
    #[serde(default = "two")]
    pub temporal_patch_size: usize,
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
}

impl VisionConfig {
    /// Qwen2.5-VL's tower (RMSNorm, gated MLP, window attention).
    pub fn is_qwen2_5(&self) -> bool {
        self.out_hidden_size.is_some()
    }

    /// The tower's width.
    pub fn width(&self) -> usize {
        match self.out_hidden_size {
            Some(_) => self.hidden_size,
            None => self.embed_dim.unwrap_or(self.hidden_size),
        }
    }

    /// The merger's output: the language model's hidden size.
    pub fn out_width(&self) -> usize {
        self.out_hidden_size.unwrap_or(self.hidden_size)
    }

    pub fn head_dim(&self) -> usize {
        self.width() / self.num_heads.max(1)
    }

    /// Values per patch row: channels · temporal patch · patch².
    pub fn patch_width(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size.pow(2)
    }

    pub fn mlp_width(&self) -> usize {
        self.intermediate_size
            .unwrap_or_else(|| (self.width() as f64 * self.mlp_ratio.unwrap_or(4.0)) as usize)
    }

    /// Merge windows per attention window's side (Qwen2.5-VL), if windowed.
    pub fn window_units(&self) -> Option<usize> {
        self.window_size
            .map(|w| (w / self.spatial_merge_size / self.patch_size).max(1))
    }
}

/// `Qwen2VLConfig`: the vision tower, the Qwen2 decoder and the special tokens.
#[derive(Debug, Clone)]
pub struct Qwen2VlConfig {
    pub model_type: String,
    pub vision: VisionConfig,
    /// The decoder as a Qwen2 `LlamaConfig` (q/k/v bias).
    pub text: LlamaConfig,
    /// M-RoPE's frequency sections (temporal, height, width).
    pub mrope_section: Vec<usize>,
    pub image_token_id: u32,
    pub vision_start_token_id: u32,
}

impl Qwen2VlConfig {
    /// Parses `config.json` (at `path`, named in errors).
    pub fn from_json(v: &Value, path: &Path) -> Result<Qwen2VlConfig> {
        let bad = |detail: String| ModelError::bad_file(path, detail);
        let model_type = v["model_type"].as_str().unwrap_or_default().to_string();
        if !matches!(model_type.as_str(), "qwen2_vl" | "qwen2_5_vl") {
            return Err(bad(format!(
                "model_type `{model_type}` is not qwen2_vl or qwen2_5_vl \
                 (Qwen2VLForConditionalGeneration, Qwen2_5_VLForConditionalGeneration)"
            )));
        }
        let vision: VisionConfig = serde_json::from_value(v["vision_config"].clone())
            .map_err(|e| bad(format!("vision_config: {e}")))?;
        // transformers 5 nests the decoder; the Hub's files keep it at the top.
        let text_json = match v.get("text_config") {
            Some(t) if t.is_object() => t.clone(),
            _ => v.clone(),
        };
        let mut text: LlamaConfig =
            serde_json::from_value(text_json.clone()).map_err(|e| bad(format!("text: {e}")))?;
        text.model_type = "qwen2".into();
        let rope = ["rope_scaling", "rope_parameters"]
            .iter()
            .find_map(|k| text_json.get(*k).filter(|r| r.is_object()))
            .ok_or_else(|| bad("no rope_scaling with mrope_section".into()))?;
        let mrope_section: Vec<usize> = serde_json::from_value(rope["mrope_section"].clone())
            .map_err(|e| bad(format!("rope_scaling.mrope_section: {e}")))?;
        // M-RoPE rotates with the default frequencies: the config's `type`
        // names the sections, not a scaling.
        text.rope_scaling = None;
        text.rope_parameters = None;
        if let Some(theta) = rope["rope_theta"].as_f64() {
            text.rope_theta = theta;
        }
        if mrope_section.iter().sum::<usize>() * 2 != text.head_dim() {
            return Err(bad(format!(
                "mrope_section {mrope_section:?} does not cover half the head width {}",
                text.head_dim()
            )));
        }
        let token = |k: &str| -> Result<u32> {
            v[k].as_u64()
                .or_else(|| text_json[k].as_u64())
                .map(|t| t as u32)
                .ok_or_else(|| bad(format!("no `{k}`")))
        };
        Ok(Qwen2VlConfig {
            model_type,
            vision,
            text,
            mrope_section,
            image_token_id: token("image_token_id")?,
            vision_start_token_id: token("vision_start_token_id")?,
        })
    }
}
