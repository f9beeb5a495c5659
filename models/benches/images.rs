//! phash/dhash throughput on the real photos, decode included.
//!
//! `cargo bench -p lakecap-models --bench images -- [SECONDS]` prints one line per
//! (hash, photo set, threads): images/s over the set (`all` photos, the
//! `jpeg` ones, and `web`: those re-encoded at web quality, when
//! `bench/imagehash_peer.py --write-web` has written them to target/bench-web),
//! repeated for at least SECONDS (default 3).
//! scripts/bench-images.sh runs it beside Python imagehash. `decode` is the
//! floor both sides share: decoding and converting to grey as Pillow's
//! `convert("L")` does, with no resize and no hash. `phash_fast` and
//! `dhash_fast` are `phash(img, 'fast')` and `dhash(img, 'fast')`: JPEGs
//! read at 1/8 scale from their DC coefficients, or decoded to luma only when
//! under 256 px (other formats as in exact mode).

use std::time::Instant;

use lakecap_models::image::{
    DecodeLimits, LumaPlane, decode, decode_luma_fast, dhash, dhash_luma, phash, phash_luma,
    to_luma,
};

/// The images in `dir` (none if it is missing), and the JPEGs among them.
fn photos(dir: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let dir = format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    files.sort();
    let read = |p: &std::path::PathBuf| std::fs::read(p).expect("photo");
    let jpegs = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"));
    (files.iter().map(read).collect(), jpegs.map(read).collect())
}

fn run(photos: &[Vec<u8>], threads: usize, min_secs: f64, hash: fn(&[u8]) -> u64) -> f64 {
    let start = Instant::now();
    let mut done = 0usize;
    let mut sink = 0u64;
    while start.elapsed().as_secs_f64() < min_secs {
        sink ^= std::thread::scope(|s| {
            let chunks: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        photos
                            .iter()
                            .skip(t)
                            .step_by(threads)
                            .fold(0u64, |acc, b| acc ^ hash(b))
                    })
                })
                .collect();
            chunks
                .into_iter()
                .map(|h| h.join().expect("worker"))
                .fold(0, |a, b| a ^ b)
        });
        done += photos.len();
    }
    std::hint::black_box(sink);
    done as f64 / start.elapsed().as_secs_f64()
}

/// A hash of an encoded image, decoding included.
type Hash = fn(&[u8]) -> u64;

fn full(b: &[u8]) -> image::DynamicImage {
    decode(b, DecodeLimits::default()).expect("photos decode")
}

fn luma_fast(b: &[u8]) -> LumaPlane {
    decode_luma_fast(b, DecodeLimits::default()).expect("photos decode")
}

fn main() {
    let min_secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let (all, jpegs) = photos("data/photos");
    let (_, web) = photos("target/bench-web");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hashes: [(&str, Hash); 5] = [
        ("phash", |b| phash(&full(b))),
        ("dhash", |b| dhash(&full(b))),
        // Grey conversion only: the decode floor under both hashes.
        ("decode", |b| to_luma(&full(b)).0.len() as u64),
        ("phash_fast", |b| phash_luma(&luma_fast(b))),
        ("dhash_fast", |b| dhash_luma(&luma_fast(b))),
    ];
    for (name, f) in hashes {
        for (set, photos) in [("all", &all), ("jpeg", &jpegs), ("web", &web)] {
            if photos.is_empty() {
                continue;
            }
            for threads in [1, cores] {
                println!(
                    "lakecap {name} set={set} threads={threads} images_per_s={:.1}",
                    run(photos, threads, min_secs, f)
                );
            }
        }
    }
}
