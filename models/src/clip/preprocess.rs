//! `CLIPImageProcessor`: shortest-side bicubic resize (Pillow-exact), center
//! crop, rescale, normalise; then ViT patches for the vision tower.

use std::path::Path;

use image::DynamicImage;

use super::config::ClipVisionConfig;
use crate::error::Result;
use lakecap_kernels::image::PixelPlan;

use crate::image::preprocess::{ProcessorConfig, Size, to_rgb};

#[derive(Debug, Clone)]
pub struct ClipPreprocess {
    pub cfg: ProcessorConfig,
    pub plan: PixelPlan,
}

impl ClipPreprocess {
    /// Reads `dir/preprocessor_config.json`, or uses the OpenAI CLIP defaults
    /// for the model's image size when the file is absent.
    pub fn load(dir: &Path, vision: &ClipVisionConfig) -> Result<ClipPreprocess> {
        let cfg = ProcessorConfig::load_checked(
            dir,
            Self::openai_defaults(vision.image_size),
            vision.image_size,
            // For CLIP a bare integer size means the shortest edge (default_to_square=False).
            |cfg| {
                if let Size::Square(s) = cfg.size {
                    cfg.size = Size::ShortestEdge { shortest_edge: s };
                }
            },
        )?;
        Ok(ClipPreprocess {
            plan: cfg.plan(vision.image_size, vision.patch_size),
            cfg,
        })
    }

    pub fn openai_defaults(image_size: usize) -> ProcessorConfig {
        ProcessorConfig {
            size: Size::ShortestEdge {
                shortest_edge: image_size,
            },
            crop_size: Some(Size::Square(image_size)),
            do_resize: true,
            do_center_crop: true,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            image_std: [0.268_629_54, 0.261_302_6, 0.275_777_1],
            resample: 3,
        }
    }

    /// One decoded image -> its `[num_patches, 3·p·p]` patch rows.
    pub fn patches(&self, img: &DynamicImage) -> Vec<f32> {
        self.plan.patches(&self.cfg.image(&to_rgb(img)))
    }
}
