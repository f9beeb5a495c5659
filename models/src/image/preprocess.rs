//! The pieces of Hugging Face image processors shared by every vision model:
//! processor configs in their JSON form, RGB conversion, Pillow-exact resize,
//! center crop, rescale + normalise to CHW, and the [`PixelPlan`] that makes
//! ViT patch rows (on the host, or on a GPU through the backend).

use image::DynamicImage;
use lakecap_kernels::image::{Filter, PixelPlan, RgbImage, resize_u8};
use serde::Deserialize;

/// A size as processors write it: `224`, `{"shortest_edge": 224}` or `{"height": 384, "width": 384}`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Size {
    Square(usize),
    ShortestEdge { shortest_edge: usize },
    Exact { height: usize, width: usize },
}

/// The fields of `preprocessor_config.json` that decide pixels.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessorConfig {
    pub size: Size,
    #[serde(default)]
    pub crop_size: Option<Size>,
    #[serde(default = "yes")]
    pub do_resize: bool,
    #[serde(default)]
    pub do_center_crop: bool,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "rescale")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// PIL resample id: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box.
    #[serde(default = "bicubic")]
    pub resample: u32,
}

fn yes() -> bool {
    true
}
fn rescale() -> f64 {
    1.0 / 255.0
}
fn bicubic() -> u32 {
    3
}

impl ProcessorConfig {
    /// `dir/preprocessor_config.json`, else `default`; checks that it yields
    /// `size`×`size` inputs (what the vision tower expects).
    pub fn load_checked(
        dir: &std::path::Path,
        default: ProcessorConfig,
        size: usize,
        fix: impl FnOnce(&mut ProcessorConfig),
    ) -> crate::error::Result<ProcessorConfig> {
        use crate::error::ModelError;
        let (path, mut cfg) = match processor_json(dir)? {
            Some((path, json)) => {
                let cfg =
                    serde_json::from_value(json).map_err(|e| ModelError::bad_file(&path, e))?;
                (path, cfg)
            }
            None => (dir.join("preprocessor_config.json"), default),
        };
        fix(&mut cfg);
        // Any input shape must end at the tower's size.
        let (h, w) = cfg.output_size(size * 2, size * 3);
        if (h, w) != (size, size) {
            return Err(ModelError::bad_file(
                &path,
                format!("gives {h}x{w} inputs but the vision tower expects {size}x{size}"),
            ));
        }
        Ok(cfg)
    }
}

/// The image processor's settings of a model directory, in either layout:
/// the Hub's `preprocessor_config.json`, or transformers 5's
/// `processor_config.json` with a nested `image_processor`; `None` when
/// there is neither. The path names the file in errors.
pub fn processor_json(
    dir: &std::path::Path,
) -> crate::error::Result<Option<(std::path::PathBuf, serde_json::Value)>> {
    use crate::error::ModelError;
    let read = |path: &std::path::Path| -> crate::error::Result<serde_json::Value> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::bad_file(path, e))?;
        serde_json::from_str(&text).map_err(|e| ModelError::bad_file(path, e))
    };
    let hub = dir.join("preprocessor_config.json");
    if hub.is_file() {
        return Ok(Some((hub.clone(), read(&hub)?)));
    }
    let v5 = dir.join("processor_config.json");
    if !v5.is_file() {
        return Ok(None);
    }
    match read(&v5)?.get("image_processor") {
        Some(inner) => Ok(Some((v5, inner.clone()))),
        None => Err(ModelError::bad_file(
            &v5,
            "no `image_processor` in the processor config",
        )),
    }
}

/// Interleaved 8-bit RGB pixels.
#[derive(Debug, Clone)]
pub struct Rgb {
    pub px: Vec<u8>,
    pub width: usize,
    pub height: usize,
}

/// `Image.convert("RGB")`: alpha dropped (not composited), grey replicated.
pub fn to_rgb(img: &DynamicImage) -> Rgb {
    let px = match img {
        DynamicImage::ImageRgb8(b) => b.as_raw().clone(),
        other => other.to_rgb8().into_raw(),
    };
    Rgb {
        px,
        width: img.width() as usize,
        height: img.height() as usize,
    }
}

impl ProcessorConfig {
    pub fn filter(&self) -> Filter {
        match self.resample {
            1 => Filter::Lanczos,
            2 => Filter::Bilinear,
            4 => Filter::Box,
            _ => Filter::Bicubic,
        }
    }

    /// Output (height, width) of the resize step, as transformers computes it.
    pub fn resize_to(&self, height: usize, width: usize) -> (usize, usize) {
        match self.size {
            Size::Square(s) => (s, s),
            Size::Exact { height, width } => (height, width),
            Size::ShortestEdge { shortest_edge: s } => {
                // get_resize_output_image_size(default_to_square=False): int() truncates.
                let (short, long) = (width.min(height), width.max(height));
                let new_long = (s as f64 * long as f64 / short as f64) as usize;
                if width <= height {
                    (new_long, s)
                } else {
                    (s, new_long)
                }
            }
        }
    }

