//! Captioning services: a BLIP model with its image processor and tokenizer
//! behind a continuous-batching [`Generator`], loaded once per process per
//! (model, device), or a VLM of [`crate::serve::vlm`] given an instruction
//! ([`AnyCaptioner`], chosen by the model's `config.json`). Each caption request carries the image (its patches) as
//! the row's context: the worker encodes the images of all sequences that
//! start in a step as one batch, computes their cross-attention keys and
//! values once, and decodes.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use image::DynamicImage;
use tokenizers::Tokenizer;

use super::read_json;
use crate::blip::{BlipCaptioner, BlipConfig, BlipPreprocess};
use crate::decode::{Decoder, GenParams};
use crate::error::{ModelError, Result};
use crate::generate::{Context, Detokenize, Generator};
use crate::runtime::{Device, Registry, cached, on_device};
use crate::serve::vlm::{CAPTION_INSTRUCTION, Vlm, VlmImage, is_vlm, model_type, vlm};
use crate::weights::Weights;

pub struct Captioner {
    pub id: String,
    prep: BlipPreprocess,
    tokenizer: Tokenizer,
    bos: u32,
    pub generator: Generator,
}

impl Captioner {
    /// Decoded image -> model input (on the caller's thread).
    pub fn preprocess(&self, img: &DynamicImage) -> Vec<f32> {
        self.prep.patches(img)
    }

    /// The decoder's start: `[DEC]` and the text prefix's tokens (BLIP's
    /// `generate` replaces `[CLS]` by `[DEC]` and drops the final `[SEP]`).
    pub fn prompt_ids(&self, prefix: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(prefix, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(std::iter::once(self.bos)
            .chain(enc.get_ids().iter().copied())
            .collect())
    }

    /// A caption per image (prefix included, as transformers decodes it);
    /// one row's failure is that row's error only.
    pub async fn caption(
        &self,
        images: Vec<Vec<f32>>,
        prefix: &str,
        params: GenParams,
    ) -> Result<Vec<Result<String>>> {
        let prompt = self.prompt_ids(prefix)?;
        // Guidance's unconditional branch: the checkpoint was not trained
        // with images dropped, so "no image" is the dataset-mean image, which
        // normalises to all zeros.
        let uncond: Option<Context> = (params.guidance_scale != 1.0)
            .then(|| images.first().map(|p| vec![0f32; p.len()].into()))
            .flatten();
        let contexts: Vec<Option<Context>> = images.into_iter().map(|p| Some(p.into())).collect();
        let prompts = vec![prompt.clone(); contexts.len()];
        let out = self
            .generator
            .generate_with(prompts, contexts, uncond, params)
            .await?;
        Ok(out
            .into_iter()
            .map(|r| {
                r.map(|c| {
                    let ids: Vec<u32> = prompt[1..].iter().chain(&c.tokens).copied().collect();
                    self.tokenizer.decode(&ids, true).unwrap_or_default()
                })
            })
            .collect())
    }
}

/// Loads the BLIP captioner in `dir` with `slots` concurrent sequences.
pub fn load_captioner(dir: &Path, id: &str, slots: usize, device: Device) -> Result<Captioner> {
    let cfg: BlipConfig = read_json(&dir.join("config.json"))?;
    if cfg.model_type != "blip" {
        return Err(ModelError::Unsupported(format!(
            "`{id}` is a `{}` model; recaptioning needs a BLIP captioner (blip)",
            cfg.model_type
        )));
    }
    let prep = BlipPreprocess::load(dir, &cfg.vision_config)?;
    let tpath = dir.join("tokenizer.json");
    let tokenizer = crate::tokenize::load_plain(&tpath)?;
    let t = &cfg.text_config;
    let (bos, sep) = (t.bos_token_id, t.sep_token_id);
    let detok_tok = tokenizer.clone();
    let detok: Detokenize =
        Arc::new(move |ids: &[u32]| detok_tok.decode(ids, true).unwrap_or_default());
    let (d, c, slots) = (dir.to_path_buf(), cfg.clone(), slots.max(1));
    let generator = Generator::spawn(
        "blip",
        device,
        move || {
            let w = Weights::open(&d)?;
            on_device!(device, |be| {
                let m: Box<dyn Decoder> = Box::new(BlipCaptioner::load(be, &c, &w, slots)?);
                Ok(m)
            })
        },
        vec![sep],
        detok,
    )?;
    Ok(Captioner {
        id: id.to_string(),
        prep,
        tokenizer,
        bos,
        generator,
    })
}

/// The process-wide captioner `id` on `device` (loaded on first use).
pub fn captioner(id: &str, slots: usize, device: Device) -> Result<Arc<Captioner>> {
    static REG: OnceLock<Registry<Captioner>> = OnceLock::new();
    cached(&REG, id, device, |dir| {
        load_captioner(dir, id, slots, device)
    })
}

/// A decoded image as a captioner takes it.
pub enum CaptionInput {
    /// BLIP's patch rows.
    Patches(Vec<f32>),
    /// A VLM's input.
    Image(VlmImage),
}

/// `images` as this captioner takes them; one another kind prepared is an
/// error (dropping it would shift every later row's caption).
fn own_inputs<T>(
    images: Vec<CaptionInput>,
    take: impl Fn(CaptionInput) -> Option<T>,
) -> Result<Vec<T>> {
    images
        .into_iter()
        .map(|i| {
            take(i).ok_or_else(|| {
                ModelError::Unsupported("an image prepared for another captioner".into())
            })
        })
        .collect()
}

/// Either kind of captioner `recaption` drives, chosen by the model's
/// `config.json`: BLIP continues a text prefix, a VLM follows an instruction.
#[derive(Clone)]
pub enum AnyCaptioner {
    Blip(Arc<Captioner>),
    Vlm(Arc<Vlm>),
}

impl AnyCaptioner {
    /// The process-wide captioner `id` on `device`; a VLM is the same
    /// instance `vlm()` uses.
    pub fn get(id: &str, slots: usize, device: Device) -> Result<AnyCaptioner> {
        let dir = crate::hub::resolve(id)?;
        if dir.join("config.json").is_file() && is_vlm(&model_type(&dir)?) {
            Ok(AnyCaptioner::Vlm(vlm(id, slots, device)?))
        } else {
            Ok(AnyCaptioner::Blip(captioner(id, slots, device)?))
        }
    }

