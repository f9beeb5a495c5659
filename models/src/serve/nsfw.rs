//! The open_nsfw scorer: the traced graph on a [`Scheduler`] worker, shared
//! by every query of the process (loaded once per (directory, device)).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use image::DynamicImage;

use lakecap_kernels::Backend;

use crate::error::Result;
use crate::open_nsfw::graph::Program;
use crate::open_nsfw::{load_program, model::ConvNet, preprocess};
use crate::runtime::{Device, Registry, Scheduler, cached, on_device};

/// The model id `nsfw_score` uses by default (fetched by scripts/fetch-models.sh).
pub const DEFAULT_NSFW_MODEL: &str = "yahoo/open_nsfw";

pub struct NsfwScorer {
    pub id: String,
    /// Preprocessed images (`[224, 224, 3]` BGR each) -> P(NSFW).
    pub scheduler: Scheduler<Vec<f32>, f32>,
}

impl NsfwScorer {
    /// The package's pipeline, on the caller's thread (off the worker).
    pub fn preprocess(&self, img: &DynamicImage) -> Result<Vec<f32>> {
        preprocess::preprocess(img)
    }

    /// Preprocessed images -> P(NSFW) each.
    pub async fn score(&self, inputs: Vec<Vec<f32>>) -> Result<Vec<f32>> {
        self.scheduler.submit(inputs).await
    }
}

pub fn load_nsfw_scorer(
    dir: &Path,
    id: &str,
    batch_size: usize,
    device: Device,
) -> Result<NsfwScorer> {
    let prog = load_program(dir)?;
    let scheduler = Scheduler::spawn_with("open-nsfw", batch_size, move || {
        on_device!(device, |be| run(be, &prog))
    })?;
    Ok(NsfwScorer {
        id: id.to_string(),
        scheduler,
    })
}

/// A batch of preprocessed images to P(NSFW) each, as the worker runs it.
type ScoreFn = Box<dyn FnMut(Vec<Vec<f32>>) -> Result<Vec<f32>>>;

/// The traced graph on `be`, as the scheduler's batch function.
fn run<B: Backend>(be: B, prog: &Program) -> Result<ScoreFn> {
    let net = ConvNet::load(&be, prog)?;
    Ok(Box::new(move |batch: Vec<Vec<f32>>| {
        let probs = net.forward(&be, &batch.concat())?;
        // Column 1 is P(NSFW), column 0 P(SFW).
        Ok(probs.iter().map(|p| p[1]).collect())
    }))
}

/// The process-wide scorer for `id` on `device` (loaded on first use).
pub fn nsfw_scorer(id: &str, batch_size: usize, device: Device) -> Result<Arc<NsfwScorer>> {
    static REG: OnceLock<Registry<NsfwScorer>> = OnceLock::new();
    cached(&REG, id, device, |dir| {
        load_nsfw_scorer(dir, id, batch_size, device)
    })
}
