//! `Qwen2VLImageProcessor` (its Pillow backend): `smart_resize` to sides
//! that are multiples of patch · merge with a pixel count between
//! `min_pixels` and `max_pixels`, Pillow-exact bicubic resize, rescale and
//! normalise; then the still image repeated over the temporal patch and cut
//! into patch rows `(channel, time, y, x)`, ordered by 2×2 merge window.
//! Ports `models/qwen2_vl/image_processing_qwen2_vl.py`.
//!
//! Both processor layouts load: the Hub's `preprocessor_config.json` (with
//! `min_pixels`/`max_pixels`) and transformers 5's `processor_config.json`
//! (a nested `image_processor` whose `size` is `{shortest_edge,
//! longest_edge}` in pixels).

use std::path::Path;

use image::DynamicImage;
use serde::Deserialize;
use serde_json::Value;

use super::config::VisionConfig;
use crate::clip::ClipPreprocess;
use crate::error::{ModelError, Result};
use crate::image::preprocess::{ProcessorConfig, Size, processor_json, to_rgb};

/// The fields of either layout that decide pixels (HF names).
#[derive(Debug, Default, Deserialize)]
struct ProcessorJson {
    min_pixels: Option<usize>,
    max_pixels: Option<usize>,
    size: Option<Value>,
    patch_size: Option<usize>,
    temporal_patch_size: Option<usize>,
    merge_size: Option<usize>,
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
    do_resize: Option<bool>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    resample: Option<u32>,
}

/// One image as the vision tower takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePatches {
    /// `[t·h·w, channels·temporal·patch²]`, row-major.
    pub rows: Vec<f32>,
    /// `(t, h, w)` in patches (`image_grid_thw`).
    pub grid: (usize, usize, usize),
}

impl ImagePatches {
    /// Image tokens in the prompt: patches over the merge window.
    pub fn tokens(&self, merge: usize) -> usize {
        let (t, h, w) = self.grid;
        t * h * w / (merge * merge)
    }
}

#[derive(Debug, Clone)]
pub struct Qwen2VlPreprocess {
    cfg: ProcessorConfig,
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub patch: usize,
    pub temporal: usize,
    pub merge: usize,
}

/// `smart_resize`: the (height, width) an image of `height`×`width` is
/// resized to; an aspect ratio above 200 is refused.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if h.max(w) / h.min(w).max(1.0) > 200.0 {
        return Err(ModelError::Unsupported(format!(
            "a {width}x{height} image: the aspect ratio must be below 200"
        )));
    }
    // Python's round() rounds halves to even.
    let mut hb = ((h / f).round_ties_even() * f) as usize;
    let mut wb = ((w / f).round_ties_even() * f) as usize;
    if hb * wb > max_pixels {
        let beta = (h * w / max_pixels as f64).sqrt();
        hb = factor.max(((h / beta / f).floor() * f) as usize);
        wb = factor.max(((w / beta / f).floor() * f) as usize);
    } else if hb * wb < min_pixels {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        hb = ((h * beta / f).ceil() * f) as usize;
        wb = ((w * beta / f).ceil() * f) as usize;
    }
    Ok((hb, wb))
}

