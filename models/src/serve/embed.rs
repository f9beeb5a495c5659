//! Embedding services: a loaded model behind a [`Scheduler`], shared by every
//! query of the process (the runtime's registry loads it once per
//! (directory, device)).
//!
//! - [`ImageEmbedder`]: a CLIP vision tower and its preprocessing.
//! - [`TextEmbedder`]: a CLIP text tower or a BERT sentence encoder.
//!
//! Embeddings are unit-length, so a dot product is the cosine similarity.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use image::DynamicImage;
use lakecap_kernels::{Backend, HostData};

use super::read_json;
use crate::bert::{Bert, BertConfig};
use crate::clip::{ClipConfig, ClipPreprocess, ClipText, ClipVision};
use crate::error::{ModelError, Result};
use crate::hub;
use crate::image::preprocess::{Rgb, to_rgb};
use crate::runtime::{Device, Registry, Scheduler, cached, on_device};
use crate::tokenize::TextTokenizer;
use crate::weights::Weights;

pub struct ImageEmbedder {
    pub id: String,
    pub dim: usize,
    prep: Arc<ClipPreprocess>,
    /// The GPU resizes and normalises (inputs stay RGB until the batch).
    on_device: bool,
    pub scheduler: Scheduler<ImageInput, Vec<f32>>,
}

/// A decoded image as the embedder takes it: patch rows made on the caller's
/// thread (on the CPU, so preprocessing spreads over the query's threads), or
/// RGB pixels that a GPU resizes and normalises with the batch.
#[derive(Debug, Clone)]
pub enum ImageInput {
    Patches(Vec<f32>),
    Pixels(Rgb),
}

impl ImageEmbedder {
    /// Decoded image -> model input (runs on the caller's thread, off the worker).
    pub fn preprocess(&self, img: &DynamicImage) -> ImageInput {
        let rgb = to_rgb(img);
        if self.on_device {
            ImageInput::Pixels(rgb)
        } else {
            ImageInput::Patches(self.prep.plan.patches(&self.prep.cfg.image(&rgb)))
        }
    }

    /// Preprocessed images -> unit-length embeddings.
    pub async fn embed(&self, inputs: Vec<ImageInput>) -> Result<Vec<Vec<f32>>> {
        self.scheduler.submit(inputs).await
    }
}

pub struct TextEmbedder {
    pub id: String,
    pub dim: usize,
    tokenizer: TextTokenizer,
    pub scheduler: Scheduler<Vec<u32>, Vec<f32>>,
}

impl TextEmbedder {
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        self.tokenizer.encode(texts)
    }

    /// Token rows -> unit-length embeddings.
    pub async fn embed(&self, ids: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>> {
        self.scheduler.submit(ids).await
    }
}

fn model_type(dir: &Path) -> Result<String> {
    let v: serde_json::Value = read_json(&dir.join("config.json"))?;
    Ok(v["model_type"].as_str().unwrap_or_default().to_string())
}

/// Rows of a `[b, d]` tensor, L2-normalised on the device.
fn rows<B: Backend>(be: &B, t: B::Tensor, normalize: bool) -> Result<Vec<Vec<f32>>> {
    let t = if normalize { be.l2_normalize(&t)? } else { t };
    let d = *be.shape(&t).last().unwrap_or(&1);
    Ok(be
        .download(&t)?
        .chunks(d.max(1))
        .map(<[f32]>::to_vec)
        .collect())
}

/// The token limit of a sentence-transformers model, else the position table.
fn st_max_len(dir: &Path, max_pos: usize) -> usize {
    read_json::<serde_json::Value>(&dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|v| v["max_seq_length"].as_u64())
        .map_or(max_pos, |m| (m as usize).min(max_pos))
}

/// The embedding width of model `id` (from its config alone): the projection
/// width for CLIP, the hidden width for BERT. `image`: for image embeddings,
/// which only CLIP provides.
pub fn embedding_dim(id: &str, image: bool) -> Result<usize> {
    let dir = hub::resolve(id)?;
    match model_type(&dir)?.as_str() {
        "clip" => Ok(read_json::<ClipConfig>(&dir.join("config.json"))?.projection_dim),
        "bert" if !image => Ok(read_json::<BertConfig>(&dir.join("config.json"))?.hidden_size),
        other => Err(ModelError::Unsupported(format!(
            "`{id}` is a `{other}` model; {} need {}",
            if image {
                "image embeddings"
            } else {
                "text embeddings"
            },
            if image {
                "a CLIP checkpoint"
            } else {
                "CLIP or BERT"
            }
        ))),
    }
}

/// A model as the scheduler runs it: a batch of inputs to unit vectors.
type BatchFn<I> = Box<dyn FnMut(Vec<I>) -> Result<Vec<Vec<f32>>>>;

