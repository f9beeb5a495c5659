//! `BlipImageProcessor`: bicubic resize straight to the square input size
//! (no crop; Pillow-exact, as its PIL backend), rescale, normalise with the
//! OpenAI CLIP statistics; then ViT patches for the vision tower.

use std::path::Path;

use image::DynamicImage;

use super::config::BlipVisionConfig;
use crate::clip::ClipPreprocess;
use crate::error::Result;
use lakecap_kernels::image::PixelPlan;

use crate::image::preprocess::{ProcessorConfig, Size, to_rgb};

#[derive(Debug, Clone)]
pub struct BlipPreprocess {
    pub cfg: ProcessorConfig,
    pub plan: PixelPlan,
}

impl BlipPreprocess {
    /// Reads `dir/preprocessor_config.json`, or uses BLIP's defaults.
    pub fn load(dir: &Path, vision: &BlipVisionConfig) -> Result<BlipPreprocess> {
        let default = ProcessorConfig {
            size: Size::Exact {
                height: vision.image_size,
                width: vision.image_size,
            },
            crop_size: None,
            do_center_crop: false,
            ..ClipPreprocess::openai_defaults(vision.image_size)
        };
        // BLIP's processor resizes to a square whatever the aspect ratio.
        let cfg = ProcessorConfig::load_checked(dir, default, vision.image_size, |_| {})?;
        Ok(BlipPreprocess {
            plan: cfg.plan(vision.image_size, vision.patch_size),
            cfg,
        })
    }

    /// Normalised CHW pixels (what `pixel_values` holds).
    pub fn pixels(&self, img: &DynamicImage) -> Vec<f32> {
        self.cfg.pixel_values(&to_rgb(img)).0
    }

    /// One decoded image -> its `[num_patches, 3·p·p]` patch rows.
    pub fn patches(&self, img: &DynamicImage) -> Vec<f32> {
        self.plan.patches(&self.cfg.image(&to_rgb(img)))
    }
}