impl Qwen2VlPreprocess {
    /// Reads `dir/preprocessor_config.json`, else `dir/processor_config.json`
    /// (its `image_processor`); fields they leave out take the processor's defaults.
    pub fn load(dir: &Path, vision: &VisionConfig) -> Result<Qwen2VlPreprocess> {
        let Some((path, json)) = processor_json(dir)? else {
            return Err(ModelError::bad_file(
                &dir.join("preprocessor_config.json"),
                "missing (nor is there a processor_config.json): the image processor's \
                 min_pixels, max_pixels and statistics are needed",
            ));
        };
        let p: ProcessorJson =
            serde_json::from_value(json).map_err(|e| ModelError::bad_file(&path, e))?;
        let size_field = |names: [&str; 2]| {
            p.size.as_ref().and_then(|s| {
                names
                    .iter()
                    .find_map(|n| s.get(*n).and_then(Value::as_u64))
                    .map(|x| x as usize)
            })
        };
        let min_pixels = p
            .min_pixels
            .or_else(|| size_field(["shortest_edge", "min_pixels"]))
            .unwrap_or(56 * 56);
        let max_pixels = p
            .max_pixels
            .or_else(|| size_field(["longest_edge", "max_pixels"]))
            .unwrap_or(28 * 28 * 1280);
        let openai = ClipPreprocess::openai_defaults(vision.patch_size);
        let cfg = ProcessorConfig {
            size: Size::Square(0),
            crop_size: None,
            do_resize: p.do_resize.unwrap_or(true),
            do_center_crop: false,
            do_rescale: p.do_rescale.unwrap_or(true),
            rescale_factor: p.rescale_factor.unwrap_or(1.0 / 255.0),
            do_normalize: p.do_normalize.unwrap_or(true),
            image_mean: p.image_mean.unwrap_or(openai.image_mean),
            image_std: p.image_std.unwrap_or(openai.image_std),
            resample: p.resample.unwrap_or(3),
        };
        let prep = Qwen2VlPreprocess {
            cfg,
            min_pixels,
            max_pixels,
            patch: p.patch_size.unwrap_or(vision.patch_size),
            temporal: p.temporal_patch_size.unwrap_or(vision.temporal_patch_size),
            merge: p.merge_size.unwrap_or(vision.spatial_merge_size),
        };
        if (prep.patch, prep.temporal, prep.merge)
            != (
                vision.patch_size,
                vision.temporal_patch_size,
                vision.spatial_merge_size,
            )
        {
            return Err(ModelError::bad_file(
                &path,
                format!(
                    "patch_size {}, temporal_patch_size {}, merge_size {} differ from the \
                     model's vision_config ({}, {}, {})",
                    prep.patch,
                    prep.temporal,
                    prep.merge,
                    vision.patch_size,
                    vision.temporal_patch_size,
                    vision.spatial_merge_size
                ),
            ));
        }
        Ok(prep)
    }

    /// A decoded image -> its patch rows and grid.
    pub fn patches(&self, img: &DynamicImage) -> Result<ImagePatches> {
        let rgb = to_rgb(img);
        let factor = self.patch * self.merge;
        let (h, w) = if self.cfg.do_resize {
            smart_resize(
                rgb.height,
                rgb.width,
                factor,
                self.min_pixels,
                self.max_pixels,
            )?
        } else {
            (rgb.height, rgb.width)
        };
        let cfg = ProcessorConfig {
            size: Size::Exact {
                height: h,
                width: w,
            },
            ..self.cfg.clone()
        };
        let (px, h, w) = cfg.pixel_values(&rgb);
        let (p, m, t) = (self.patch, self.merge, self.temporal);
        if h % factor != 0 || w % factor != 0 {
            return Err(ModelError::Unsupported(format!(
                "a {w}x{h} input: sides must be multiples of {factor} (do_resize is off)"
            )));
        }
        let (gh, gw) = (h / p, w / p);
        let mut rows = Vec::with_capacity(gh * gw * 3 * t * p * p);
        for bi in 0..gh / m {
            for bj in 0..gw / m {
                for mi in 0..m {
                    for mj in 0..m {
                        let (y0, x0) = ((bi * m + mi) * p, (bj * m + mj) * p);
                        for c in 0..3 {
                            let plane = &px[c * h * w..(c + 1) * h * w];
                            for _ in 0..t {
                                for y in y0..y0 + p {
                                    rows.extend_from_slice(&plane[y * w + x0..y * w + x0 + p]);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(ImagePatches {
            rows,
            grid: (1, gh, gw),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_matches_the_processor() {
        // Within bounds: the nearest multiples of 28 (halves to even).
        assert_eq!(
            smart_resize(100, 150, 28, 3136, 1003520).unwrap(),
            (112, 140)
        );
        assert_eq!(smart_resize(42, 70, 28, 0, 1 << 30).unwrap(), (56, 56));
        // Too many pixels: scaled down, floored.
        assert_eq!(
            smart_resize(1000, 1000, 28, 3136, 200704).unwrap(),
            (448, 448)
        );
        // Too few: scaled up, ceiled.
        assert_eq!(smart_resize(20, 30, 28, 3136, 1003520).unwrap(), (56, 84));
        assert!(smart_resize(1, 300, 28, 3136, 1003520).is_err());
    }
}
