//! Vision-language services: an instruction VLM (Qwen2-VL, Qwen2.5-VL,
//! LLaVA-1.5, SmolVLM) with its image
//! processor, tokenizer and chat template behind a continuous-batching
//! [`Generator`], loaded once per process per (model, device) and shared by
//! `vlm()` and `recaption()`. A row's image is its context: the worker
//! encodes it once, when the row enters a slot, and its features take the
//! place of the prompt's image tokens during (chunked) prefill.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use image::DynamicImage;
use serde_json::json;
use tokenizers::Tokenizer;

use super::llm::{CONTEXT, hf_eos, hf_template, token_str};
use super::read_json;
use crate::chat::ChatTemplate;
use crate::clip::ClipPreprocess;
use crate::decode::{Decoder, GenParams};
use crate::error::{ModelError, Result};
use crate::generate::{Completion, Detokenize, Generator};
use crate::idefics3::{self, Idefics3Config, Idefics3Preprocess};
use crate::llava::{self, LlavaConfig};
use crate::multimodal::image_context;
use crate::qwen2_vl::{self, Qwen2VlConfig, Qwen2VlPreprocess, image_input};
use crate::runtime::{Device, Registry, cached, on_device};
use crate::weights::Weights;

/// The instruction `recaption` gives a VLM when its options name no prompt.
pub const CAPTION_INSTRUCTION: &str = "Describe this image in detail.";

/// How a family turns a decoded image into the decoder's input.
enum Prep {
    /// Native resolution: the token count follows the image's size.
    Qwen2Vl(Qwen2VlPreprocess),
    /// A fixed square input and token count.
    Llava { clip: ClipPreprocess, tokens: usize },
    /// Tiles and a global image; the prompt's image becomes the tile layout.
    Idefics3 {
        tiles: Idefics3Preprocess,
        seq: usize,
        patch: usize,
    },
}

/// One image as a VLM takes it: the encoder's input and its prompt tokens.
#[derive(Debug, Clone)]
pub struct VlmImage {
    pub input: Vec<f32>,
    pub tokens: usize,
    /// The text that replaces the chat template's image placeholder (SmolVLM's
    /// tile layout); `None`: the image token repeated `tokens` times.
    pub layout: Option<String>,
}

pub struct Vlm {
    pub id: String,
    prep: Prep,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    image_token: u32,
    pub generator: Generator,
}

/// The `model_type` of a model directory's `config.json`.
pub fn model_type(dir: &Path) -> Result<String> {
    let v: serde_json::Value = read_json(&dir.join("config.json"))?;
    Ok(v["model_type"].as_str().unwrap_or_default().to_string())
}

/// Whether `model_type` is a VLM this module serves.
pub fn is_vlm(model_type: &str) -> bool {
    matches!(
        model_type,
        "qwen2_vl" | "qwen2_5_vl" | "llava" | "idefics3" | "smolvlm"
    )
}

impl Vlm {
    /// A decoded image -> the model's input (on the caller's thread).
    pub fn preprocess(&self, img: &DynamicImage) -> Result<VlmImage> {
        Ok(match &self.prep {
            Prep::Qwen2Vl(p) => {
                let image = p.patches(img)?;
                VlmImage {
                    input: image_input(&image).collect(),
                    tokens: image.tokens(p.merge),
                    layout: None,
                }
            }
            Prep::Llava { clip, tokens } => VlmImage {
                input: clip.patches(img),
                tokens: *tokens,
                layout: None,
            },
            Prep::Idefics3 { tiles, seq, patch } => {
                let t = tiles.tiles(img);
                VlmImage {
                    input: tiles.patch_rows(&t, *patch),
                    tokens: t.count * seq,
                    layout: Some(Idefics3Preprocess::prompt(t.rows, t.cols, *seq)),
                }
            }
        })
    }

    /// The chat prompt of one image and one instruction, the assistant's turn opened.
    pub fn chat_prompt(&self, instruction: &str) -> Result<String> {
        let messages = json!([{
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": instruction}],
        }]);
        self.template.render_value(&messages, true)
    }

    /// Token ids of the prompt with its image token expanded to the image's
    /// tokens, and the position of the first.
    pub fn prompt_ids(&self, instruction: &str, image: &VlmImage) -> Result<(Vec<u32>, usize)> {
        let mut text = self.chat_prompt(instruction)?;
        if let Some(layout) = &image.layout {
            let token = self
                .tokenizer
                .id_to_token(self.image_token)
                .unwrap_or_default();
            if text.matches(&token).count() != 1 {
                return Err(ModelError::Unsupported(format!(
                    "the chat template of `{}` gave no single {token} for one image",
                    self.id
                )));
            }
            text = text.replacen(&token, layout, 1);
            let enc = self
                .tokenizer
                .encode(text, false)
                .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
            let ids = enc.get_ids().to_vec();
            let start = ids.iter().position(|&t| t == self.image_token).unwrap_or(0);
            return Ok((ids, start));
        }
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids();
        let at: Vec<usize> = (0..ids.len())
            .filter(|&i| ids[i] == self.image_token)
            .collect();
        let [start] = at[..] else {
            return Err(ModelError::Unsupported(format!(
                "the chat template of `{}` gave {} image tokens for one image",
                self.id,
                at.len()
            )));
        };
        let n = image.tokens;
        let mut out = Vec::with_capacity(ids.len() + n);
        out.extend_from_slice(&ids[..start]);
        out.extend(std::iter::repeat_n(self.image_token, n));
        out.extend_from_slice(&ids[start + 1..]);
        Ok((out, start))
    }

