//! JPEG previews.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ExtendedColorType};
use lakecap_kernels::image::{Filter, resize_u8};

use super::ImageError;

/// Downscales to fit `max_side` (never upscales), flattens alpha onto white and
/// encodes a baseline JPEG at quality 85. Grey images stay single-channel.
pub fn thumbnail_jpeg(img: &DynamicImage, max_side: u32) -> Result<Vec<u8>, ImageError> {
    let (w, h) = (img.width(), img.height());
    let max_side = max_side.max(1);
    let scale = (f64::from(max_side) / f64::from(w.max(h))).min(1.0);
    let tw = ((f64::from(w) * scale).round() as u32).max(1);
    let th = ((f64::from(h) * scale).round() as u32).max(1);
    let grey = !img.color().has_color();
    let (px, channels, color) = if grey {
        (super::to_luma(img).0, 1, ExtendedColorType::L8)
    } else {
        let rgba = img.to_rgba8();
        let flat = rgba
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| {
                let a = u32::from(p[3]);
                let over = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
                [over(p[0]), over(p[1]), over(p[2])]
            })
            .collect();
        (flat, 3, ExtendedColorType::Rgb8)
    };
    let small = resize_u8(
        &px,
        w as usize,
        h as usize,
        channels,
        tw as usize,
        th as usize,
        Filter::Lanczos,
    );
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut Cursor::new(&mut out), 85)
        .encode(&small, tw, th, color)
        .map_err(|e| ImageError::Unsupported {
            format: "jpeg",
            reason: e.to_string(),
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{DecodeLimits, decode};

    #[test]
    fn fits_inside_max_side_and_keeps_aspect() {
        let img = DynamicImage::new_rgba8(400, 100);
        let jpg = thumbnail_jpeg(&img, 64).unwrap();
        let back = decode(&jpg, DecodeLimits::default()).unwrap();
        assert_eq!((back.width(), back.height()), (64, 16));
        // Transparent black flattened onto white.
        assert!(
            back.to_rgb8()
                .pixels()
                .all(|p| p.0.iter().all(|&c| c > 245))
        );
    }

    #[test]
    fn never_upscales() {
        let img = DynamicImage::new_luma8(10, 20);
        let back = decode(&thumbnail_jpeg(&img, 512).unwrap(), DecodeLimits::default()).unwrap();
        assert_eq!((back.width(), back.height()), (10, 20));
        assert!(!back.color().has_color());
    }
}
