//! Captioning services: a BLIP model with its image processor and tokenizer
//! behind a continuous-batching [`Generator`], loaded once per process per
//! (model, device). Each caption request carries the image (its patches) as
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