    /// The model's reply to each (image, instruction); one row's failure is
    /// that row's error only.
    pub async fn ask(
        &self,
        requests: Vec<(VlmImage, String)>,
        params: GenParams,
    ) -> Result<Vec<Result<Completion>>> {
        let mut prompts = Vec::with_capacity(requests.len());
        let mut contexts = Vec::with_capacity(requests.len());
        for (image, instruction) in &requests {
            let (ids, start) = self.prompt_ids(instruction, image)?;
            prompts.push(ids);
            let ctx = image_context(start, image.input.iter().copied());
            contexts.push(Some(ctx.into()));
        }
        self.generator
            .generate_with(prompts, contexts, None, params)
            .await
    }
}

/// A VLM's configuration, by family.
#[derive(Clone)]
enum Config {
    Qwen2Vl(Qwen2VlConfig),
    Llava(LlavaConfig),
    Idefics3(Idefics3Config),
}

/// Loads the VLM in `dir` with `slots` concurrent sequences.
pub fn load_vlm(dir: &Path, id: &str, slots: usize, device: Device) -> Result<Vlm> {
    let path = dir.join("config.json");
    let json: serde_json::Value = read_json(&path)?;
    let (cfg, prep, text, image_token) = match json["model_type"].as_str().unwrap_or_default() {
        "llava" => {
            let c = LlavaConfig::from_json(&json, &path)?;
            let prep = Prep::Llava {
                clip: ClipPreprocess::load(dir, &c.vision)?,
                tokens: c.image_tokens(),
            };
            let (text, token) = (c.text.clone(), c.image_token_id);
            (Config::Llava(c), prep, text, token)
        }
        "idefics3" | "smolvlm" => {
            let c = Idefics3Config::from_json(&json, &path)?;
            let prep = Prep::Idefics3 {
                tiles: Idefics3Preprocess::load(dir, &c.vision)?,
                seq: c.image_seq_len(),
                patch: c.vision.patch_size,
            };
            let (text, token) = (c.text.clone(), c.image_token_id);
            (Config::Idefics3(c), prep, text, token)
        }
        _ => {
            let c = Qwen2VlConfig::from_json(&json, &path)?;
            let prep = Prep::Qwen2Vl(Qwen2VlPreprocess::load(dir, &c.vision)?);
            let (text, token) = (c.text.clone(), c.image_token_id);
            (Config::Qwen2Vl(c), prep, text, token)
        }
    };
    let tokenizer = crate::tokenize::load_plain(&dir.join("tokenizer.json"))?;
    let source = hf_template(dir).ok_or_else(|| {
        ModelError::bad_file(
            &dir.join("chat_template.jinja"),
            "missing (nor chat_template.json, nor a chat_template in tokenizer_config.json): \
             a VLM's prompts go through its chat template",
        )
    })?;
    let eos = hf_eos(dir, &text);
    let template = ChatTemplate::new(
        &source,
        &token_str(&tokenizer, text.bos_token_id),
        &token_str(&tokenizer, eos.first().copied()),
    )?;
    let detok_tok = tokenizer.clone();
    let detok: Detokenize =
        Arc::new(move |ids: &[u32]| detok_tok.decode(ids, true).unwrap_or_default());
    let (d, c, slots) = (dir.to_path_buf(), cfg.clone(), slots.max(1));
    let generator = Generator::spawn(
        "vlm",
        device,
        move || {
            let w = Weights::open(&d)?;
            on_device!(device, |be| {
                let m: Box<dyn Decoder> = match &c {
                    Config::Qwen2Vl(c) => {
                        Box::new(qwen2_vl::load_decoder(be, c, &w, slots, CONTEXT)?)
                    }
                    Config::Llava(c) => Box::new(llava::load_decoder(be, c, &w, slots, CONTEXT)?),
                    Config::Idefics3(c) => {
                        Box::new(idefics3::load_decoder(be, c, &w, slots, CONTEXT)?)
                    }
                };
                Ok(m)
            })
        },
        eos,
        detok,
    )?;
    Ok(Vlm {
        id: id.to_string(),
        prep,
        tokenizer,
        template,
        image_token,
        generator,
    })
}

/// The process-wide VLM `id` on `device` (loaded on first use).
pub fn vlm(id: &str, slots: usize, device: Device) -> Result<Arc<Vlm>> {
    static REG: OnceLock<Registry<Vlm>> = OnceLock::new();
    cached(&REG, id, device, |dir| load_vlm(dir, id, slots, device))
}
