//! `Idefics3ImageProcessor` (its Pillow backend, SmolVLM's processor): the
//! longest edge resized to `size` (even sides), then to multiples of the
//! tile size `max_image_size`, cut into tiles row by row, and the whole
//! image resized to one more tile (the global image); Lanczos throughout,
//! Pillow-exact, then rescale and normalise. The prompt's image becomes
//! `<fake_token_around_image><row_r_col_c>` and the tile's tokens per tile,
//! a line break per row, then the global image's. Ports
//! `models/idefics3/image_processing_pil_idefics3.py` and
//! `processing_idefics3.py` (`replace_image_token`).

use std::path::Path;

use image::DynamicImage;
use lakecap_kernels::image::{Filter, resize_u8};
use serde::Deserialize;
use serde_json::Value;

use crate::clip::ClipVisionConfig;
use crate::error::{ModelError, Result};
use crate::image::preprocess::{Rgb, processor_json, to_rgb};

/// The fields of the processor config that decide pixels (HF names).
#[derive(Debug, Deserialize)]
struct ProcessorJson {
    size: Option<Value>,
    max_image_size: Option<Value>,
    do_resize: Option<bool>,
    do_image_splitting: Option<bool>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<[f64; 3]>,
    image_std: Option<[f64; 3]>,
    resample: Option<u32>,
}

/// One image as tiles: CHW pixels per tile (the tiles row by row, then the
/// global image), and the tile grid (`0 × 0`: the global image alone).
#[derive(Debug, Clone)]
pub struct Tiles {
    pub pixels: Vec<f32>,
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
}

#[derive(Debug, Clone)]
pub struct Idefics3Preprocess {
    longest_edge: Option<usize>,
    /// The tile side (the vision tower's input).
    pub tile: usize,
    split: bool,
    scale: f64,
    mean: [f64; 3],
    std: [f64; 3],
    filter: Filter,
}

fn edge(v: &Option<Value>) -> Option<usize> {
    v.as_ref()?
        .get("longest_edge")
        .and_then(Value::as_u64)
        .map(|x| x as usize)
}

impl Idefics3Preprocess {
    /// Reads the processor config (either layout).
    pub fn load(dir: &Path, vision: &ClipVisionConfig) -> Result<Idefics3Preprocess> {
        let Some((path, json)) = processor_json(dir)? else {
            return Err(ModelError::bad_file(
                &dir.join("preprocessor_config.json"),
                "missing (nor is there a processor_config.json): the tile size is needed",
            ));
        };
        let p: ProcessorJson =
            serde_json::from_value(json).map_err(|e| ModelError::bad_file(&path, e))?;
        let tile = edge(&p.max_image_size).unwrap_or(vision.image_size);
        if tile != vision.image_size {
            return Err(ModelError::bad_file(
                &path,
                format!(
                    "max_image_size {tile} differs from the vision tower's image_size {}",
                    vision.image_size
                ),
            ));
        }
        let (norm, rescale) = (p.do_normalize.unwrap_or(true), p.do_rescale.unwrap_or(true));
        Ok(Idefics3Preprocess {
            longest_edge: if p.do_resize.unwrap_or(true) {
                Some(edge(&p.size).unwrap_or(4 * tile))
            } else {
                None
            },
            tile,
            split: p.do_image_splitting.unwrap_or(true),
            scale: if rescale {
                p.rescale_factor.unwrap_or(1.0 / 255.0)
            } else {
                1.0
            },
            mean: if norm {
                p.image_mean.unwrap_or([0.5; 3])
            } else {
                [0.0; 3]
            },
            std: if norm {
                p.image_std.unwrap_or([0.5; 3])
            } else {
                [1.0; 3]
            },
            filter: match p.resample.unwrap_or(1) {
                2 => Filter::Bilinear,
                3 => Filter::Bicubic,
                4 => Filter::Box,
                _ => Filter::Lanczos,
            },
        })
    }

    fn resize(&self, img: &Rgb, h: usize, w: usize) -> Rgb {
        Rgb {
            px: resize_u8(&img.px, img.width, img.height, 3, w, h, self.filter),
            width: w,
            height: h,
        }
    }

