//! Image payloads for the sample lake: embedded real photos, generated scenes,
//! and the defects real lakes carry (each checked against the decoder, so the
//! recorded proportions are exact).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use lakecap_models::image::{DecodeLimits, decode};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

/// A real photo from `data/photos` (public domain / CC0, see its MANIFEST.tsv).
pub struct Photo {
    pub file: &'static str,
    pub bytes: &'static [u8],
    pub reference_caption: &'static str,
    pub web_alt_text: &'static str,
}

macro_rules! photo_bytes {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/photos/", $name)) as &[u8])),*]
    };
}

const PHOTO_BYTES: &[(&str, &[u8])] = photo_bytes!(
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "camera.png",
    "coins.png",
    "hubble_deep_field.jpg",
    "brick.png",
    "retina.jpg",
    "clock_motion.png",
    "horse.png",
    "text.png",
    "page.png",
    "moon.png",
);
const MANIFEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/photos/MANIFEST.tsv"
));

/// The photos with their captions, in MANIFEST order.
pub fn photos() -> Vec<Photo> {
    MANIFEST
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&'static str> = line.split('\t').collect();
            let &(file, bytes) = PHOTO_BYTES.iter().find(|(f, _)| *f == cols[0])?;
            Some(Photo {
                file,
                bytes,
                reference_caption: cols[3],
                web_alt_text: cols[4],
            })
        })
        .collect()
}

const COLORS: &[(&str, [u8; 3])] = &[
    ("red", [200, 30, 30]),
    ("green", [40, 160, 60]),
    ("blue", [30, 60, 200]),
    ("yellow", [230, 210, 40]),
    ("orange", [240, 140, 20]),
    ("purple", [130, 50, 160]),
    ("white", [245, 245, 245]),
    ("black", [15, 15, 15]),
    ("gray", [128, 128, 128]),
];
const SIZES: &[(u32, u32)] = &[
    (320, 240),
    (256, 256),
    (400, 300),
    (512, 384),
    (240, 320),
    (480, 270),
];

fn pick_color(rng: &mut ChaCha8Rng, not: &str) -> (&'static str, [u8; 3]) {
    loop {
        let c = *COLORS.choose(rng).expect("colors");
        if c.0 != not {
            return c;
        }
    }
}

/// A generated scene (shapes on a gradient) and a caption that describes it.
pub fn scene(rng: &mut ChaCha8Rng) -> (RgbImage, String) {
    let (w, h) = *SIZES.choose(rng).expect("sizes");
    let bg = pick_color(rng, "");
    let bg2 = pick_color(rng, bg.0);
    let mut img = RgbImage::from_fn(w, h, |_, y| {
        let t = y as f32 / h as f32;
        Rgb(std::array::from_fn(|i| {
            (bg.1[i] as f32 * (1.0 - t * 0.5) + bg2.1[i] as f32 * t * 0.5) as u8
        }))
    });
    let n = rng.random_range(1..=2);
    let mut parts = Vec::new();
    for _ in 0..n {
        let (name, color) = pick_color(rng, bg.0);
        let shape = *["circle", "square", "triangle", "stripe"]
            .choose(rng)
            .expect("shapes");
        let (cx, cy) = (
            rng.random_range(w / 5..w * 4 / 5) as i64,
            rng.random_range(h / 5..h * 4 / 5) as i64,
        );
        let r = rng.random_range(h / 8..h / 3) as i64;
        for (x, y, p) in img.enumerate_pixels_mut() {
            let (dx, dy) = (x as i64 - cx, y as i64 - cy);
            let inside = match shape {
                "circle" => dx * dx + dy * dy <= r * r,
                "square" => dx.abs() <= r && dy.abs() <= r,
                "triangle" => dy <= r && dy >= -r && dx.abs() * 2 <= dy + r,
                _ => dy.abs() <= r / 4,
            };
            if inside {
                *p = Rgb(color);
            }
        }
        parts.push(format!("a {name} {shape}"));
    }
    // Sensor-like noise so that encoders and hashes see texture.
    for p in img.pixels_mut() {
        for c in &mut p.0 {
            *c = c.saturating_add_signed(rng.random_range(-6i8..=6));
        }
    }
    (
        img,
        format!("{} on a {} background", parts.join(" and "), bg.0),
    )
}

