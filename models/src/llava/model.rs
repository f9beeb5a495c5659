//! `LlavaForConditionalGeneration`: CLIP's hidden state at
//! `vision_feature_layer` (the class row dropped under the `default`
//! strategy) through `linear_1`, the activation and `linear_2` becomes the
//! prompt's `<image>` tokens in the decoder ([`crate::multimodal`], plain
//! RoPE). Ports `LlavaModel.get_image_features` and
//! `LlavaMultiModalProjector` of transformers `models/llava/modeling_llava.py`.

use lakecap_kernels::{Activation, Backend, HostData};

use super::config::{FeatureSelect, LlavaConfig};
use crate::clip::ClipVision;
use crate::error::{ModelError, Result};
use crate::llama::Llama;
use crate::multimodal::{ImageEncoder, VlmDecoder};
use crate::nn::Linear;
use crate::weights::{WeightSource, Weights};

/// The image side: the CLIP tower and the projector.
pub struct LlavaTower<B: Backend> {
    clip: ClipVision<B>,
    layers: usize,
    select: FeatureSelect,
    linear_1: Linear<B>,
    act: Activation,
    linear_2: Linear<B>,
}

pub type LlavaDecoder<B> = VlmDecoder<B, LlavaTower<B>>;

/// Loads any weight layout: the Hub's (`vision_tower.vision_model.*`,
/// `multi_modal_projector.*`, `language_model.model.*`,
/// `language_model.lm_head`), what transformers 5 saves
/// (`vision_tower.*` without `vision_model`) and its in-memory names
/// (`model.vision_tower.*`, `model.language_model.*`, `lm_head`).
pub fn load_decoder<B: Backend>(
    be: B,
    cfg: &LlavaConfig,
    w: &Weights,
    slots: usize,
    capacity: usize,
) -> Result<LlavaDecoder<B>> {
    let missing =
        |what: &str| ModelError::Unsupported(format!("no LLaVA {what} in the checkpoint"));
    let (text, head) = if w.contains("model.language_model.embed_tokens.weight") {
        ("model.language_model", "lm_head")
    } else {
        ("language_model.model", "language_model.lm_head")
    };
    let vision = w
        .find_prefix(
            &[
                "vision_tower.vision_model.",
                "vision_tower.",
                "model.vision_tower.vision_model.",
                "model.vision_tower.",
            ],
            "embeddings.class_embedding",
        )
        .ok_or_else(|| missing("vision tower"))?;
    let root = w
        .find_prefix(&["", "model."], "multi_modal_projector.linear_1.weight")
        .ok_or_else(|| missing("projector"))?;
    let act = Activation::from_hf(&cfg.projector_act)
        .ok_or_else(|| ModelError::Unsupported(format!("activation `{}`", cfg.projector_act)))?;
    let (dv, dt) = (cfg.vision.hidden_size, cfg.text.hidden_size);
    let proj = |name: &str, din, dout| {
        Linear::load(
            &be,
            w,
            &format!("{root}multi_modal_projector.{name}"),
            din,
            dout,
            cfg.projector_bias,
        )
    };
    let tower = LlavaTower {
        clip: ClipVision::load_tower(&be, &cfg.vision, w, vision)?,
        layers: cfg.feature_layers,
        select: cfg.select,
        linear_1: proj("linear_1", dv, dt)?,
        act,
        linear_2: proj("linear_2", dt, dt)?,
    };
    let text = Llama::load_at(&be, &cfg.text, w, text, head)?;
    VlmDecoder::new(be, tower, text, cfg.image_token_id, None, slots, capacity)
}

impl<B: Backend> ImageEncoder<B> for LlavaTower<B> {
    /// `inputs`: images' patch rows `[num_patches, 3·p·p]`, one batch.
    fn encode(&self, be: &B, inputs: &[&[f32]]) -> Result<Vec<(B::Tensor, usize, usize)>> {
        let c = &self.clip.cfg;
        let (np, cpp) = (c.num_patches(), c.num_channels * c.patch_size.pow(2));
        if let Some(bad) = inputs.iter().find(|i| i.len() != np * cpp) {
            return Err(ModelError::Unsupported(format!(
                "{} pixel values for {np} patches of {cpp}",
                bad.len()
            )));
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let x = be.upload(&[inputs.len(), np, cpp], HostData::F32(&inputs.concat()))?;
        let h = self.clip.hidden_state(be, x, self.layers)?;
        // Per image its patch rows (and the class row under `full`).
        let first = match self.select {
            FeatureSelect::Default => 1,
            FeatureSelect::Full => 0,
        };
        let rows: Vec<usize> = (0..inputs.len())
            .flat_map(|b| (first..=np).map(move |r| b * (np + 1) + r))
            .collect();
        let h = be.gather_rows(&h, &rows)?;
        let h = be.activation(&self.linear_1.forward(be, &h)?, self.act)?;
        let h = self.linear_2.forward(be, &h)?;
        let per = np + 1 - first;
        (0..inputs.len())
            .map(|b| {
                let idx: Vec<usize> = (b * per..(b + 1) * per).collect();
                Ok((be.gather_rows(&h, &idx)?, 1, per))
            })
            .collect()
    }
}