    /// A decoded image -> its tiles.
    pub fn tiles(&self, img: &DynamicImage) -> Tiles {
        let mut img = to_rgb(img);
        if let Some(max) = self.longest_edge {
            let (h, w) = longest_edge_size(img.height, img.width, max);
            img = self.resize(&img, h, w);
        }
        let t = self.tile;
        let (frames, rows, cols) = if self.split {
            let (h, w) = tile_multiple_size(img.height, img.width, t);
            img = self.resize(&img, h, w);
            if h > t || w > t {
                let (rows, cols) = (h / t, w / t);
                let mut frames: Vec<Rgb> = (0..rows * cols)
                    .map(|k| crop(&img, (k / cols) * t, (k % cols) * t, t))
                    .collect();
                frames.push(self.resize(&img, t, t));
                (frames, rows, cols)
            } else {
                (vec![img], 0, 0)
            }
        } else {
            (vec![self.resize(&img, t, t)], 0, 0)
        };
        let mut pixels = Vec::with_capacity(frames.len() * 3 * t * t);
        for f in &frames {
            for c in 0..3 {
                pixels.extend(
                    f.px.iter()
                        .skip(c)
                        .step_by(3)
                        .map(|&v| ((v as f64 * self.scale - self.mean[c]) / self.std[c]) as f32),
                );
            }
        }
        Tiles {
            pixels,
            count: frames.len(),
            rows,
            cols,
        }
    }

    /// The tower's input: per tile its `patch`-wide patch rows, each
    /// `(channel, y, x)` as the patch convolution reads them.
    pub fn patch_rows(&self, tiles: &Tiles, patch: usize) -> Vec<f32> {
        let (t, side) = (self.tile, self.tile / patch);
        let mut out = Vec::with_capacity(tiles.pixels.len());
        for tile in tiles.pixels.chunks_exact(3 * t * t) {
            for py in 0..side {
                for px in 0..side {
                    for c in 0..3 {
                        for y in 0..patch {
                            let at = c * t * t + (py * patch + y) * t + px * patch;
                            out.extend_from_slice(&tile[at..at + patch]);
                        }
                    }
                }
            }
        }
        out
    }

    /// The prompt text of an image of `rows × cols` tiles, `seq` tokens each.
    pub fn prompt(rows: usize, cols: usize, seq: usize) -> String {
        let image = "<image>".repeat(seq);
        let global =
            format!("<fake_token_around_image><global-img>{image}<fake_token_around_image>");
        if rows == 0 && cols == 0 {
            return global;
        }
        let mut s = String::new();
        for r in 0..rows {
            for c in 0..cols {
                s += &format!(
                    "<fake_token_around_image><row_{}_col_{}>{image}",
                    r + 1,
                    c + 1
                );
            }
            s.push('\n');
        }
        s + "\n" + &global
    }
}

/// `_resize_output_size_rescale_to_max_len` then the 4096 bound.
fn longest_edge_size(height: usize, width: usize, max: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut h, mut w) = if width >= height {
        let h = (max as f64 / aspect) as usize;
        (h + h % 2, max)
    } else {
        let w = (max as f64 * aspect) as usize;
        (max, w + w % 2)
    };
    // `_resize_output_size_scale_below_upper_bound` with 4096.
    let aspect = w as f64 / h as f64;
    if w >= h && w > 4096 {
        (w, h) = (4096, (4096.0 / aspect) as usize);
    } else if h > w && h > 4096 {
        (h, w) = (4096, (4096.0 * aspect) as usize);
    }
    (h.max(1), w.max(1))
}

/// `resize_for_vision_encoder`: both sides up to multiples of the tile.
fn tile_multiple_size(height: usize, width: usize, tile: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let up = |x: f64| ((x / tile as f64).ceil() as usize) * tile;
    if width >= height {
        let w = up(width as f64);
        (up((w as f64 / aspect) as usize as f64), w)
    } else {
        let h = up(height as f64);
        (h, up((h as f64 * aspect) as usize as f64))
    }
}

fn crop(img: &Rgb, y0: usize, x0: usize, side: usize) -> Rgb {
    let mut px = Vec::with_capacity(side * side * 3);
    for y in y0..y0 + side {
        let row = (y * img.width + x0) * 3;
        px.extend_from_slice(&img.px[row..row + side * 3]);
    }
    Rgb {
        px,
        width: side,
        height: side,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_processor() {
        // 512x384 (w x h) to a 128 longest edge: 128 x 96; tiles of 64: 128 x 128.
        assert_eq!(longest_edge_size(384, 512, 128), (96, 128));
        assert_eq!(tile_multiple_size(96, 128, 64), (128, 128));
        // Odd sides become even.
        assert_eq!(longest_edge_size(300, 512, 128), (76, 128));
        assert_eq!(
            Idefics3Preprocess::prompt(1, 2, 1),
            "<fake_token_around_image><row_1_col_1><image><fake_token_around_image><row_1_col_2><image>\n\n\
             <fake_token_around_image><global-img><image><fake_token_around_image>"
        );
    }
}
