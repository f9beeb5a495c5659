//! HF `LlamaConfig` / `Qwen2Config` / `MistralConfig` (the fields lakecap
//! uses, HF names), and the rotary frequency table with the scaling variants
//! of transformers' `modeling_rope_utils.py` (default, linear, llama3, yarn).

use serde::Deserialize;

use crate::error::{ModelError, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            OneOrMany::One(x) => vec![*x],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeScaling {
    #[serde(alias = "type")]
    pub rope_type: Option<String>,
    pub rope_theta: Option<f64>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
    pub attention_factor: Option<f64>,
    pub beta_fast: Option<f64>,
    pub beta_slow: Option<f64>,
    pub mscale: Option<f64>,
    pub mscale_all_dim: Option<f64>,
}

fn default_theta() -> f64 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}
fn default_max_pos() -> usize {
    2048
}

#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub rope_parameters: Option<RopeScaling>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama: bias on q, k, v and o (Qwen2 always has q/k/v bias).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<OneOrMany>,
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// `(q/k/v bias, o bias)`.
    pub fn attention_biases(&self) -> (bool, bool) {
        match self.model_type.as_str() {
            "qwen2" => (true, false),
            _ => (self.attention_bias, self.attention_bias),
        }
    }

    pub fn check(&self) -> Result<()> {
        let (h, kv, d) = (self.num_attention_heads, self.kv_heads(), self.head_dim());
        if h == 0 || kv == 0 || !h.is_multiple_of(kv) || d == 0 || !d.is_multiple_of(2) {
            return Err(ModelError::Unsupported(format!(
                "{h} attention heads, {kv} key/value heads, head width {d}: heads must be a \
                 multiple of key/value heads and the head width even"
            )));
        }
        Ok(())
    }

    /// The rotary inverse frequencies and the cos/sin scale.
    pub fn rope(&self) -> Result<(Vec<f32>, f32)> {
        let p = self
            .rope_parameters
            .clone()
            .or_else(|| self.rope_scaling.clone())
            .unwrap_or_default();
        let theta = p.rope_theta.unwrap_or(self.rope_theta);
        rope_table(&p, theta, self.head_dim(), self.max_position_embeddings)
    }
}

/// transformers' `_compute_*_parameters` for `p.rope_type`.
pub fn rope_table(
    p: &RopeScaling,
    theta: f64,
    dim: usize,
    max_pos: usize,
) -> Result<(Vec<f32>, f32)> {
    // As PyTorch: `base ** (arange(0, dim, 2).float() / dim)` in float32.
    let pos_freqs: Vec<f32> = (0..dim / 2)
        .map(|i| (theta as f32).powf((2 * i) as f32 / dim as f32))
        .collect();
    let base: Vec<f32> = pos_freqs.iter().map(|f| 1.0 / f).collect();
    let factor = p.factor.unwrap_or(1.0) as f32;
    let kind = p.rope_type.as_deref().unwrap_or("default");
    Ok(match kind {
        "default" => (base, 1.0),
        "linear" => (base.iter().map(|f| f / factor).collect(), 1.0),
        "llama3" => {
            let old = p.original_max_position_embeddings.unwrap_or(8192) as f32;
            let (lo, hi) = (
                p.low_freq_factor.unwrap_or(1.0) as f32,
                p.high_freq_factor.unwrap_or(4.0) as f32,
            );
            let (lo_wl, hi_wl) = (old / lo, old / hi);
            let f = base
                .iter()
                .map(|&f| {
                    let wl = 2.0 * std::f32::consts::PI / f;
                    if wl < hi_wl {
                        f
                    } else if wl > lo_wl {
                        f / factor
                    } else {
                        let s = (old / wl - lo) / (hi - lo);
                        (1.0 - s) * f / factor + s * f
                    }
                })
                .collect();
            (f, 1.0)
        }
        "yarn" => {
            let old = p.original_max_position_embeddings.unwrap_or(max_pos) as f64;
            let get_mscale = |scale: f64, m: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let f64f = factor as f64;
            let attn = p
                .attention_factor
                .unwrap_or_else(|| match (p.mscale, p.mscale_all_dim) {
                    (Some(m), Some(a)) => get_mscale(f64f, m) / get_mscale(f64f, a),
                    _ => get_mscale(f64f, 1.0),
                });
            let corr = |rot: f64| {
                dim as f64 * (old / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln())
            };
            let low = corr(p.beta_fast.unwrap_or(32.0)).floor().max(0.0);
            let high = corr(p.beta_slow.unwrap_or(1.0))
                .ceil()
                .min(dim as f64 - 1.0);
            let high = if low == high { high + 0.001 } else { high };
            let f = base
                .iter()
                .enumerate()
                .map(|(i, &extra)| {
                    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0) as f32;
                    let keep = 1.0 - ramp;
                    (extra / factor) * (1.0 - keep) + extra * keep
                })
                .collect();
            (f, attn as f32)
        }
        other => {
            return Err(ModelError::Unsupported(format!(
                "rope scaling `{other}` (default, linear, llama3 and yarn are supported)"
            )));
        }
    })
}
