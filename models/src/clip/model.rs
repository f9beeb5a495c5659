//! CLIP vision and text towers with their projections.
//!
//! Port of transformers `models/clip/modeling_clip.py` (`CLIPVisionTransformer`,
//! `CLIPTextTransformer`, `CLIPModel.get_image_features` / `get_text_features`),
//! for any size in the config (ViT-B/32, B/16, L/14). Weight names are the HF
//! state-dict names; checkpoints of `CLIPModel`, `CLIPVisionModelWithProjection`
//! and `CLIPTextModelWithProjection` all load.

use lakecap_kernels::{Activation, Backend, HostData, Mask};

use super::config::{ClipConfig, ClipTextConfig, ClipVisionConfig};
use crate::error::{ModelError, Result};
use crate::nn::{
    Attention, EncoderLayer, LayerNorm, Linear, Mlp, NormPlacement, encode, encode_at,
};
use crate::weights::{WeightSource, Weights};

fn activation(name: &str) -> Result<Activation> {
    Activation::from_hf(name).ok_or_else(|| ModelError::Unsupported(format!("hidden_act `{name}`")))
}

/// The shape of one CLIP tower's encoder.
struct Tower<'a> {
    layers: usize,
    d: usize,
    ff: usize,
    heads: usize,
    act: &'a str,
    eps: f64,
}

/// The encoder shape of either tower's config (both use the same HF field names).
macro_rules! tower {
    ($c:expr) => {
        Tower {
            layers: $c.num_hidden_layers,
            d: $c.hidden_size,
            ff: $c.intermediate_size,
            heads: $c.num_attention_heads,
            act: &$c.hidden_act,
            eps: $c.layer_norm_eps,
        }
    };
}

/// CLIP's encoder layers (`{prefix}encoder.layers.N.*`), pre-norm.
fn clip_layers<B: Backend>(
    be: &B,
    w: &Weights,
    prefix: &str,
    t: &Tower,
) -> Result<Vec<EncoderLayer<B>>> {
    let (d, ff, heads, eps) = (t.d, t.ff, t.heads, t.eps);
    let act = activation(t.act)?;
    (0..t.layers)
        .map(|i| {
            let p = format!("{prefix}encoder.layers.{i}");
            let lin = |name: &str, a: usize, b: usize| {
                Linear::load(be, w, &format!("{p}.{name}"), a, b, true)
            };
            Ok(EncoderLayer {
                attn: Attention {
                    q: lin("self_attn.q_proj", d, d)?,
                    k: lin("self_attn.k_proj", d, d)?,
                    v: lin("self_attn.v_proj", d, d)?,
                    out: lin("self_attn.out_proj", d, d)?,
                    heads,
                },
                ln1: LayerNorm::load(be, w, &format!("{p}.layer_norm1"), d, eps)?,
                mlp: Mlp {
                    fc1: lin("mlp.fc1", d, ff)?,
                    fc2: lin("mlp.fc2", ff, d)?,
                    act,
                },
                ln2: LayerNorm::load(be, w, &format!("{p}.layer_norm2"), d, eps)?,
                norm: NormPlacement::Pre,
            })
        })
        .collect()
}

/// The encoder layers of a CLIP-style vision config under `prefix`
/// (SigLIP towers, e.g. Idefics3's, share CLIP's layer names).
pub(crate) fn vision_layers<B: Backend>(
    be: &B,
    w: &Weights,
    prefix: &str,
    c: &ClipVisionConfig,
) -> Result<Vec<EncoderLayer<B>>> {
    clip_layers(be, w, prefix, &tower!(c))
}

pub struct ClipVision<B: Backend> {
    pub cfg: ClipVisionConfig,
    patch: Linear<B>,
    class: B::Tensor,
    pos: B::Tensor,
    pre_ln: LayerNorm<B>,
    layers: Vec<EncoderLayer<B>>,
    post_ln: LayerNorm<B>,
    /// `None` for a tower without projection (LLaVA's `CLIPVisionModel`).
    proj: Option<Linear<B>>,
    pub projection_dim: usize,
}

