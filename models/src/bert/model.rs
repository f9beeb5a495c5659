//! BERT encoder as a sentence embedder.
//!
//! Port of transformers `models/bert/modeling_bert.py` (`BertEmbeddings`,
//! `BertLayer`: post-norm) plus sentence-transformers' `Pooling` (mean over
//! the attention mask) and `Normalize` modules, as all-MiniLM-L6-v2 stacks them.

use lakecap_kernels::{Activation, Backend, Mask};

use super::config::BertConfig;
use crate::error::{ModelError, Result};
use crate::nn::{Attention, EncoderLayer, LayerNorm, Linear, Mlp, NormPlacement, encode};
use crate::weights::{WeightSource, Weights};

pub struct Bert<B: Backend> {
    pub cfg: BertConfig,
    word: B::Tensor,
    pos: B::Tensor,
    token_type: B::Tensor,
    emb_ln: LayerNorm<B>,
    layers: Vec<EncoderLayer<B>>,
}

impl<B: Backend> Bert<B> {
    pub fn load(be: &B, cfg: &BertConfig, w: &Weights) -> Result<Self> {
        if cfg.position_embedding_type != "absolute" {
            return Err(ModelError::Unsupported(format!(
                "BERT position_embedding_type `{}`",
                cfg.position_embedding_type
            )));
        }
        let p = w
            .find_prefix(
                &["", "bert.", "model."],
                "embeddings.word_embeddings.weight",
            )
            .ok_or_else(|| {
                ModelError::Unsupported("no BERT embeddings in the checkpoint".into())
            })?;
        let (d, ff, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let act = Activation::from_hf(&cfg.hidden_act)
            .ok_or_else(|| ModelError::Unsupported(format!("hidden_act `{}`", cfg.hidden_act)))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = format!("{p}encoder.layer.{i}");
                let lin = |name: &str, a: usize, b: usize| {
                    Linear::load(be, w, &format!("{l}.{name}"), a, b, true)
                };
                Ok(EncoderLayer {
                    attn: Attention {
                        q: lin("attention.self.query", d, d)?,
                        k: lin("attention.self.key", d, d)?,
                        v: lin("attention.self.value", d, d)?,
                        out: lin("attention.output.dense", d, d)?,
                        heads: cfg.num_attention_heads,
                    },
                    ln1: LayerNorm::load(
                        be,
                        w,
                        &format!("{l}.attention.output.LayerNorm"),
                        d,
                        eps,
                    )?,
                    mlp: Mlp {
                        fc1: lin("intermediate.dense", d, ff)?,
                        fc2: lin("output.dense", ff, d)?,
                        act,
                    },
                    ln2: LayerNorm::load(be, w, &format!("{l}.output.LayerNorm"), d, eps)?,
                    norm: NormPlacement::Post,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            word: w.load(
                be,
                &format!("{p}embeddings.word_embeddings.weight"),
                &[cfg.vocab_size, d],
            )?,
            pos: w.load(
                be,
                &format!("{p}embeddings.position_embeddings.weight"),
                &[cfg.max_position_embeddings, d],
            )?,
            token_type: w.load(
                be,
                &format!("{p}embeddings.token_type_embeddings.weight"),
                &[cfg.type_vocab_size, d],
            )?,
            emb_ln: LayerNorm::load(be, w, &format!("{p}embeddings.LayerNorm"), d, eps)?,
            layers,
            cfg: cfg.clone(),
        })
    }

    /// Token id rows -> last hidden states `[b, s, d]` and each row's length.
    pub fn forward(&self, be: &B, rows: &[Vec<u32>]) -> Result<(B::Tensor, Vec<usize>)> {
        let (flat, s, lens) = crate::tokenize::pad_batch(rows, self.cfg.pad_token_id);
        if s > self.cfg.max_position_embeddings {
            return Err(ModelError::Tokenizer(format!(
                "{s} tokens exceed max_position_embeddings {}",
                self.cfg.max_position_embeddings
            )));
        }
        let (b, d) = (rows.len(), self.cfg.hidden_size);
        let x = be.reshape(be.embedding(&self.word, &flat)?, &[b, s, d])?;
        let positions: Vec<u32> = (0..s as u32).collect();
        let x = be.add(&x, &be.embedding(&self.pos, &positions)?)?;
        // Single-segment input: token type 0 everywhere.
        let tt = be.reshape(be.embedding(&self.token_type, &[0])?, &[d])?;
        let x = be.add(&x, &tt)?;
        let x = self.emb_ln.forward(be, &x)?;
        let lens: Vec<usize> = lens.iter().map(|&l| l.max(1)).collect();
        let mask = Mask {
            causal: false,
            key_lens: Some(lens.clone()),
        };
        Ok((encode(be, &self.layers, x, &mask)?, lens))
    }

    /// Mean-pooled (and, when `normalize`, unit-length) sentence embeddings `[b, d]`.
    pub fn embed(&self, be: &B, rows: &[Vec<u32>], normalize: bool) -> Result<B::Tensor> {
        let (h, lens) = self.forward(be, rows)?;
        let pooled = be.masked_mean(&h, &lens)?;
        Ok(if normalize {
            be.l2_normalize(&pooled)?
        } else {
            pooled
        })
    }
}