pub fn encode(img: &DynamicImage, format: ImageFormat, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    if format == ImageFormat::Jpeg {
        JpegEncoder::new_with_quality(&mut Cursor::new(&mut out), quality)
            .encode_image(&img.to_rgb8())
            .expect("in-memory JPEG encoding");
    } else {
        img.write_to(&mut Cursor::new(&mut out), format)
            .expect("in-memory encoding");
    }
    out
}

/// Encodes a generated scene in a realistic mix of formats and pixel layouts.
pub fn encode_scene(rng: &mut ChaCha8Rng, img: RgbImage) -> (Vec<u8>, &'static str) {
    let img = DynamicImage::ImageRgb8(img);
    match rng.random_range(0..100) {
        0..65 => (
            encode(&img, ImageFormat::Jpeg, rng.random_range(75..=92)),
            "jpg",
        ),
        65..80 => (encode(&img, ImageFormat::Png, 0), "png"),
        80..85 => (
            encode(
                &DynamicImage::ImageLuma8(img.to_luma8()),
                ImageFormat::Png,
                0,
            ),
            "png",
        ),
        85..89 => (
            encode(
                &DynamicImage::ImageRgba8(img.to_rgba8()),
                ImageFormat::Png,
                0,
            ),
            "png",
        ),
        89..92 => (
            encode(
                &DynamicImage::ImageRgb16(img.to_rgb16()),
                ImageFormat::Png,
                0,
            ),
            "png",
        ),
        92..95 => (encode(&img, ImageFormat::WebP, 0), "webp"),
        95..98 => (encode(&img, ImageFormat::Gif, 0), "gif"),
        _ => (encode(&img, ImageFormat::Bmp, 0), "bmp"),
    }
}

/// A near-duplicate: the same picture re-encoded, resized, cropped or recompressed.
pub fn near_duplicate(rng: &mut ChaCha8Rng, src: &[u8]) -> (Vec<u8>, &'static str) {
    let img = decode(src, DecodeLimits::default()).expect("near-duplicate sources decode");
    match rng.random_range(0..4) {
        0 => (
            encode(&img, ImageFormat::Jpeg, rng.random_range(40..70)),
            "recompressed",
        ),
        1 => {
            let s = rng.random_range(0.5..0.85);
            let small = img.resize_exact(
                ((img.width() as f64 * s) as u32).max(8),
                ((img.height() as f64 * s) as u32).max(8),
                image::imageops::FilterType::Triangle,
            );
            (encode(&small, ImageFormat::Jpeg, 85), "resized")
        }
        2 => {
            let (dx, dy) = (img.width() / 50, img.height() / 50);
            let crop = img.crop_imm(dx, dy, img.width() - 2 * dx, img.height() - 2 * dy);
            (encode(&crop, ImageFormat::Png, 0), "cropped")
        }
        _ => (encode(&img, ImageFormat::WebP, 0), "re-encoded"),
    }
}

fn undecodable(b: &[u8]) -> bool {
    decode(b, DecodeLimits::default()).is_err()
}

/// Damaged bytes that must not decode: garbage after an intact header.
pub fn corrupt(rng: &mut ChaCha8Rng, src: &[u8]) -> Vec<u8> {
    for _ in 0..32 {
        let mut b = src.to_vec();
        let from = rng.random_range(8..b.len().clamp(9, 64));
        let to = (from + rng.random_range(16..256)).min(b.len());
        rng.fill(&mut b[from..to]);
        if undecodable(&b) {
            return b;
        }
    }
    // Fallback that always fails: a PNG signature followed by noise.
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..512).map(|_| rng.random::<u8>()));
    b
}

/// The first part of an image, as an interrupted download leaves it.
pub fn truncated(rng: &mut ChaCha8Rng, src: &[u8]) -> Vec<u8> {
    loop {
        let cut = (src.len() as f64 * rng.random_range(0.2..0.8)) as usize;
        let b = src[..cut.max(16)].to_vec();
        if undecodable(&b) {
            return b;
        }
    }
}

/// A 1x1 PNG whose valid header declares 60000 x 60000 pixels (a decompression bomb).
pub fn bomb() -> Vec<u8> {
    let mut b = encode(&DynamicImage::new_luma8(1, 1), ImageFormat::Png, 0);
    b[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    b[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32fast::hash(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Bytes served where an image was expected.
pub fn not_an_image(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let options: [&[u8]; 4] = [
        b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>",
        b"{\"error\": \"rate limited\", \"retry_after\": 30}",
        b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n",
    ];
    options.choose(rng).expect("options").to_vec()
}