    /// Decoded image -> model input (on the caller's thread).
    pub fn preprocess(&self, img: &DynamicImage) -> Result<CaptionInput> {
        Ok(match self {
            AnyCaptioner::Blip(c) => CaptionInput::Patches(c.preprocess(img)),
            AnyCaptioner::Vlm(v) => CaptionInput::Image(v.preprocess(img)?),
        })
    }

    /// A caption per image. `prompt` is BLIP's text prefix, or the VLM's
    /// instruction ([`CAPTION_INSTRUCTION`] when empty); `max_new_tokens` 0
    /// is the captioner's default (BLIP's short captions, a VLM's detailed ones).
    pub async fn caption(
        &self,
        images: Vec<CaptionInput>,
        prompt: &str,
        mut params: GenParams,
    ) -> Result<Vec<Result<String>>> {
        if params.max_new_tokens == 0 {
            params.max_new_tokens = match self {
                AnyCaptioner::Blip(_) => 30,
                AnyCaptioner::Vlm(_) => 128,
            };
        }
        match self {
            AnyCaptioner::Blip(c) => {
                let patches = own_inputs(images, |i| match i {
                    CaptionInput::Patches(p) => Some(p),
                    CaptionInput::Image(_) => None,
                })?;
                c.caption(patches, prompt, params).await
            }
            AnyCaptioner::Vlm(v) => {
                if params.num_beams > 1 || params.guidance_scale != 1.0 {
                    return Err(ModelError::Unsupported(format!(
                        "`{}` is a VLM: beams and guidance_scale work with BLIP captioners only",
                        v.id
                    )));
                }
                let instruction = if prompt.is_empty() {
                    CAPTION_INSTRUCTION
                } else {
                    prompt
                };
                let requests = own_inputs(images, |i| match i {
                    CaptionInput::Image(p) => Some((p, instruction.to_string())),
                    CaptionInput::Patches(_) => None,
                })?;
                let out = v.ask(requests, params).await?;
                Ok(out.into_iter().map(|r| r.map(|c| c.text)).collect())
            }
        }
    }
}
