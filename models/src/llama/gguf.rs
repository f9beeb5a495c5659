//! Llama-family weights and config from a GGUF file (llama.cpp's
//! `convert_hf_to_gguf.py` layout), presented under HF names so the model code
//! is the same for both formats.
//!
//! llama.cpp permutes the q/k projection rows of `llama` models for its
//! interleaved rotary layout; [`GgufWeights`] undoes that, so the HF
//! `rotate_half` rotary applies. `qwen2` files are not permuted.

use lakecap_kernels::{Backend, HostData};

use super::config::{LlamaConfig, OneOrMany, RopeScaling};
use crate::error::{ModelError, Result};
use crate::gguf::{Gguf, quant};
use crate::weights::WeightSource;

/// The GGUF tensor name of an HF state-dict name.
fn gguf_name(hf: &str) -> Option<String> {
    Some(match hf {
        "model.embed_tokens.weight" => "token_embd.weight".into(),
        "model.norm.weight" => "output_norm.weight".into(),
        "lm_head.weight" => "output.weight".into(),
        _ => {
            let rest = hf.strip_prefix("model.layers.")?;
            let (i, rest) = rest.split_once('.')?;
            let (module, kind) = rest.rsplit_once('.')?;
            let g = match module {
                "input_layernorm" => "attn_norm",
                "post_attention_layernorm" => "ffn_norm",
                "self_attn.q_proj" => "attn_q",
                "self_attn.k_proj" => "attn_k",
                "self_attn.v_proj" => "attn_v",
                "self_attn.o_proj" => "attn_output",
                "mlp.gate_proj" => "ffn_gate",
                "mlp.up_proj" => "ffn_up",
                "mlp.down_proj" => "ffn_down",
                _ => return None,
            };
            format!("blk.{i}.{g}.{kind}")
        }
    })
}

pub struct GgufWeights {
    pub file: Gguf,
    /// `(heads, kv_heads, head_dim)` when q/k rows must be un-permuted.
    unpermute: Option<(usize, usize, usize)>,
}

impl GgufWeights {
    pub fn new(file: Gguf, cfg: &LlamaConfig) -> GgufWeights {
        let unpermute = (file.str("general.architecture") == Some("llama"))
            .then(|| (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim()));
        GgufWeights { file, unpermute }
    }
}

/// Inverse of llama.cpp's `permute`: row `h·d + i·2 + j` of the file is HF
/// row `h·d + j·d/2 + i`. Rows are `row` elements of any type (f32 values,
/// or a quantised row's bytes).
fn unpermute_rows<T: Copy + Default>(v: &[T], heads: usize, d: usize, row: usize) -> Vec<T> {
    let mut out = vec![T::default(); v.len()];
    let half = d / 2;
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                let (dst, src) = (h * d + j * half + i, h * d + i * 2 + j);
                out[dst * row..(dst + 1) * row].copy_from_slice(&v[src * row..(src + 1) * row]);
            }
        }
    }
    out
}

impl WeightSource for GgufWeights {
    fn contains(&self, name: &str) -> bool {
        gguf_name(name).is_some_and(|g| self.file.tensors.contains_key(&g))
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let g = gguf_name(name).ok_or_else(|| ModelError::Weight {
            name: name.into(),
            detail: "has no GGUF counterpart".into(),
        })?;
        self.file.tensor_f32(&g)
    }

    /// Block-quantised matrices stay as stored (the CPU keeps the blocks and
    /// dequantises where it reads them, so memory stays near the file's size;
    /// a GPU dequantises at upload); other tensors load as f32.
    fn load<B: Backend>(&self, be: &B, name: &str, shape: &[usize]) -> Result<B::Tensor> {
        let g = gguf_name(name).ok_or_else(|| ModelError::Weight {
            name: name.into(),
            detail: "has no GGUF counterpart".into(),
        })?;
        let (t, bytes) = self.file.tensor_bytes(&g)?;
        let n: usize = shape.iter().product();
        let got = &t.shape;
        if got.iter().product::<usize>() != n || (got.len() == shape.len() && got != shape) {
            return Err(ModelError::Weight {
                name: name.into(),
                detail: format!("shape {got:?} in the GGUF file, the config implies {shape:?}"),
            });
        }
        let cols = if shape.len() == 2 { shape[1] } else { 1 };
        let heads = self.unpermute.and_then(|(h, kv, d)| {
            if name.contains("self_attn.q_proj") {
                Some((h, d))
            } else if name.contains("self_attn.k_proj") {
                Some((kv, d))
            } else {
                None
            }
        });
        let (per_block, block_bytes) = t.ty.block();
        let quantised = per_block > 1 && shape.len() == 2 && cols.is_multiple_of(per_block);
        if quantised {
            let row = cols / per_block * block_bytes;
            let bytes = match heads {
                Some((h, d)) => std::borrow::Cow::Owned(unpermute_rows(bytes, h, d, row)),
                None => std::borrow::Cow::Borrowed(bytes),
            };
            let data = HostData::Quant {
                ty: t.ty,
                bytes: &bytes,
                len: n,
            };
            let tensor = be.upload_weight(shape, data)?;
            self.file.release(&g);
            return Ok(tensor);
        }
        let mut v = quant::dequantize(t.ty, bytes, n);
        if let Some((h, d)) = heads {
            v = unpermute_rows(&v, h, d, cols);
        }
        let tensor = be.upload_weight(shape, HostData::F32(&v))?;
        self.file.release(&g);
        Ok(tensor)
    }
}

