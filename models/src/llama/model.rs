//! Decoder-only LLMs of the Llama family: HF `LlamaForCausalLM` (SmolLM2 is
//! one), `MistralForCausalLM` and `Qwen2ForCausalLM` (q/k/v bias). RMSNorm,
//! rotary positions, grouped-query attention over a KV cache, SwiGLU, tied
//! embeddings. Ports transformers `models/llama/modeling_llama.py` and
//! `models/qwen2/modeling_qwen2.py`; the blocks are the shared ones of
//! [`crate::nn`].

use lakecap_kernels::{Activation, Backend, Pos, Rope};

use super::config::LlamaConfig;
use crate::decode::{Decoder, Logits, Want};
use crate::error::{ModelError, Result};
use crate::nn::{CachedAttention, GatedMlp, Linear, RmsNorm, Rotary};
use crate::weights::WeightSource;

struct Layer<B: Backend> {
    ln1: RmsNorm<B>,
    attn: CachedAttention<B>,
    ln2: RmsNorm<B>,
    mlp: GatedMlp<B>,
}

pub struct Llama<B: Backend> {
    pub cfg: LlamaConfig,
    embed: B::Tensor,
    layers: Vec<Layer<B>>,
    norm: RmsNorm<B>,
    /// `None`: tied to the input embeddings.
    lm_head: Option<Linear<B>>,
    inv_freq: Vec<f32>,
    rope_scale: f32,
}

impl<B: Backend> Llama<B> {
    pub fn load(be: &B, cfg: &LlamaConfig, w: &impl WeightSource) -> Result<Self> {
        Self::load_at(be, cfg, w, "model", "lm_head")
    }

