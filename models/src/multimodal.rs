//! The decoder half every VLM shares: an image's features take the place of
//! the prompt's image tokens in a Llama-family decoder ([`Llama`]), as
//! transformers' `masked_scatter` of `get_image_features` into
//! `inputs_embeds` does. A model brings its [`ImageEncoder`] (Qwen2-VL's
//! vision tower, LLaVA's CLIP tower and projector) and its rotary scheme:
//! plain RoPE over cache positions, or Qwen2-VL's M-RoPE, three position ids
//! per token (temporal, height, width) over three sections of the
//! frequencies, text tokens with all three equal, image tokens their
//! window's row and column from the image's start, and the text after an
//! image continuing from the image's largest position (`get_rope_index`).
//!
//! A sequence's image arrives as its generation context `[start, model
//! input…]` (the generator carries contexts as f32; `start`, the prompt
//! position of the first image token, is exact) and is encoded once, when
//! the sequence enters a slot.

use lakecap_kernels::{Backend, HostData, Pos};

use crate::decode::{Decoder, Logits, Want};
use crate::error::{ModelError, Result};
use crate::llama::Llama;
use crate::nn::Rotary;

/// A model's image side: images' model inputs -> their features.
pub trait ImageEncoder<B: Backend>: Send + 'static {
    /// Each of `inputs` (contexts after their start position) -> features
    /// `[rows·cols, hidden]` in prompt order, and their grid `(rows, cols)`;
    /// all in one pass through the tower (the images of the rows that enter
    /// slots in the same step).
    fn encode(&self, be: &B, inputs: &[&[f32]]) -> Result<Vec<(B::Tensor, usize, usize)>>;
}

/// A generation context: the prompt position of the image's first token,
/// then the model's input for the image.
pub fn image_context(start: usize, input: impl IntoIterator<Item = f32>) -> Vec<f32> {
    std::iter::once(start as f32).chain(input).collect()
}

/// Where a sequence's image sits in its prompt, and its features.
#[derive(Debug, Clone)]
struct Placed {
    start: usize,
    rows: usize,
    cols: usize,
    /// `[rows·cols, hidden]` on the host (spliced into prefill embeddings).
    features: Vec<f32>,
    /// Image tokens prefilled so far: the next one takes feature row `seen`
    /// (SmolVLM's tiles interleave image tokens with tile markers).
    seen: usize,
}

impl Placed {
    fn tokens(&self) -> usize {
        self.rows * self.cols
    }

    /// M-RoPE's (temporal, height, width) for prompt position `p`.
    fn mrope(&self, p: usize) -> [usize; 3] {
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

/// A VLM with its caches, as the generation loop drives it.
pub struct VlmDecoder<B: Backend, E> {
    be: B,
    encoder: E,
    text: Llama<B>,
    image_token: u32,
    /// M-RoPE's frequency sections; `None`: plain RoPE.
    mrope: Option<Vec<Vec<f32>>>,
    caches: Vec<B::KvCache>,
    images: Vec<Option<Placed>>,
    capacity: usize,
}

impl<B: Backend, E: ImageEncoder<B>> VlmDecoder<B, E> {
    /// `mrope`: M-RoPE's section sizes (Qwen2-VL), or `None`.
    pub fn new(
        be: B,
        encoder: E,
        text: Llama<B>,
        image_token: u32,
        mrope: Option<&[usize]>,
        slots: usize,
        capacity: usize,
    ) -> Result<Self> {
        let capacity = capacity.min(text.cfg.max_position_embeddings.max(1));
        let caches = text.caches(&be, slots, capacity)?;
        let mrope = mrope.map(|s| crate::nn::section_freqs(text.inv_freq(), s));
        Ok(VlmDecoder {
            be,
            encoder,
            text,
            image_token,
            mrope,
            caches,
            images: vec![None; slots],
            capacity,
        })
    }
}

impl<B: Backend, E: ImageEncoder<B>> Decoder for VlmDecoder<B, E> {
    fn slots(&self) -> usize {
        self.images.len()
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    /// Encodes the new sequences' images in one pass (a text-only sequence
    /// brings an empty context).
    fn admit(&mut self, new: &[(usize, &[f32])]) -> Result<()> {
        let mut with = Vec::new();
        for &(slot, ctx) in new {
            self.images[slot] = None;
            if let Some((&start, input)) = ctx.split_first() {
                with.push((slot, start as usize, input));
            }
        }
        let inputs: Vec<&[f32]> = with.iter().map(|w| w.2).collect();
        let encoded = self.encoder.encode(&self.be, &inputs)?;
        for ((slot, start, _), (f, rows, cols)) in with.into_iter().zip(encoded) {
            self.images[slot] = Some(Placed {
                start,
                rows,
                cols,
                features: self.be.download(&f)?,
                seen: 0,
            });
        }
        Ok(())
    }

    fn step(&mut self, tokens: &[u32], at: &[Pos], last: &[usize], want: Want) -> Result<Logits> {
        let mut positions: Vec<Vec<usize>> =
            (0..3).map(|_| Vec::with_capacity(tokens.len())).collect();
        let mut spliced = Vec::new();
        for (i, p) in at.iter().enumerate() {
            let placed = self.images.get_mut(p.slot).and_then(Option::as_mut);
            let thw = placed.as_ref().map_or([p.pos; 3], |im| im.mrope(p.pos));
            for (axis, v) in positions.iter_mut().zip(thw) {
                axis.push(v);
            }
            if let Some(im) = placed
                && tokens[i] == self.image_token
            {
                if im.seen == im.tokens() || p.pos < im.start {
                    return Err(ModelError::Unsupported(format!(
                        "image token at position {} beyond the image's {} tokens from {}",
                        p.pos,
                        im.tokens(),
                        im.start
                    )));
                }
                spliced.push((i, p.slot, im.seen));
                im.seen += 1;
            }
        }
        let mut x = self.text.embed(&self.be, tokens)?;
        if !spliced.is_empty() {
            // Prefill rows of image tokens take the image's features.
            let d = self.text.cfg.hidden_size;
            let mut host = self.be.download(&x)?;
            for (i, slot, k) in spliced {
                let f = &self.images[slot].as_ref().expect("placed").features;
                host[i * d..(i + 1) * d].copy_from_slice(&f[k * d..(k + 1) * d]);
            }
            x = self.be.upload(&[tokens.len(), d], HostData::F32(&host))?;
        }
        let rotary = match &self.mrope {
            Some(freqs) => Rotary::sections(freqs, positions),
            None => Rotary::plain(self.text.rope(), at.iter().map(|p| p.pos).collect()),
        };
        let logits =
            self.text
                .forward_embedded(&self.be, &mut self.caches, x, at, &rotary, last)?;
        Logits::read(&self.be, &logits, want)
    }
}