    /// (height, width) the model sees.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        match (self.do_center_crop, self.crop_size) {
            (true, Some(Size::Square(s))) => (s, s),
            (true, Some(Size::Exact { height, width })) => (height, width),
            _ if self.do_resize => self.resize_to(height, width),
            _ => (height, width),
        }
    }

    /// The steps after decoding as one plan for `size`×`size` model inputs
    /// of `patch`-wide ViT patches (run on the host or on a GPU).
    pub fn plan(&self, size: usize, patch: usize) -> PixelPlan {
        let (mean, std) = if self.do_normalize {
            (
                self.image_mean.map(f64::from),
                self.image_std.map(f64::from),
            )
        } else {
            ([0.0; 3], [1.0; 3])
        };
        PixelPlan {
            filter: self.filter(),
            crop: (size, size),
            scale: if self.do_rescale {
                self.rescale_factor
            } else {
                1.0
            },
            mean,
            std,
            patch,
        }
    }

    /// `rgb` with the size this processor resizes it to.
    pub fn image<'a>(&self, rgb: &'a Rgb) -> RgbImage<'a> {
        let resize = if self.do_resize {
            let (h, w) = self.resize_to(rgb.height, rgb.width);
            (h.max(1), w.max(1))
        } else {
            (rgb.height, rgb.width)
        };
        RgbImage {
            px: &rgb.px,
            width: rgb.width,
            height: rgb.height,
            resize,
        }
    }

    /// Resize and crop in u8 (what Pillow produces before the float steps).
    pub fn resize_crop(&self, rgb: &Rgb) -> Rgb {
        let mut img = rgb.clone();
        if self.do_resize {
            let (h, w) = self.resize_to(img.height, img.width);
            let (h, w) = (h.max(1), w.max(1));
            img = Rgb {
                px: resize_u8(&img.px, img.width, img.height, 3, w, h, self.filter()),
                width: w,
                height: h,
            };
        }
        if self.do_center_crop {
            let (ch, cw) = self.output_size(img.height, img.width);
            img = center_crop(&img, ch, cw);
        }
        img
    }

    /// Full pipeline to normalised CHW f32.
    pub fn pixel_values(&self, rgb: &Rgb) -> (Vec<f32>, usize, usize) {
        let img = self.resize_crop(rgb);
        let (w, h) = (img.width, img.height);
        let mut out = vec![0f32; 3 * h * w];
        let scale = if self.do_rescale {
            self.rescale_factor
        } else {
            1.0
        };
        for c in 0..3 {
            let (m, s) = if self.do_normalize {
                (self.image_mean[c] as f64, self.image_std[c] as f64)
            } else {
                (0.0, 1.0)
            };
            for i in 0..h * w {
                out[c * h * w + i] = ((img.px[i * 3 + c] as f64 * scale - m) / s) as f32;
            }
        }
        (out, h, w)
    }
}

/// transformers' `center_crop`: offsets `(orig - crop) // 2`; an image smaller
/// than the crop is zero-padded around its center first.
pub fn center_crop(img: &Rgb, ch: usize, cw: usize) -> Rgb {
    let mut px = vec![0u8; ch * cw * 3];
    // Signed offsets of the crop window in source coordinates.
    let top = (img.height as isize - ch as isize).div_euclid(2);
    let left = (img.width as isize - cw as isize).div_euclid(2);
    for y in 0..ch {
        let sy = y as isize + top;
        if sy < 0 || sy >= img.height as isize {
            continue;
        }
        for x in 0..cw {
            let sx = x as isize + left;
            if sx < 0 || sx >= img.width as isize {
                continue;
            }
            let s = (sy as usize * img.width + sx as usize) * 3;
            px[(y * cw + x) * 3..][..3].copy_from_slice(&img.px[s..s + 3]);
        }
    }
    Rgb {
        px,
        width: cw,
        height: ch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's patch rows hold exactly the CHW pixels of the step-by-step
    /// path (resize, crop, normalise), patch by patch.
    #[test]
    fn plan_patches_are_the_pixel_values_in_patch_order() {
        let px: Vec<u8> = (0..97 * 61 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let rgb = Rgb {
            px,
            width: 97,
            height: 61,
        };
        let clip = crate::clip::ClipPreprocess::openai_defaults(32);
        let exact = ProcessorConfig {
            size: Size::Exact {
                height: 32,
                width: 32,
            },
            do_center_crop: false,
            do_normalize: false,
            resample: 2,
            ..clip.clone()
        };
        for cfg in [clip, exact] {
            let (chw, h, w) = cfg.pixel_values(&rgb);
            assert_eq!((h, w), (32, 32));
            let p = 8;
            let rows = cfg.plan(32, p).patches(&cfg.image(&rgb));
            assert_eq!(rows.len(), 3 * 32 * 32);
            for (i, v) in rows.iter().enumerate() {
                let (patch, r) = (i / (3 * p * p), i % (3 * p * p));
                let (c, ky, kx) = (r / (p * p), r / p % p, r % p);
                let (y, x) = (patch / 4 * p + ky, patch % 4 * p + kx);
                assert_eq!(*v, chw[c * h * w + y * w + x], "element {i}");
            }
        }
    }
}