impl<B: Backend> ClipVision<B> {
    pub fn load(be: &B, cfg: &ClipConfig, w: &Weights) -> Result<Self> {
        let p = w
            .find_prefix(&["vision_model.", ""], "embeddings.class_embedding")
            .ok_or_else(|| {
                ModelError::Unsupported("no CLIP vision tower in the checkpoint".into())
            })?;
        let mut v = Self::load_tower(be, &cfg.vision_config, w, p)?;
        v.proj = Some(Linear::load(
            be,
            w,
            "visual_projection",
            cfg.vision_config.hidden_size,
            cfg.projection_dim,
            false,
        )?);
        v.projection_dim = cfg.projection_dim;
        Ok(v)
    }

    /// The tower alone, under `p` (`vision_tower.vision_model.` in LLaVA).
    pub fn load_tower(be: &B, c: &ClipVisionConfig, w: &Weights, p: &str) -> Result<Self> {
        let c = c.clone();
        let d = c.hidden_size;
        let cpp = c.num_channels * c.patch_size * c.patch_size;
        let eps = c.layer_norm_eps;
        Ok(ClipVision {
            patch: Linear::load(
                be,
                w,
                &format!("{p}embeddings.patch_embedding"),
                cpp,
                d,
                false,
            )?,
            class: w.load(be, &format!("{p}embeddings.class_embedding"), &[d])?,
            pos: w.load(
                be,
                &format!("{p}embeddings.position_embedding.weight"),
                &[c.num_patches() + 1, d],
            )?,
            // The HF attribute really is spelled `pre_layrnorm`.
            pre_ln: LayerNorm::load(be, w, &format!("{p}pre_layrnorm"), d, eps)?,
            layers: clip_layers(be, w, p, &tower!(c))?,
            post_ln: LayerNorm::load(be, w, &format!("{p}post_layernorm"), d, eps)?,
            proj: None,
            projection_dim: d,
            cfg: c,
        })
    }

    /// `hidden_states[layers]` of transformers' `CLIPVisionModel` for patch
    /// rows `x [b, num_patches, 3·p·p]`: the embeddings after the pre-norm
    /// through the first `layers` encoder layers, class row first,
    /// `[b, num_patches + 1, d]`.
    pub fn hidden_state(&self, be: &B, x: B::Tensor, layers: usize) -> Result<B::Tensor> {
        let layers = &self.layers[..layers.min(self.layers.len())];
        encode(be, layers, self.embed(be, x)?, &Mask::default())
    }

    /// The embeddings after the pre-norm: `hidden_states[0]`.
    fn embed(&self, be: &B, x: B::Tensor) -> Result<B::Tensor> {
        let x = self.patch.forward(be, &x)?;
        let x = be.add(&be.prepend_row(&x, &self.class)?, &self.pos)?;
        self.pre_ln.forward(be, &x)
    }

    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// `patches`: `b` images, each `[num_patches, 3·p·p]` flattened
    /// (see [`lakecap_kernels::image::PixelPlan`]) -> image embeddings `[b, projection_dim]`.
    pub fn forward(&self, be: &B, patches: &[f32], b: usize) -> Result<B::Tensor> {
        let np = self.cfg.num_patches();
        let cpp = self.cfg.num_channels * self.cfg.patch_size * self.cfg.patch_size;
        self.forward_patches(be, be.upload(&[b, np, cpp], HostData::F32(patches))?)
    }

