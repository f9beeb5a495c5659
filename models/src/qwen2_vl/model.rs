//! `Qwen2VLForConditionalGeneration` and `Qwen2_5_VLForConditionalGeneration`:
//! the vision tower's features take the place of the prompt's
//! `<|image_pad|>` tokens in the Qwen2 decoder, which rotates with M-RoPE
//! ([`crate::multimodal`]). Ports `Qwen2VLModel` (`get_image_features`,
//! `get_rope_index`) of transformers `models/qwen2_vl/modeling_qwen2_vl.py`.

use lakecap_kernels::Backend;

use super::config::Qwen2VlConfig;
use super::preprocess::ImagePatches;
use super::vision::{ImageRows, VisionTower};
use crate::error::Result;
use crate::llama::Llama;
use crate::multimodal::{ImageEncoder, VlmDecoder};
use crate::weights::WeightSource;

/// A Qwen2-VL with its caches, as the generation loop drives it.
pub type Qwen2VlDecoder<B> = VlmDecoder<B, VisionTower<B>>;

/// Loads either weight layout, the Hub's (`visual.*`, `model.layers.*`) or
/// transformers 5's (`model.visual.*`, `model.language_model.*`), as a
/// decoder of `slots` sequences of up to `capacity` positions.
pub fn load_decoder<B: Backend>(
    be: B,
    cfg: &Qwen2VlConfig,
    w: &impl WeightSource,
    slots: usize,
    capacity: usize,
) -> Result<Qwen2VlDecoder<B>> {
    let v5 = w.contains("model.language_model.embed_tokens.weight");
    let (visual, text) = if v5 {
        ("model.visual", "model.language_model")
    } else {
        ("visual", "model")
    };
    let text = Llama::load_at(&be, &cfg.text, w, text, "lm_head")?;
    let vision = VisionTower::load(&be, &cfg.vision, w, visual)?;
    VlmDecoder::new(
        be,
        vision,
        text,
        cfg.image_token_id,
        Some(&cfg.mrope_section),
        slots,
        capacity,
    )
}

/// The input of one image: its grid, then its patch rows.
pub fn image_input(image: &ImagePatches) -> impl Iterator<Item = f32> + '_ {
    let (t, h, w) = image.grid;
    [t, h, w]
        .into_iter()
        .map(|x| x as f32)
        .chain(image.rows.iter().copied())
}

impl<B: Backend> ImageEncoder<B> for VisionTower<B> {
    fn encode(&self, be: &B, inputs: &[&[f32]]) -> Result<Vec<(B::Tensor, usize, usize)>> {
        let images: Vec<ImageRows> = inputs
            .iter()
            .map(|input| {
                let [t, h, w] = [0, 1, 2].map(|i| input.get(i).copied().unwrap_or(0.0) as usize);
                (input.get(3..).unwrap_or_default(), (t, h, w))
            })
            .collect();
        let m = self.cfg.spatial_merge_size;
        let features = self.forward(be, &images)?;
        Ok(features
            .into_iter()
            .zip(&images)
            .map(|(f, (_, (t, h, w)))| (f, t * h / m, w / m))
            .collect())
    }
}
