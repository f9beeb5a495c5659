//! BLIP for conditional generation (HF `BlipForConditionalGeneration`): a
//! ViT vision encoder (fused `qkv`, pre-norm) and a BERT-style text decoder
//! (post-norm) whose layers self-attend causally over a KV cache and
//! cross-attend to the image. Ports transformers `models/blip/modeling_blip.py`
//! and `modeling_blip_text.py`, on the shared blocks of [`crate::nn`].

use lakecap_kernels::{Activation, Backend, HostData, Mask, Pos};

use super::config::{BlipConfig, BlipTextConfig, BlipVisionConfig};
use crate::decode::{Decoder, Logits, Want};
use crate::error::{ModelError, Result};
use crate::nn::{
    Attention, CachedAttention, CrossAttention, EncoderLayer, LayerNorm, Linear, Mlp,
    NormPlacement, encode,
};
use crate::weights::WeightSource;

fn activation(name: &str) -> Result<Activation> {
    Activation::from_hf(name).ok_or_else(|| ModelError::Unsupported(format!("activation `{name}`")))
}

pub struct BlipVision<B: Backend> {
    pub cfg: BlipVisionConfig,
    patch: Linear<B>,
    class: B::Tensor,
    pos: B::Tensor,
    layers: Vec<EncoderLayer<B>>,
    post_ln: LayerNorm<B>,
}

