//! Header probing and bounded decoding.
//!
//! Decompression bombs (a few kilobytes declaring 100000 x 100000 pixels) are
//! refused from the header, before any pixel buffer is allocated. Truncated
//! JPEGs are refused too: the `image` crate's JPEG decoder fills missing scans
//! with grey, where Pillow (and so every reference pipeline) raises.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use lakecap_kernels::image::{Filter, resize_block_means, resize_u8};
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Bounds applied to every decode; set per session from `lakecap.max_pixels`
/// and `lakecap.max_image_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeLimits {
    /// Largest width x height accepted.
    pub max_pixels: u64,
    /// Largest encoded size accepted.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // 89.5 Mpx is Pillow's own decompression-bomb threshold; 64 MiB covers
        // any photo a web lake holds.
        Self {
            max_pixels: 89_478_485,
            max_bytes: 64 << 20,
        }
    }
}

/// Why an image could not be read. `Display` gives the short reason shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("empty input")]
    Empty,
    #[error("{len} bytes exceed lakecap.max_image_bytes = {max}")]
    TooManyBytes { len: u64, max: u64 },
    #[error("not an image (unrecognised format)")]
    NotAnImage,
    #[error("{width}x{height} exceeds lakecap.max_pixels = {max}")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("zero-sized image ({width}x{height})")]
    ZeroSized { width: u32, height: u32 },
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("corrupt {format}: {reason}")]
    Corrupt {
        format: &'static str,
        reason: String,
    },
    #[error("unsupported {format}: {reason}")]
    Unsupported {
        format: &'static str,
        reason: String,
    },
}

impl ImageError {
    /// Short category for counting warnings.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageError::Empty => "empty",
            ImageError::TooManyBytes { .. } => "too many bytes",
            ImageError::NotAnImage => "not an image",
            ImageError::TooManyPixels { .. } => "too many pixels",
            ImageError::ZeroSized { .. } => "zero-sized",
            ImageError::Truncated(_) => "truncated",
            ImageError::Corrupt { .. } => "corrupt",
            ImageError::Unsupported { .. } => "unsupported",
        }
    }
}

/// What the header says, without decoding pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// Lower-case format name (`jpeg`, `png`, `gif`, `webp`, `bmp`, `tiff`).
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    /// Channels of the stored colour type (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
    pub channels: u8,
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
        _ => "image",
    }
}

fn classify(format: &'static str, e: image::ImageError) -> ImageError {
    use image::ImageError as E;
    // One line: decoder messages may end in newlines.
    let reason = e
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match e {
        E::Unsupported(_) => ImageError::Unsupported { format, reason },
        E::Limits(_) => ImageError::Unsupported { format, reason },
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Truncated(format)
        }
        _ if reason.contains("end of file")
            || reason.contains("EOF")
            || reason.contains("unexpected end") =>
        {
            ImageError::Truncated(format)
        }
        _ => ImageError::Corrupt { format, reason },
    }
}

/// Opens a decoder after the cheap checks: size, format, declared dimensions.
fn open(
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<(Box<dyn ImageDecoder + '_>, ImageInfo), ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let len = bytes.len() as u64;
    if len > limits.max_bytes {
        return Err(ImageError::TooManyBytes {
            len,
            max: limits.max_bytes,
        });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| ImageError::NotAnImage)?;
    let fmt = reader.format().ok_or(ImageError::NotAnImage)?;
    let format = format_name(fmt);
    if format == "image" {
        // Formats we do not compile in (e.g. ICO, PNM) are "not an image" to us.
        return Err(ImageError::NotAnImage);
    }
    let mut lim = image::Limits::default();
    // The crate's own allocation cap guards what the header cannot (e.g. huge
    // metadata chunks); pixels are bounded explicitly below.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(16).max(1 << 26));
    let mut reader = reader;
    reader.limits(lim);
    let decoder = reader.into_decoder().map_err(|e| classify(format, e))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSized { width, height });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ImageError::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    let channels = decoder.color_type().channel_count();
    Ok((
        Box::new(decoder),
        ImageInfo {
            format,
            width,
            height,
            channels,
        },
    ))
}

