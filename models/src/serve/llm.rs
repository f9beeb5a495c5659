//! LLM services: a Llama-family model (HF safetensors or GGUF) with its
//! tokenizer and chat template behind a continuous-batching [`Generator`],
//! loaded once per process per (model, device) and shared by every query.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokenizers::Tokenizer;

use super::read_json;
use crate::chat::{ChatTemplate, Message};
use crate::decode::{Decoder, GenParams};
use crate::error::{ModelError, Result};
use crate::generate::{Completion, Detokenize, Generator};
use crate::gguf::{self, Gguf};
use crate::hub;
use crate::llama::{GgufWeights, Llama, LlamaConfig, LlamaDecoder, config_from_gguf};
use crate::runtime::{Device, Registry, cached, on_device};
use crate::weights::Weights;

/// Most positions a sequence may use (prompt and output): captions are short,
/// and this bounds KV-cache memory per slot.
pub const CONTEXT: usize = 2048;

pub struct Llm {
    pub id: String,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    /// Prepended to every prompt (GGUF `tokenizer.ggml.add_bos_token`).
    bos: Option<u32>,
    pub generator: Generator,
}

impl Llm {
    /// The prompt text of a conversation: the model's chat template with the
    /// assistant's turn opened, else the turns' texts joined by blank lines.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<String> {
        match &self.template {
            Some(t) => t.render(messages, true),
            None => Ok(messages
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n\n")),
        }
    }

    /// Token ids of prompts (special tokens in the text are recognised).
    pub fn encode(&self, prompts: &[String]) -> Result<Vec<Vec<u32>>> {
        let enc = self
            .tokenizer
            .encode_batch(prompts.to_vec(), false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc
            .into_iter()
            .map(|e| {
                let ids = e.get_ids();
                match self.bos {
                    Some(b) if ids.first() != Some(&b) => {
                        std::iter::once(b).chain(ids.iter().copied()).collect()
                    }
                    _ => ids.to_vec(),
                }
            })
            .collect())
    }

    /// Completions of prompt texts; a row's error is that row's only.
    pub async fn complete(
        &self,
        prompts: &[String],
        params: GenParams,
    ) -> Result<Vec<Result<Completion>>> {
        let ids = self.encode(prompts)?;
        self.generator.generate(ids, params).await
    }
}

pub(crate) fn token_str(tok: &Tokenizer, id: Option<u32>) -> String {
    id.and_then(|i| tok.id_to_token(i)).unwrap_or_default()
}

/// The chat template of an HF directory: `chat_template.jinja` (transformers
/// 5), `chat_template.json` (the Hub's processors) or
/// `tokenizer_config.json`'s `chat_template`.
pub(crate) fn hf_template(dir: &Path) -> Option<String> {
    if let Ok(s) = std::fs::read_to_string(dir.join("chat_template.jinja")) {
        return Some(s);
    }
    ["chat_template.json", "tokenizer_config.json"]
        .iter()
        .find_map(|f| {
            let v: serde_json::Value = read_json(&dir.join(f)).ok()?;
            v["chat_template"].as_str().map(str::to_string)
        })
}

/// The EOS ids: `generation_config.json` first (chat models list their
/// end-of-turn token there), then the config.
pub(crate) fn hf_eos(dir: &Path, cfg: &LlamaConfig) -> Vec<u32> {
    let from_gen = read_json::<serde_json::Value>(&dir.join("generation_config.json"))
        .ok()
        .and_then(|v| {
            serde_json::from_value::<crate::llama::config::OneOrMany>(v["eos_token_id"].clone())
                .ok()
        });
    from_gen
        .or_else(|| cfg.eos_token_id.clone())
        .map(|e| e.to_vec())
        .unwrap_or_default()
}

/// Loads the model at `path` (an HF directory, a `.gguf` file or a directory
/// holding one) with `slots` concurrent sequences on `device`.
pub fn load_llm(path: &Path, id: &str, slots: usize, device: Device) -> Result<Llm> {
    let slots = slots.max(1);
    let (tokenizer, template, bos, eos, source) = if path.join("config.json").is_file() {
        let cfg: LlamaConfig =
            serde_json::from_value(read_json::<serde_json::Value>(&path.join("config.json"))?)
                .map_err(|e| ModelError::bad_file(&path.join("config.json"), e))?;
        if !matches!(cfg.model_type.as_str(), "llama" | "qwen2" | "mistral") {
            return Err(ModelError::Unsupported(format!(
                "`{id}` is a `{}` model; text generation needs a Llama-family model (llama, mistral, qwen2)",
                cfg.model_type
            )));
        }
        let tpath = path.join("tokenizer.json");
        let tok = crate::tokenize::load_plain(&tpath)?;
        let eos = hf_eos(path, &cfg);
        (
            tok,
            hf_template(path),
            None,
            eos,
            Source::Hf(path.to_path_buf(), cfg),
        )
    } else {
        let file = hub::gguf_file(path)
            .ok_or_else(|| ModelError::bad_file(path, "no config.json and no .gguf file"))?;
        let g = Gguf::open(&file)?;
        let cfg = config_from_gguf(&g)?;
        let beside = file.with_file_name("tokenizer.json");
        let tok = if beside.is_file() {
            crate::tokenize::load_plain(&beside)?
        } else {
            gguf::tokenizer::from_gguf(&g)?
        };
        let add_bos = g.get("tokenizer.ggml.add_bos_token") == Some(&gguf::Value::Bool(true));
        let bos = cfg.bos_token_id.filter(|_| add_bos);
        let eos = cfg
            .eos_token_id
            .as_ref()
            .map(|e| e.to_vec())
            .unwrap_or_default();
        let template = g.str("tokenizer.chat_template").map(str::to_string);
        (tok, template, bos, eos, Source::Gguf(g, cfg))
    };
    let template = template
        .map(|t| {
            ChatTemplate::new(
                &t,
                &token_str(&tokenizer, source.cfg().bos_token_id),
                &token_str(&tokenizer, eos.first().copied()),
            )
        })
        .transpose()?;
    let detok_tok = tokenizer.clone();
    let detok: Detokenize =
        Arc::new(move |ids: &[u32]| detok_tok.decode(ids, true).unwrap_or_default());
    let generator = Generator::spawn(
        "llm",
        device,
        move || {
            on_device!(device, |be| {
                let model = match source {
                    Source::Hf(dir, cfg) => Llama::load(&be, &cfg, &Weights::open(&dir)?)?,
                    Source::Gguf(g, cfg) => Llama::load(&be, &cfg, &GgufWeights::new(g, &cfg))?,
                };
                let d: Box<dyn Decoder> = Box::new(LlamaDecoder::new(be, model, slots, CONTEXT)?);
                Ok(d)
            })
        },
        eos,
        detok,
    )?;
    Ok(Llm {
        id: id.to_string(),
        tokenizer,
        template,
        bos,
        generator,
    })
}

enum Source {
    Hf(std::path::PathBuf, LlamaConfig),
    Gguf(Gguf, LlamaConfig),
}

impl Source {
    fn cfg(&self) -> &LlamaConfig {
        match self {
            Source::Hf(_, c) | Source::Gguf(_, c) => c,
        }
    }
}

/// The process-wide LLM `id` on `device` (loaded on first use with `slots`
/// concurrent sequences).
pub fn llm(id: &str, slots: usize, device: Device) -> Result<Arc<Llm>> {
    static REG: OnceLock<Registry<Llm>> = OnceLock::new();
    cached(&REG, id, device, |dir| load_llm(dir, id, slots, device))
}
