//! near_duplicates' clustering at scale: N random 64-bit hashes with 5% planted
//! near-duplicates (1-4 flipped bits), clustered at several radii.
//!
//! `cargo bench -p lakecap-models --bench dedup -- [N]` (default 1000000).

use std::time::Instant;

use lakecap_models::dedup::hamming_clusters;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
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
