//! `Idefics3ForConditionalGeneration` (SmolVLM): each tile through the
//! SigLIP-style tower (a patch embedding with bias, learned positions,
//! CLIP's pre-norm layers, a final LayerNorm), pixel shuffle (each
//! `s × s` block of patch rows becomes one row, `s²` times as wide) and the
//! connector's projection; the tiles' tokens, in prompt order, take the place
//! of the `<image>` tokens in the decoder ([`crate::multimodal`], plain
//! RoPE). Ports `Idefics3VisionTransformer`, `Idefics3Connector` and
//! `Idefics3Model.get_image_features` of transformers
//! `models/idefics3/modeling_idefics3.py` (full tiles: every patch valid).

use lakecap_kernels::{Backend, HostData, Mask};

use super::config::Idefics3Config;
use crate::clip::model::vision_layers;
use crate::error::{ModelError, Result};
use crate::llama::Llama;
use crate::multimodal::{ImageEncoder, VlmDecoder};
use crate::nn::{EncoderLayer, LayerNorm, Linear, encode};
use crate::weights::{WeightSource, Weights};

pub struct Idefics3Tower<B: Backend> {
    patch: Linear<B>,
    pos: B::Tensor,
    layers: Vec<EncoderLayer<B>>,
    post_ln: LayerNorm<B>,
    proj: Linear<B>,
    /// Patches per tile side, and the pixel-shuffle factor.
    side: usize,
    scale: usize,
    /// Values per patch row (3·p·p) and the tower's width.
    cpp: usize,
    d: usize,
}

pub type Idefics3Decoder<B> = VlmDecoder<B, Idefics3Tower<B>>;

/// Loads `model.vision_model.*`, `model.connector.*`, `model.text_model.*`
/// and `lm_head` (the Hub's SmolVLM names, and transformers 5's).
pub fn load_decoder<B: Backend>(
    be: B,
    cfg: &Idefics3Config,
    w: &Weights,
    slots: usize,
    capacity: usize,
) -> Result<Idefics3Decoder<B>> {
    let c = &cfg.vision;
    let (d, p) = (c.hidden_size, "model.vision_model.");
    let cpp = c.num_channels * c.patch_size.pow(2);
    let name = format!("{p}embeddings.patch_embedding.weight");
    let (shape, conv) = w.read_f32(&name)?;
    if conv.len() != d * cpp {
        return Err(ModelError::Weight {
            name,
            detail: format!("shape {shape:?}, expected {d} x {cpp}"),
        });
    }
    let s = cfg.scale_factor;
    let tower = Idefics3Tower {
        patch: Linear {
            w: be.upload_weight(&[d, cpp], HostData::F32(&conv))?,
            b: Some(w.load(&be, &format!("{p}embeddings.patch_embedding.bias"), &[d])?),
        },
        pos: w.load(
            &be,
            &format!("{p}embeddings.position_embedding.weight"),
            &[c.num_patches(), d],
        )?,
        layers: vision_layers(&be, w, p, c)?,
        post_ln: LayerNorm::load(&be, w, &format!("{p}post_layernorm"), d, c.layer_norm_eps)?,
        proj: Linear::load(
            &be,
            w,
            "model.connector.modality_projection.proj",
            d * s * s,
            cfg.text.hidden_size,
            false,
        )?,
        side: c.image_size / c.patch_size,
        scale: s,
        cpp,
        d,
    };
    let text = Llama::load_at(&be, &cfg.text, w, "model.text_model", "lm_head")?;
    VlmDecoder::new(be, tower, text, cfg.image_token_id, None, slots, capacity)
}

impl<B: Backend> ImageEncoder<B> for Idefics3Tower<B> {
    /// `inputs`: per image, its tiles' patch rows `[tiles, patches, 3·p·p]`;
    /// all tiles of all images go through the tower as one batch.
    fn encode(&self, be: &B, inputs: &[&[f32]]) -> Result<Vec<(B::Tensor, usize, usize)>> {
        let np = self.side * self.side;
        let per_tile = np * self.cpp;
        if let Some(bad) = inputs
            .iter()
            .find(|i| i.is_empty() || i.len() % per_tile != 0)
        {
            return Err(ModelError::Unsupported(format!(
                "{} pixel values for tiles of {np} patches of {}",
                bad.len(),
                self.cpp
            )));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let tiles: Vec<usize> = inputs.iter().map(|i| i.len() / per_tile).collect();
        let total: usize = tiles.iter().sum();
        let x = be.upload(&[total, np, self.cpp], HostData::F32(&inputs.concat()))?;
        let x = be.add(&self.patch.forward(be, &x)?, &self.pos)?;
        let x = encode(be, &self.layers, x, &Mask::default())?;
        let x = self.post_ln.forward(be, &x)?;
        // Pixel shuffle: output row (i, j) of a tile is its patch rows
        // (i·s + a, j·s + b) for a, b < s, in that order.
        let (s, side, out_side) = (self.scale, self.side, self.side / self.scale);
        let mut rows = Vec::with_capacity(total * np);
        for t in 0..total {
            for i in 0..out_side {
                for j in 0..out_side {
                    for a in 0..s {
                        for b in 0..s {
                            rows.push(t * np + (i * s + a) * side + j * s + b);
                        }
                    }
                }
            }
        }
        let x = be.reshape(
            be.gather_rows(&x, &rows)?,
            &[total * np / (s * s), self.d * s * s],
        )?;
        let x = self.proj.forward(be, &x)?;
        let seq = np / (s * s);
        let mut first = 0;
        tiles
            .iter()
            .map(|&n| {
                let idx: Vec<usize> = (first * seq..(first + n) * seq).collect();
                first += n;
                Ok((be.gather_rows(&x, &idx)?, 1, n * seq))
            })
            .collect()
    }
}
