//! `Qwen2VLForConditionalGeneration`: the vision tower's features take the
//! place of the prompt's `<|image_pad|>` tokens, and the Qwen2 decoder
//! rotates with M-RoPE, three position ids per token (temporal, height,
//! width) over three sections of the frequencies: text tokens have all three
//! equal, image tokens their window's row and column from the image's start,
//! and the text after an image continues from the image's largest position.
//! Ports `Qwen2VLModel` (`get_rope_index`, `get_image_features`) of
//! transformers `models/qwen2_vl/modeling_qwen2_vl.py`; the decoder is the
//! shared [`Llama`] with its rotary positions given.

use lakecap_kernels::{Backend, HostData, Pos};

use super::config::Qwen2VlConfig;
use super::preprocess::ImagePatches;
use super::vision::VisionTower;
use crate::decode::{Decoder, Logits, Want};
use crate::error::{ModelError, Result};
use crate::llama::Llama;
use crate::nn::{Rotary, section_freqs};
use crate::weights::WeightSource;

pub struct Qwen2Vl<B: Backend> {
    pub cfg: Qwen2VlConfig,
    pub vision: VisionTower<B>,
    pub text: Llama<B>,
    /// The decoder's frequencies in M-RoPE's three sections.
    mrope: Vec<Vec<f32>>,
}

impl<B: Backend> Qwen2Vl<B> {
    /// Loads either weight layout: the Hub's (`visual.*`, `model.layers.*`)
    /// or transformers 5's (`model.visual.*`, `model.language_model.*`).
    pub fn load(be: &B, cfg: &Qwen2VlConfig, w: &impl WeightSource) -> Result<Self> {
        let v5 = w.contains("model.language_model.embed_tokens.weight");
        let (visual, text) = if v5 {
            ("model.visual", "model.language_model")
        } else {
            ("visual", "model")
        };
        let text = Llama::load_at(be, &cfg.text, w, text)?;
        let mrope = section_freqs(text.inv_freq(), &cfg.mrope_section);
        Ok(Qwen2Vl {
            cfg: cfg.clone(),
            vision: VisionTower::load(be, &cfg.vision, w, visual)?,
            text,
            mrope,
        })
    }
}

/// Where a sequence's image sits in its prompt, and its features.
#[derive(Debug, Clone)]
struct Placed {
    /// Prompt position of the first image token.
    start: usize,
    /// The image's tokens: merge windows, `rows × cols`.
    rows: usize,
    cols: usize,
    /// `[rows·cols, hidden]` on the host (spliced into prefill embeddings).
    features: Vec<f32>,
}

impl Placed {
    fn tokens(&self) -> usize {
        self.rows * self.cols
    }

    /// M-RoPE's (temporal, height, width) for prompt position `p`.
    fn position(&self, p: usize) -> [usize; 3] {
        let (s, n) = (self.start, self.tokens());
        if p < s {
            [p; 3]
        } else if p < s + n {
            let k = p - s;
            [s, s + k / self.cols, s + k % self.cols]
        } else {
            [p - n + self.rows.max(self.cols); 3]
        }
    }
}

/// A generation context: the image's prompt position, grid and patch rows
/// (the generator carries contexts as f32; these integers are exact).
pub fn image_context(start: usize, image: &ImagePatches) -> Vec<f32> {
    let (t, h, w) = image.grid;
    [start, t, h, w]
        .iter()
        .map(|&x| x as f32)
        .chain(image.rows.iter().copied())
        .collect()
}

/// A loaded Qwen2-VL with its caches, as the generation loop drives it.
pub struct Qwen2VlDecoder<B: Backend> {
    be: B,
    model: Qwen2Vl<B>,
    caches: Vec<B::KvCache>,
    images: Vec<Option<Placed>>,
    capacity: usize,
}

impl<B: Backend> Qwen2VlDecoder<B> {
    pub fn new(be: B, model: Qwen2Vl<B>, slots: usize, capacity: usize) -> Result<Self> {
        let capacity = capacity.min(model.cfg.text.max_position_embeddings.max(1));
        let caches = model.text.caches(&be, slots, capacity)?;
        Ok(Qwen2VlDecoder {
            be,
            model,
            caches,
            images: vec![None; slots],
            capacity,
        })
    }
}

impl<B: Backend> Decoder for Qwen2VlDecoder<B> {
    fn slots(&self) -> usize {
        self.images.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    /// Encodes each new sequence's image (a text-only sequence brings an
    /// empty context and rotates as plain text).
    fn admit(&mut self, new: &[(usize, &[f32])]) -> Result<()> {
        let merge = self.model.cfg.vision.spatial_merge_size;
        for &(slot, ctx) in new {
            self.images[slot] = None;
            if ctx.len() < 4 {
                continue;
            }
            let [start, t, h, w] = [ctx[0], ctx[1], ctx[2], ctx[3]].map(|x| x as usize);
            let f = self.model.vision.forward(&self.be, &ctx[4..], (t, h, w))?;
            self.images[slot] = Some(Placed {
                start,
                rows: t * h / merge,
                cols: w / merge,
                features: self.be.download(&f)?,
            });
        }
        Ok(())
    }

    fn step(&mut self, tokens: &[u32], at: &[Pos], last: &[usize], want: Want) -> Result<Logits> {
        let mut positions: Vec<Vec<usize>> =
            (0..3).map(|_| Vec::with_capacity(tokens.len())).collect();
        let mut spliced = Vec::new();
        for (i, p) in at.iter().enumerate() {
            let placed = self.images.get(p.slot).and_then(Option::as_ref);
            let thw = placed.map_or([p.pos; 3], |im| im.position(p.pos));
            for (axis, v) in positions.iter_mut().zip(thw) {
                axis.push(v);
            }
            if let Some(im) = placed
                && (im.start..im.start + im.tokens()).contains(&p.pos)
            {
                if tokens[i] != self.model.cfg.image_token_id {
                    return Err(ModelError::Unsupported(format!(
                        "token {} at image position {} (expected <|image_pad|>)",
                        tokens[i], p.pos
                    )));
                }
                spliced.push((i, p.slot, p.pos - im.start));
            }
        }
        let mut x = self.model.text.embed(&self.be, tokens)?;
        if !spliced.is_empty() {
            // Prefill rows of image tokens take the image's features.
            let d = self.model.cfg.text.hidden_size;
            let mut host = self.be.download(&x)?;
            for (i, slot, k) in spliced {
                let f = &self.images[slot].as_ref().expect("placed").features;
                host[i * d..(i + 1) * d].copy_from_slice(&f[k * d..(k + 1) * d]);
            }
            x = self.be.upload(&[tokens.len(), d], HostData::F32(&host))?;
        }
        let rotary = Rotary::sections(&self.model.mrope, positions);
        let logits =
            self.model
                .text
                .forward_embedded(&self.be, &mut self.caches, x, at, &rotary, last)?;
        Logits::read(&self.be, &logits, want)
    }
}