/// The HF config equivalent of a GGUF file's metadata.
pub fn config_from_gguf(g: &Gguf) -> Result<LlamaConfig> {
    let arch = g.str("general.architecture").unwrap_or("").to_string();
    if !matches!(arch.as_str(), "llama" | "qwen2") {
        return Err(ModelError::Unsupported(format!(
            "GGUF architecture `{arch}` (llama and qwen2 are supported)"
        )));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let req = |k: &str| g.require_u64(&key(k)).map(|v| v as usize);
    let heads = req("attention.head_count")?;
    let vocab = match g.u64(&key("vocab_size")) {
        Some(v) => v as usize,
        None => g
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .map(|a| a.len())
            .ok_or_else(|| ModelError::bad_file(&g.path, "GGUF: no vocabulary size"))?,
    };
    let scaling = g
        .str(&key("rope.scaling.type"))
        .filter(|t| *t != "none")
        .map(|t| RopeScaling {
            rope_type: Some(t.to_string()),
            factor: g.f64(&key("rope.scaling.factor")),
            original_max_position_embeddings: g
                .u64(&key("rope.scaling.original_context_length"))
                .map(|v| v as usize),
            ..Default::default()
        });
    Ok(LlamaConfig {
        model_type: arch.clone(),
        vocab_size: vocab,
        hidden_size: req("embedding_length")?,
        intermediate_size: req("feed_forward_length")?,
        num_hidden_layers: req("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: g.u64(&key("attention.head_count_kv")).map(|v| v as usize),
        head_dim: g.u64(&key("attention.key_length")).map(|v| v as usize),
        rms_norm_eps: g
            .f64(&key("attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-6),
        rope_theta: g.f64(&key("rope.freq_base")).unwrap_or(10_000.0),
        rope_scaling: scaling,
        rope_parameters: None,
        max_position_embeddings: g.u64(&key("context_length")).unwrap_or(2048) as usize,
        tie_word_embeddings: !g.tensors.contains_key("output.weight"),
        attention_bias: false,
        mlp_bias: false,
        hidden_act: "silu".into(),
        bos_token_id: g.u64("tokenizer.ggml.bos_token_id").map(|v| v as u32),
        eos_token_id: g
            .u64("tokenizer.ggml.eos_token_id")
            .map(|v| OneOrMany::One(v as u32)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hf_names_and_inverts_the_llama_cpp_permutation() {
        assert_eq!(
            gguf_name("model.layers.3.self_attn.q_proj.weight").as_deref(),
            Some("blk.3.attn_q.weight")
        );
        assert_eq!(
            gguf_name("model.layers.0.mlp.down_proj.weight").as_deref(),
            Some("blk.0.ffn_down.weight")
        );
        assert_eq!(gguf_name("model.layers.x"), None);
        // llama.cpp's permute: reshape(h, 2, d/2, cols).swapaxes(1, 2).
        let (h, d, cols) = (2, 4, 3);
        let hf: Vec<f32> = (0..h * d * cols).map(|v| v as f32).collect();
        let mut permuted = vec![0f32; hf.len()];
        for hh in 0..h {
            for j in 0..2 {
                for i in 0..d / 2 {
                    let (src, dst) = (hh * d + j * d / 2 + i, hh * d + i * 2 + j);
                    permuted[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        assert_ne!(permuted, hf);
        assert_eq!(unpermute_rows(&permuted, h, d, cols), hf);
    }
}