    /// The same from patch rows already on the device, `x [b, num_patches, 3·p·p]`
    /// (e.g. [`Backend::pixel_patches`]).
    pub fn forward_patches(&self, be: &B, x: B::Tensor) -> Result<B::Tensor> {
        let b = be.shape(&x).first().copied().unwrap_or(0);
        // Only the class row of the last layer is read.
        let cls = encode_at(
            be,
            &self.layers,
            self.embed(be, x)?,
            &Mask::default(),
            &vec![0; b],
        )?;
        let pooled = self.post_ln.forward(be, &cls)?;
        match &self.proj {
            Some(proj) => proj.forward(be, &pooled),
            None => Err(ModelError::Unsupported(
                "this CLIP vision tower has no projection".into(),
            )),
        }
    }
}

pub struct ClipText<B: Backend> {
    pub cfg: ClipTextConfig,
    tok: B::Tensor,
    pos: B::Tensor,
    layers: Vec<EncoderLayer<B>>,
    final_ln: LayerNorm<B>,
    proj: Linear<B>,
    pub projection_dim: usize,
}

impl<B: Backend> ClipText<B> {
    pub fn load(be: &B, cfg: &ClipConfig, w: &Weights) -> Result<Self> {
        let c = cfg.text_config.clone();
        let d = c.hidden_size;
        let p = w
            .find_prefix(&["text_model.", ""], "embeddings.token_embedding.weight")
            .ok_or_else(|| {
                ModelError::Unsupported("no CLIP text tower in the checkpoint".into())
            })?;
        let eps = c.layer_norm_eps;
        Ok(ClipText {
            tok: w.load(
                be,
                &format!("{p}embeddings.token_embedding.weight"),
                &[c.vocab_size, d],
            )?,
            pos: w.load(
                be,
                &format!("{p}embeddings.position_embedding.weight"),
                &[c.max_position_embeddings, d],
            )?,
            layers: clip_layers(be, w, p, &tower!(c))?,
            final_ln: LayerNorm::load(be, w, &format!("{p}final_layer_norm"), d, eps)?,
            proj: Linear::load(be, w, "text_projection", d, cfg.projection_dim, false)?,
            projection_dim: cfg.projection_dim,
            cfg: c,
        })
    }

    /// Where the pooled token is: transformers takes the highest id for legacy
    /// configs (`eos_token_id == 2`) and the first `eos_token_id` otherwise.
    fn eos_position(&self, ids: &[u32]) -> usize {
        if self.cfg.eos_token_id == 2 {
            // argmax returns the first maximum, as torch does.
            let mx = ids.iter().copied().max().unwrap_or(0);
            ids.iter().position(|&t| t == mx).unwrap_or(0)
        } else {
            ids.iter()
                .position(|&t| t == self.cfg.eos_token_id)
                .unwrap_or(ids.len().saturating_sub(1))
        }
    }

    /// Token id rows (special tokens included, at most `max_position_embeddings`)
    /// -> text embeddings `[b, projection_dim]`.
    pub fn forward(&self, be: &B, rows: &[Vec<u32>]) -> Result<B::Tensor> {
        let (flat, s, lens) = crate::tokenize::pad_batch(rows, self.cfg.pad_token_id);
        if s > self.cfg.max_position_embeddings {
            return Err(ModelError::Tokenizer(format!(
                "{s} tokens exceed max_position_embeddings {}",
                self.cfg.max_position_embeddings
            )));
        }
        let b = rows.len();
        let d = self.cfg.hidden_size;
        let x = be.reshape(be.embedding(&self.tok, &flat)?, &[b, s, d])?;
        let positions: Vec<u32> = (0..s as u32).collect();
        let x = be.add(&x, &be.embedding(&self.pos, &positions)?)?;
        let mask = Mask {
            causal: true,
            key_lens: Some(lens.iter().map(|&l| l.max(1)).collect()),
        };
        // Only the pooled row of the last layer is read.
        let at: Vec<usize> = rows.iter().map(|r| self.eos_position(r)).collect();
        let x = encode_at(be, &self.layers, x, &mask, &at)?;
        self.proj.forward(be, &self.final_ln.forward(be, &x)?)
    }
}