/// The vision tower on `be`, as a batch function for the scheduler.
fn image_run<B: Backend>(
    be: B,
    cfg: &ClipConfig,
    w: &Weights,
    prep: Arc<ClipPreprocess>,
) -> Result<BatchFn<ImageInput>> {
    let model = ClipVision::load(&be, cfg, w)?;
    let (np, cpp) = (
        model.cfg.num_patches(),
        model.cfg.num_channels * model.cfg.patch_size.pow(2),
    );
    Ok(Box::new(move |batch: Vec<ImageInput>| {
        let per = crate::nn::items_per_pass(&be, np + 1, model.cfg.intermediate_size);
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(per) {
            let (mut flat, mut images) = (Vec::new(), Vec::new());
            for x in chunk {
                match x {
                    ImageInput::Patches(p) => flat.extend_from_slice(p),
                    ImageInput::Pixels(rgb) => images.push(prep.cfg.image(rgb)),
                }
            }
            let x = if images.is_empty() {
                be.upload(&[chunk.len(), np, cpp], HostData::F32(&flat))?
            } else if flat.is_empty() {
                be.pixel_patches(&images, &prep.plan)?
            } else {
                return Err(ModelError::Worker(
                    "a batch mixes pixels and patches".into(),
                ));
            };
            out.extend(rows(&be, model.forward_patches(&be, x)?, true)?);
        }
        Ok(out)
    }))
}

pub fn load_image_embedder(
    dir: &Path,
    id: &str,
    batch_size: usize,
    device: Device,
) -> Result<ImageEmbedder> {
    let kind = model_type(dir)?;
    if kind != "clip" {
        return Err(ModelError::Unsupported(format!(
            "`{id}` is a `{kind}` model; image embeddings need a CLIP checkpoint"
        )));
    }
    let cfg: ClipConfig = read_json(&dir.join("config.json"))?;
    let prep = Arc::new(ClipPreprocess::load(dir, &cfg.vision_config)?);
    let (d, c, p) = (dir.to_path_buf(), cfg.clone(), Arc::clone(&prep));
    let scheduler = Scheduler::spawn_with("clip-vision", batch_size, move || {
        let w = Weights::open(&d)?;
        on_device!(device, |be| image_run(be, &c, &w, p))
    })?;
    Ok(ImageEmbedder {
        id: id.to_string(),
        dim: cfg.projection_dim,
        prep,
        on_device: !matches!(device, Device::Cpu(_)),
        scheduler,
    })
}

/// The text tower (CLIP) or sentence encoder (BERT) on `be`, as a batch function.
fn text_run<B: Backend>(be: B, dir: &Path, kind: &str) -> Result<BatchFn<Vec<u32>>> {
    let w = Weights::open(dir)?;
    Ok(match kind {
        "clip" => {
            let cfg: ClipConfig = read_json(&dir.join("config.json"))?;
            let model = ClipText::load(&be, &cfg, &w)?;
            Box::new(move |ids: Vec<Vec<u32>>| rows(&be, model.forward(&be, &ids)?, true))
        }
        _ => {
            let cfg: BertConfig = read_json(&dir.join("config.json"))?;
            let model = Bert::load(&be, &cfg, &w)?;
            // Unit length whether or not the checkpoint ends in a Normalize
            // module: cosine() and semantic dedup assume it.
            Box::new(move |ids: Vec<Vec<u32>>| rows(&be, model.embed(&be, &ids, false)?, true))
        }
    })
}

pub fn load_text_embedder(
    dir: &Path,
    id: &str,
    batch_size: usize,
    device: Device,
) -> Result<TextEmbedder> {
    let kind = model_type(dir)?;
    let (tokenizer, dim) = match kind.as_str() {
        "clip" => {
            let cfg: ClipConfig = read_json(&dir.join("config.json"))?;
            (
                TextTokenizer::load(dir, cfg.text_config.max_position_embeddings)?,
                cfg.projection_dim,
            )
        }
        "bert" => {
            let cfg: BertConfig = read_json(&dir.join("config.json"))?;
            (
                TextTokenizer::load(dir, st_max_len(dir, cfg.max_position_embeddings))?,
                cfg.hidden_size,
            )
        }
        other => {
            return Err(ModelError::Unsupported(format!(
                "`{id}` is a `{other}` model; text embeddings need CLIP or BERT"
            )));
        }
    };
    let d = dir.to_path_buf();
    let scheduler = Scheduler::spawn_with(&format!("{kind}-text"), batch_size, move || {
        on_device!(device, |be| text_run(be, &d, &kind))
    })?;
    Ok(TextEmbedder {
        id: id.to_string(),
        dim,
        tokenizer,
        scheduler,
    })
}

/// The process-wide image embedder for `id` on `device` (loaded on first use).
pub fn image_embedder(id: &str, batch_size: usize, device: Device) -> Result<Arc<ImageEmbedder>> {
    static REG: OnceLock<Registry<ImageEmbedder>> = OnceLock::new();
    cached(&REG, id, device, |dir| {
        load_image_embedder(dir, id, batch_size, device)
    })
}

/// The process-wide text embedder for `id` on `device` (loaded on first use).
pub fn text_embedder(id: &str, batch_size: usize, device: Device) -> Result<Arc<TextEmbedder>> {
    static REG: OnceLock<Registry<TextEmbedder>> = OnceLock::new();
    cached(&REG, id, device, |dir| {
        load_text_embedder(dir, id, batch_size, device)
    })
}
