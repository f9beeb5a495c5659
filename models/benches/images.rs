//! phash/dhash throughput on the real photos, decode included.
//!
//! `cargo bench -p lakecap-models --bench images -- [SECONDS]` prints one line per
//! (hash, threads): images/s over all photos, repeated for at least SECONDS
//! (default 3). scripts/bench-images.sh runs it beside Python imagehash.
//! `decode` is the floor both sides share: decoding and converting to
//! grey as Pillow's `convert("L")` does, with no resize and no hash.

use std::time::Instant;

use lakecap_models::image::{DecodeLimits, decode, dhash, phash, to_luma};

fn photos() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/photos");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("data/photos")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("photo"))
        .collect()
}

fn run(
    photos: &[Vec<u8>],
    threads: usize,
    min_secs: f64,
    hash: fn(&image::DynamicImage) -> u64,
) -> f64 {
    let start = Instant::now();
    let mut done = 0usize;
    let mut sink = 0u64;
    while start.elapsed().as_secs_f64() < min_secs {
        sink ^= std::thread::scope(|s| {
            let chunks: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        photos.iter().skip(t).step_by(threads).fold(0u64, |acc, b| {
                            acc ^ hash(&decode(b, DecodeLimits::default()).expect("photos decode"))
                        })
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

/// Grey conversion only: the decode floor under both hashes.
fn luma_only(img: &image::DynamicImage) -> u64 {
    to_luma(img).0.len() as u64
}

fn main() {
    let min_secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let photos = photos();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, f) in [
        ("phash", phash as fn(&_) -> u64),
        ("dhash", dhash as fn(&_) -> u64),
        ("decode", luma_only as fn(&_) -> u64),
    ] {
        for threads in [1, cores] {
            println!(
                "lakecap {name} threads={threads} images_per_s={:.1}",
                run(&photos, threads, min_secs, f)
            );
        }
    }
}