impl<B: Backend> BlipVision<B> {
    pub fn load(be: &B, c: &BlipVisionConfig, w: &impl WeightSource) -> Result<Self> {
        let (d, ff, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let cpp = 3 * c.patch_size * c.patch_size;
        let p = "vision_model";
        let act = activation(&c.hidden_act)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = format!("{p}.encoder.layers.{i}");
                let mut qkv = Linear::load_split(be, w, &format!("{l}.self_attn.qkv"), d, d, 3)?;
                let (v, k, q) = (
                    qkv.pop().expect("3 parts"),
                    qkv.pop().expect("3 parts"),
                    qkv.pop().expect("3 parts"),
                );
                let lin = |n: &str, a, b| Linear::load(be, w, &format!("{l}.{n}"), a, b, true);
                Ok(EncoderLayer {
                    attn: Attention {
                        q,
                        k,
                        v,
                        out: lin("self_attn.projection", d, d)?,
                        heads: c.num_attention_heads,
                    },
                    ln1: LayerNorm::load(be, w, &format!("{l}.layer_norm1"), d, eps)?,
                    mlp: Mlp {
                        fc1: lin("mlp.fc1", d, ff)?,
                        fc2: lin("mlp.fc2", ff, d)?,
                        act,
                    },
                    ln2: LayerNorm::load(be, w, &format!("{l}.layer_norm2"), d, eps)?,
                    norm: NormPlacement::Pre,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BlipVision {
            patch: Linear::load(
                be,
                w,
                &format!("{p}.embeddings.patch_embedding"),
                cpp,
                d,
                true,
            )?,
            class: w.load(be, &format!("{p}.embeddings.class_embedding"), &[d])?,
            pos: w.load(
                be,
                &format!("{p}.embeddings.position_embedding"),
                &[c.num_patches() + 1, d],
            )?,
            layers,
            post_ln: LayerNorm::load(be, w, &format!("{p}.post_layernorm"), d, eps)?,
            cfg: c.clone(),
        })
    }

    /// `b` images of patches (see [`lakecap_kernels::image::PixelPlan`]) ->
    /// `[b, num_patches + 1, d]` (the last hidden state, post-norm).
    pub fn forward(&self, be: &B, patches: &[f32], b: usize) -> Result<B::Tensor> {
        let (np, p) = (self.cfg.num_patches(), self.cfg.patch_size);
        let x = be.upload(&[b, np, 3 * p * p], HostData::F32(patches))?;
        let x = self.patch.forward(be, &x)?;
        let x = be.add(&be.prepend_row(&x, &self.class)?, &self.pos)?;
        let x = encode(be, &self.layers, x, &Mask::default())?;
        self.post_ln.forward(be, &x)
    }
}

/// One text-decoder layer: causal self-attention, cross-attention to the
/// image and a feed-forward block, each `LayerNorm(x + block(x))`.
struct TextLayer<B: Backend> {
    attn: CachedAttention<B>,
    ln_attn: LayerNorm<B>,
    cross: CrossAttention<B>,
    ln_cross: LayerNorm<B>,
    ff: Mlp<B>,
    ln_ff: LayerNorm<B>,
}

pub struct BlipText<B: Backend> {
    pub cfg: BlipTextConfig,
    word: B::Tensor,
    pos: B::Tensor,
    ln_emb: LayerNorm<B>,
    layers: Vec<TextLayer<B>>,
    head_dense: Linear<B>,
    head_ln: LayerNorm<B>,
    act: Activation,
    /// `None`: tied to the word embeddings.
    decoder: Option<B::Tensor>,
    decoder_bias: B::Tensor,
}

impl<B: Backend> BlipText<B> {
    pub fn load(be: &B, c: &BlipTextConfig, w: &impl WeightSource) -> Result<Self> {
        let (d, ff, eps, h) = (
            c.hidden_size,
            c.intermediate_size,
            c.layer_norm_eps,
            c.num_attention_heads,
        );
        let enc = c.encoder_hidden_size;
        let p = "text_decoder.bert";
        let act = activation(&c.hidden_act)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = format!("{p}.encoder.layer.{i}");
                let lin = |n: &str, a, b| Linear::load(be, w, &format!("{l}.{n}"), a, b, true);
                let ln = |n: &str| LayerNorm::load(be, w, &format!("{l}.{n}"), d, eps);
                Ok(TextLayer {
                    attn: CachedAttention {
                        q: lin("attention.self.query", d, d)?,
                        k: lin("attention.self.key", d, d)?,
                        v: lin("attention.self.value", d, d)?,
                        out: lin("attention.output.dense", d, d)?,
                        heads: h,
                        kv_heads: h,
                    },
                    ln_attn: ln("attention.output.LayerNorm")?,
                    cross: CrossAttention {
                        q: lin("crossattention.self.query", d, d)?,
                        k: lin("crossattention.self.key", enc, d)?,
                        v: lin("crossattention.self.value", enc, d)?,
                        out: lin("crossattention.output.dense", d, d)?,
                        heads: h,
                    },
                    ln_cross: ln("crossattention.output.LayerNorm")?,
                    ff: Mlp {
                        fc1: lin("intermediate.dense", d, ff)?,
                        fc2: lin("output.dense", ff, d)?,
                        act,
                    },
                    ln_ff: ln("output.LayerNorm")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let head = "text_decoder.cls.predictions";
        let decoder_w = format!("{head}.decoder.weight");
        let bias = if w.contains(&format!("{head}.bias")) {
            format!("{head}.bias")
        } else {
            format!("{head}.decoder.bias")
        };
        Ok(BlipText {
            word: w.load(
                be,
                &format!("{p}.embeddings.word_embeddings.weight"),
                &[c.vocab_size, d],
            )?,
            pos: w.load(
                be,
                &format!("{p}.embeddings.position_embeddings.weight"),
                &[c.max_position_embeddings, d],
            )?,
            ln_emb: LayerNorm::load(be, w, &format!("{p}.embeddings.LayerNorm"), d, eps)?,
            layers,
            head_dense: Linear::load(be, w, &format!("{head}.transform.dense"), d, d, true)?,
            head_ln: LayerNorm::load(be, w, &format!("{head}.transform.LayerNorm"), d, eps)?,
            act,
            decoder: if w.contains(&decoder_w) {
                Some(w.load(be, &decoder_w, &[c.vocab_size, d])?)
            } else {
                None
            },
            decoder_bias: w.load(be, &bias, &[c.vocab_size])?,
            cfg: c.clone(),
        })
    }
}

/// A loaded BLIP captioner with its caches, as the generation loop drives it:
/// [`Decoder::admit`] encodes the new sequences' images in one batch and fills
/// their cross-attention caches; [`Decoder::step`] decodes.
pub struct BlipCaptioner<B: Backend> {
    be: B,
    vision: BlipVision<B>,
    text: BlipText<B>,
    self_caches: Vec<B::KvCache>,
    cross_caches: Vec<B::KvCache>,
    slots: usize,
    capacity: usize,
}

impl<B: Backend> BlipCaptioner<B> {
    pub fn load(be: B, cfg: &BlipConfig, w: &impl WeightSource, slots: usize) -> Result<Self> {
        let vision = BlipVision::load(&be, &cfg.vision_config, w)?;
        let text = BlipText::load(&be, &cfg.text_config, w)?;
        let (d, capacity) = (text.cfg.hidden_size, text.cfg.max_position_embeddings);
        let n_img = vision.cfg.num_patches() + 1;
        let caches = |n| -> Result<Vec<B::KvCache>> {
            (0..text.layers.len())
                .map(|_| Ok(be.kv_cache(slots, n, d)?))
                .collect()
        };
        let (self_caches, cross_caches) = (caches(capacity)?, caches(n_img)?);
        Ok(BlipCaptioner {
            be,
            vision,
            text,
            self_caches,
            cross_caches,
            slots,
            capacity,
        })
    }

    /// Image tokens each sequence cross-attends to.
    fn n_img(&self) -> usize {
        self.vision.cfg.num_patches() + 1
    }
}

impl<B: Backend> Decoder for BlipCaptioner<B> {
    fn slots(&self) -> usize {
        self.slots
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn admit(&mut self, new: &[(usize, &[f32])]) -> Result<()> {
        let be = &self.be;
        let n = self.n_img();
        let per = crate::nn::items_per_pass(be, n, self.vision.cfg.intermediate_size);
        for chunk in new.chunks(per) {
            let flat: Vec<f32> = chunk.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            let enc = self.vision.forward(be, &flat, chunk.len())?;
            for (i, (slot, _)) in chunk.iter().enumerate() {
                let rows: Vec<usize> = (i * n..(i + 1) * n).collect();
                let img = be.gather_rows(&enc, &rows)?;
                for (l, cache) in self.text.layers.iter().zip(self.cross_caches.iter_mut()) {
                    l.cross.fill(be, cache, &img, *slot)?;
                }
            }
        }
        Ok(())
    }

    fn fork(&mut self, moves: &[(usize, usize)], len: usize, context: bool) -> Result<()> {
        let n_img = self.n_img();
        for c in &mut self.self_caches {
            self.be.kv_copy(c, moves, len)?;
        }
        if context {
            for c in &mut self.cross_caches {
                self.be.kv_copy(c, moves, n_img)?;
            }
        }
        Ok(())
    }

    fn step(&mut self, tokens: &[u32], at: &[Pos], last: &[usize], want: Want) -> Result<Logits> {
        let (be, t) = (&self.be, &self.text);
        let positions: Vec<u32> = at.iter().map(|p| p.pos as u32).collect();
        let x = be.add(
            &be.embedding(&t.word, tokens)?,
            &be.embedding(&t.pos, &positions)?,
        )?;
        let mut x = t.ln_emb.forward(be, &x)?;
        let slots: Vec<usize> = at.iter().map(|p| p.slot).collect();
        let n_img = self.n_img();
        for ((l, sc), cc) in t
            .layers
            .iter()
            .zip(self.self_caches.iter_mut())
            .zip(self.cross_caches.iter())
        {
            let a = l.attn.forward(be, &x, sc, at, None)?;
            x = l.ln_attn.forward(be, &be.add(&x, &a)?)?;
            let c = l.cross.forward(be, &x, cc, &slots, n_img)?;
            x = l.ln_cross.forward(be, &be.add(&x, &c)?)?;
            let f = l.ff.forward(be, &x)?;
            x = l.ln_ff.forward(be, &be.add(&x, &f)?)?;
        }
        let h = be.gather_rows(&x, last)?;
        let h = t
            .head_ln
            .forward(be, &be.activation(&t.head_dense.forward(be, &h)?, t.act)?)?;
        let table = t.decoder.as_ref().unwrap_or(&t.word);
        let logits = be.linear(&h, table, Some(&t.decoder_bias))?;
        Logits::read(be, &logits, want)
    }
}