    /// Loads with the decoder's weights under `prefix` and its head at
    /// `head` (`model` and `lm_head`; a multimodal checkpoint's
    /// `model.language_model`, or LLaVA's `language_model.model` and
    /// `language_model.lm_head`).
    pub fn load_at(
        be: &B,
        cfg: &LlamaConfig,
        w: &impl WeightSource,
        prefix: &str,
        head: &str,
    ) -> Result<Self> {
        cfg.check()?;
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let (h, kv) = (cfg.num_attention_heads, cfg.kv_heads());
        let (qkv_bias, o_bias) = cfg.attention_biases();
        let act = Activation::from_hf(&cfg.hidden_act)
            .ok_or_else(|| ModelError::Unsupported(format!("activation `{}`", cfg.hidden_act)))?;
        let eps = cfg.rms_norm_eps;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = format!("{prefix}.layers.{i}");
                let lin = |name: &str, din, dout, bias| {
                    Linear::load(be, w, &format!("{p}.{name}"), din, dout, bias)
                };
                Ok(Layer {
                    ln1: RmsNorm::load(be, w, &format!("{p}.input_layernorm"), d, eps)?,
                    attn: CachedAttention {
                        q: lin("self_attn.q_proj", d, h * hd, qkv_bias)?,
                        k: lin("self_attn.k_proj", d, kv * hd, qkv_bias)?,
                        v: lin("self_attn.v_proj", d, kv * hd, qkv_bias)?,
                        out: lin("self_attn.o_proj", h * hd, d, o_bias)?,
                        heads: h,
                        kv_heads: kv,
                    },
                    ln2: RmsNorm::load(be, w, &format!("{p}.post_attention_layernorm"), d, eps)?,
                    mlp: GatedMlp {
                        gate: lin("mlp.gate_proj", d, cfg.intermediate_size, cfg.mlp_bias)?,
                        up: lin("mlp.up_proj", d, cfg.intermediate_size, cfg.mlp_bias)?,
                        down: lin("mlp.down_proj", cfg.intermediate_size, d, cfg.mlp_bias)?,
                        act,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if !cfg.tie_word_embeddings && w.contains(&format!("{head}.weight")) {
            Some(Linear::load(be, w, head, d, cfg.vocab_size, false)?)
        } else {
            None
        };
        let (inv_freq, rope_scale) = cfg.rope()?;
        Ok(Llama {
            cfg: cfg.clone(),
            embed: w.load(
                be,
                &format!("{prefix}.embed_tokens.weight"),
                &[cfg.vocab_size, d],
            )?,
            layers,
            norm: RmsNorm::load(be, w, &format!("{prefix}.norm"), d, eps)?,
            lm_head,
            inv_freq,
            rope_scale,
        })
    }

    /// One KV cache per layer.
    pub fn caches(&self, be: &B, slots: usize, capacity: usize) -> Result<Vec<B::KvCache>> {
        let width = self.cfg.kv_heads() * self.cfg.head_dim();
        (0..self.layers.len())
            .map(|_| Ok(be.kv_cache(slots, capacity, width)?))
            .collect()
    }

    /// Runs `tokens` (token `i` at `at[i]`) through the decoder, filling the
    /// caches, and returns the logits of rows `last` as `[last.len(), vocab]`.
    pub fn forward(
        &self,
        be: &B,
        caches: &mut [B::KvCache],
        tokens: &[u32],
        at: &[Pos],
        last: &[usize],
    ) -> Result<B::Tensor> {
        let rotary = Rotary::plain(self.rope(), at.iter().map(|p| p.pos).collect());
        let x = be.embedding(&self.embed, tokens)?;
        self.forward_embedded(be, caches, x, at, &rotary, last)
    }

    /// Token embeddings of `tokens` (rows a multimodal model may replace).
    pub fn embed(&self, be: &B, tokens: &[u32]) -> Result<B::Tensor> {
        Ok(be.embedding(&self.embed, tokens)?)
    }

    /// The rotary frequencies (M-RoPE splits them into sections).
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// The rotary embedding over positions.
    pub fn rope(&self) -> Rope<'_> {
        Rope {
            inv_freq: &self.inv_freq,
            scale: self.rope_scale,
        }
    }

    /// [`Llama::forward`] from input embeddings `x [n, d]` with its own
    /// rotary positions (Qwen2-VL: image features and M-RoPE).
    pub fn forward_embedded(
        &self,
        be: &B,
        caches: &mut [B::KvCache],
        mut x: B::Tensor,
        at: &[Pos],
        rotary: &Rotary<'_>,
        last: &[usize],
    ) -> Result<B::Tensor> {
        for (l, cache) in self.layers.iter().zip(caches.iter_mut()) {
            let a = l
                .attn
                .forward(be, &l.ln1.forward(be, &x)?, cache, at, Some(rotary))?;
            x = be.add(&x, &a)?;
            let m = l.mlp.forward(be, &l.ln2.forward(be, &x)?)?;
            x = be.add(&x, &m)?;
        }
        // Only the rows that predict a token go through the norm and the head.
        let x = self.norm.forward(be, &be.gather_rows(&x, last)?)?;
        match &self.lm_head {
            Some(h) => h.forward(be, &x),
            None => Ok(be.linear(&x, &self.embed, None)?),
        }
    }
}

/// A loaded Llama with its caches, as the generation loop drives it.
pub struct LlamaDecoder<B: Backend> {
    pub be: B,
    pub model: Llama<B>,
    caches: Vec<B::KvCache>,
    slots: usize,
    capacity: usize,
}

impl<B: Backend> LlamaDecoder<B> {
    pub fn new(be: B, model: Llama<B>, slots: usize, capacity: usize) -> Result<Self> {
        let capacity = capacity.min(model.cfg.max_position_embeddings.max(1));
        let caches = model.caches(&be, slots, capacity)?;
        Ok(LlamaDecoder {
            be,
            model,
            caches,
            slots,
            capacity,
        })
    }
}

impl<B: Backend> Decoder for LlamaDecoder<B> {
    fn slots(&self) -> usize {
        self.slots
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn fork(&mut self, moves: &[(usize, usize)], len: usize, _context: bool) -> Result<()> {
        for c in &mut self.caches {
            self.be.kv_copy(c, moves, len)?;
        }
        Ok(())
    }

    fn step(&mut self, tokens: &[u32], at: &[Pos], last: &[usize], want: Want) -> Result<Logits> {
        let logits = self
            .model
            .forward(&self.be, &mut self.caches, tokens, at, last)?;
        Logits::read(&self.be, &logits, want)
    }
}