/// Reads format, dimensions and channels from the header only.
pub fn probe(bytes: &[u8], limits: DecodeLimits) -> Result<ImageInfo, ImageError> {
    open(bytes, limits).map(|(_, info)| info)
}

/// Fully decodes the first frame.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<DynamicImage, ImageError> {
    let (decoder, info) = open(bytes, limits)?;
    if info.format == "jpeg" && !jpeg_has_eoi(bytes) {
        return Err(ImageError::Truncated("jpeg"));
    }
    DynamicImage::from_decoder(decoder).map_err(|e| classify(info.format, e))
}

/// A grayscale plane to hash: an image of `width x height` pixels whose
/// plane pixels are each the mean of a `block x block` square of them (1: the
/// pixels themselves; 8: a JPEG read at 1/8 scale), `ceil(width / block) x
/// ceil(height / block)` of them, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LumaPlane {
    pub px: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub block: usize,
}

impl LumaPlane {
    /// The plane of [`to_luma`]'s pixels.
    pub fn pixels((px, width, height): (Vec<u8>, usize, usize)) -> Self {
        LumaPlane {
            px,
            width,
            height,
            block: 1,
        }
    }

    /// The image resized to `w x h` with Pillow's Lanczos filter: exactly
    /// Pillow's resize for pixels, else as if each block were flat
    /// ([`resize_block_means`]).
    pub fn thumbnail(&self, w: usize, h: usize) -> Vec<u8> {
        match self.block {
            1 => resize_u8(&self.px, self.width, self.height, 1, w, h, Filter::Lanczos),
            b => resize_block_means(&self.px, self.width, self.height, b, w, h),
        }
    }
}

/// Short side, in pixels at 1/8 scale, from which [`decode_luma_fast`] reads a
/// JPEG's DC coefficients alone: 32 is the side phash resizes to.
const MIN_EIGHTH_SIDE: usize = 32;

/// An 8-bit grayscale plane for the hashes' 'fast' mode, cheaper than
/// [`decode`] + [`to_luma`] for JPEGs:
/// - a JPEG at least 256 pixels on its short side is read at 1/8 scale from
///   its DC coefficients only (one pixel per 8x8 block, exactly libjpeg's
///   scaled decode; see `jpeg_dc`), so the plane is smaller than the image;
/// - a smaller JPEG is decoded straight to its Y channel: the chroma channels
///   are entropy-decoded but never transformed, upsampled or colour-converted.
///
/// Both are ITU-R 601 luma as Pillow's `convert("L")` computes it from the RGB
/// pixels, but not rounded the same. Other formats take [`to_luma`]'s path.
/// Errors are [`decode`]'s.
pub fn decode_luma_fast(bytes: &[u8], limits: DecodeLimits) -> Result<LumaPlane, ImageError> {
    let full = |bytes| decode(bytes, limits).map(|img| LumaPlane::pixels(to_luma(&img)));
    if probe(bytes, limits)?.format != "jpeg" {
        return full(bytes);
    }
    if let Some((px, width, height)) = super::jpeg_dc::luma_eighth(bytes, MIN_EIGHTH_SIDE) {
        return Ok(LumaPlane {
            px,
            width,
            height,
            block: 8,
        });
    }
    if !jpeg_has_eoi(bytes) {
        return Err(ImageError::Truncated("jpeg"));
    }
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut d = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    // Whatever the fast path cannot take, the full decode takes or names.
    match (d.decode(), d.dimensions()) {
        (Ok(px), Some((w, h))) if px.len() == w * h => Ok(LumaPlane::pixels((px, w, h))),
        _ => full(bytes),
    }
}

