//! Deduplication at scale.
//!
//! `cargo bench -p lakecap-models --bench dedup -- [N]` (default 1000000):
//! near_duplicates' clustering of N random 64-bit hashes with 5% planted
//! near-duplicates (1-4 flipped bits), at several radii.
//!
//! `cargo bench -p lakecap-models --bench dedup -- semantic [N] [D]` (default
//! 1000000 x 512): SemDeDup of N random D-dim vectors around N/50 topics, 5%
//! planted near-copies; prints seconds, duplicates found and peak RSS.

use std::time::Instant;

use lakecap_models::dedup::hamming_clusters;

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |k| k / 1024)
}

fn semantic(n: usize, d: usize) {
    use lakecap_models::semdedup::{SemDedupParams, semantic_duplicates};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let topics = (n / 50).max(1);
    let centers: Vec<f32> = (0..topics * d)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let mut v = Vec::with_capacity(n * d);
    for i in 0..n {
        let t = i % topics;
        v.extend((0..d).map(|j| centers[t * d + j] + rng.random_range(-0.5f32..0.5)));
    }
    for i in 0..n / 20 {
        let src = rng.random_range(n / 20..n);
        let copy: Vec<f32> = v[src * d..(src + 1) * d]
            .iter()
            .map(|x| x + rng.random_range(-0.01f32..0.01))
            .collect();
        v[i * d..(i + 1) * d].copy_from_slice(&copy);
    }
    let start = Instant::now();
    let r = semantic_duplicates(
        &v,
        d,
        &SemDedupParams {
            threshold: 0.95,
            ..Default::default()
        },
    )
    .unwrap();
    let dups = r.iter().filter(|x| x.dup_of.is_some()).count();
    println!(
        "lakecap semantic_duplicates n={n} d={d} clusters={} seconds={:.1} duplicates={dups} planted={} peak_rss_mib={}",
        (n as f64).sqrt().ceil(),
        start.elapsed().as_secs_f64(),
        n / 20,
        peak_rss_mib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().is_some_and(|a| a == "semantic") {
        let n = args
            .get(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1_000_000);
        let d = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(512);
        return semantic(n, d);
    }
    let n: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut hashes: Vec<u64> = (0..n).map(|_| next()).collect();
    let planted = n / 20;
    for i in 0..planted {
        let src = hashes[(next() % n as u64) as usize];
        let mut h = src;
        for _ in 0..(1 + next() % 4) {
            h ^= 1 << (next() % 64);
        }
        hashes[i] = h;
    }
    for radius in [4, 6, 8, 10] {
        let start = Instant::now();
        let labels = hamming_clusters(&hashes, radius);
        let secs = start.elapsed().as_secs_f64();
        let clustered = labels.iter().enumerate().filter(|&(i, &l)| l != i).count();
        println!(
            "lakecap near_duplicates n={n} radius={radius} seconds={secs:.2} rows_in_clusters_besides_representatives={clustered}"
        );
    }
}