/// Pillow's `convert("L")`: ITU-R 601-2 luma in 16-bit fixed point.
fn luma601(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// True when an end-of-image marker follows the last start-of-scan. Entropy-coded
/// data stuffs every 0xFF with 0x00, so 0xFFD9 there is always a real marker;
/// looking after the last SOS skips EOIs of embedded EXIF thumbnails.
fn jpeg_has_eoi(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(pos) => bytes[pos..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Grayscale exactly as Pillow's `Image.convert("L")`: ITU-R 601-2 luma with
/// Pillow's 16-bit fixed-point weights; alpha is ignored, not composited.
/// 16-bit images keep their high byte (as Pillow does for 16-bit RGB PNGs; for
/// 16-bit grey Pillow clamps to 255, which we deliberately do not copy).
pub fn to_luma(img: &DynamicImage) -> (Vec<u8>, usize, usize) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let px = match img {
        DynamicImage::ImageLuma8(b) => b.as_raw().clone(),
        DynamicImage::ImageLumaA8(b) => b.as_raw().chunks_exact(2).map(|p| p[0]).collect(),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        DynamicImage::ImageLumaA16(b) => b
            .as_raw()
            .chunks_exact(2)
            .map(|p| (p[0] >> 8) as u8)
            .collect(),
        DynamicImage::ImageRgb8(b) => b
            .as_raw()
            .chunks_exact(3)
            .map(|p| luma601(p[0], p[1], p[2]))
            .collect(),
        DynamicImage::ImageRgba8(b) => b
            .as_raw()
            .chunks_exact(4)
            .map(|p| luma601(p[0], p[1], p[2]))
            .collect(),
        DynamicImage::ImageRgb16(b) => b
            .as_raw()
            .chunks_exact(3)
            .map(|p| luma601((p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8))
            .collect(),
        DynamicImage::ImageRgba16(b) => b
            .as_raw()
            .chunks_exact(4)
            .map(|p| luma601((p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8))
            .collect(),
        other => other
            .to_rgb8()
            .as_raw()
            .chunks_exact(3)
            .map(|p| luma601(p[0], p[1], p[2]))
            .collect(),
    };
    (px, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::new_rgb8(w, h);
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn probe_reads_header() {
        let info = probe(&png(7, 5), DecodeLimits::default()).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                format: "png",
                width: 7,
                height: 5,
                channels: 3
            }
        );
    }

    #[test]
    fn refuses_bomb_from_header_without_decoding() {
        // A 67-byte PNG whose valid header (correct CRC) declares 100000 x 100000.
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/bad/bomb_100000x100000.png"
        ))
        .unwrap();
        let err = probe(&bytes, DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooManyPixels {
                    width: 100_000,
                    height: 100_000,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// The fast luma plane. A JPEG of 256 px or more: one pixel per 8x8
    /// block, close to the block's mean of Pillow's `convert("L")` (the DC
    /// reader's exactness against libjpeg is `jpeg_dc`'s test). A smaller
    /// JPEG: its Y channel, within a level of `convert("L")` almost everywhere
    /// (0.2%). Other formats: exactly `to_luma`'s. Bad input fails as `decode`.
    #[test]
    fn fast_luma_matches_convert_l() {
        let lim = DecodeLimits::default();
        let read = |dir: &str, name: &str| {
            std::fs::read(format!("{}/../{dir}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        };
        for name in ["rocket.jpg", "retina.jpg", "hubble_deep_field.jpg"] {
            let bytes = read("data/photos", name);
            let (px, w, h) = to_luma(&decode(&bytes, lim).unwrap());
            let fast = decode_luma_fast(&bytes, lim).unwrap();
            assert_eq!((fast.width, fast.height, fast.block), (w, h, 8), "{name}");
            assert_eq!(fast.px.len(), w.div_ceil(8) * h.div_ceil(8), "{name}");
            // Whole blocks only: the encoder pads edge blocks with its own pixels.
            let off: Vec<f64> = (0..(h / 8) * (w / 8))
                .map(|i| {
                    let (by, bx) = (i / (w / 8), i % (w / 8));
                    let sum: u32 = (0..64)
                        .map(|j| u32::from(px[(by * 8 + j / 8) * w + bx * 8 + j % 8]))
                        .sum();
                    (f64::from(sum) / 64.0 - f64::from(fast.px[by * w.div_ceil(8) + bx])).abs()
                })
                .collect();
            let mean = off.iter().sum::<f64>() / off.len() as f64;
            let far = off.iter().filter(|&&d| d > 3.0).count();
            assert!(
                mean < 1.0 && far * 100 <= off.len(),
                "{name}: mean {mean}, {far} blocks off by > 3"
            );
        }
        for (dir, name) in [
            ("tests/fixtures/hash", "gradient_rgb.jpg"),
            ("tests/fixtures/hash/dc", "b420.jpg"),
            ("data/photos", "coffee.png"),
        ] {
            let bytes = read(dir, name);
            let exact = to_luma(&decode(&bytes, lim).unwrap());
            let fast = decode_luma_fast(&bytes, lim).unwrap();
            assert_eq!(
                (fast.width, fast.height, fast.block),
                (exact.1, exact.2, 1),
                "{name}"
            );
            let far = fast
                .px
                .iter()
                .zip(&exact.0)
                .filter(|(a, b)| a.abs_diff(**b) > 1)
                .count();
            assert!(
                far * 500 <= fast.px.len(),
                "{name}: {far} of {} pixels off by more than 1",
                fast.px.len()
            );
            if name.ends_with(".png") {
                assert_eq!(fast.px, exact.0, "{name}");
            }
        }
        // CMYK takes the full path, and bad input fails with decode's errors.
        let cmyk = read("tests/data/bad", "cmyk.jpg");
        assert_eq!(
            decode_luma_fast(&cmyk, lim).map(|l| l.px),
            decode(&cmyk, lim).map(|i| to_luma(&i).0)
        );
        for bad in [
            "truncated.jpg",
            "jpeg_magic_then_noise.jpg",
            "zero_bytes.jpg",
            "not_an_image.html",
            "bomb_100000x100000.png",
        ] {
            let bytes = read("tests/data/bad", bad);
            assert_eq!(
                decode_luma_fast(&bytes, lim).unwrap_err(),
                decode(&bytes, lim).unwrap_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn typed_errors_for_junk() {
        let lim = DecodeLimits::default();
        assert_eq!(decode(b"", lim).unwrap_err(), ImageError::Empty);
        assert_eq!(
            decode(b"<html>not an image</html>", lim).unwrap_err(),
            ImageError::NotAnImage
        );
        let small = DecodeLimits {
            max_pixels: 10,
            max_bytes: 1 << 20,
        };
        assert!(matches!(
            decode(&png(4, 4), small).unwrap_err(),
            ImageError::TooManyPixels { .. }
        ));
        let tiny = DecodeLimits {
            max_pixels: 1 << 20,
            max_bytes: 10,
        };
        assert!(matches!(
            decode(&png(4, 4), tiny).unwrap_err(),
            ImageError::TooManyBytes { .. }
        ));
    }

    #[test]
    fn truncated_png_and_jpeg_are_refused() {
        let lim = DecodeLimits::default();
        let mut rgb = image::RgbImage::new(64, 64);
        for (x, y, p) in rgb.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 4) as u8]);
        }
        for fmt in [ImageFormat::Png, ImageFormat::Jpeg] {
            let mut full = Vec::new();
            DynamicImage::ImageRgb8(rgb.clone())
                .write_to(&mut Cursor::new(&mut full), fmt)
                .unwrap();
            assert!(decode(&full, lim).is_ok());
            let cut = &full[..full.len() * 2 / 3];
            let err = decode(cut, lim).unwrap_err();
            assert!(
                matches!(err, ImageError::Truncated(_) | ImageError::Corrupt { .. }),
                "{fmt:?}: {err}"
            );
        }
    }

    #[test]
    fn luma_uses_pillow_weights() {
        let img = DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(3, 1, vec![255, 0, 0, 0, 255, 0, 10, 20, 30]).unwrap(),
        );
        // Pillow: Image.new('RGB',(1,1),(255,0,0)).convert('L') -> 76; (0,255,0) -> 150; (10,20,30) -> 18
        assert_eq!(to_luma(&img).0, vec![76, 150, 18]);
    }
}
