//! Near-duplicate clustering of 64-bit perceptual hashes.
//!
//! Multi-index hashing (Norouzi, Punjani and Fleet, "Fast Search in Hamming
//! Space with Multi-Index Hashing", CVPR 2012): split the 64 bits into `m`
//! disjoint chunks; if two hashes differ in at most `r` bits, some chunk differs
//! in at most `r / m` bits (pigeonhole). Each chunk gets a direct-addressed
//! bucket index; a query probes every chunk value within that radius and checks
//! the full distance only for the few candidates found. `m` is chosen per call
//! by a cost model (probes per item x expected bucket size), so a million
//! random hashes at r = 8 take seconds instead of the 5 x 10^11 pair checks of
//! the quadratic scan. Exact duplicates are collapsed first so that large
//! groups of identical hashes cost nothing. Clusters are the connected
//! components of the "within r" graph.

/// Largest radius accepted: beyond it, near-duplicate search over 64-bit hashes
/// degenerates (random pairs average 32 bits apart) and the probe count explodes.
pub const MAX_RADIUS: u32 = 16;

/// Cluster label per input hash: the index of the cluster's first member, so a
/// label equals its own index exactly for cluster representatives.
pub fn hamming_clusters(hashes: &[u64], radius: u32) -> Vec<usize> {
    assert!(radius <= MAX_RADIUS, "radius {radius} exceeds {MAX_RADIUS}");
    // Collapse identical hashes: `uniq` sorted, `slot[i]` = position of hashes[i].
    let mut uniq: Vec<u64> = hashes.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let mut parent: Vec<u32> = (0..uniq.len() as u32).collect();
    if radius > 0 && uniq.len() > 1 {
        link_within_radius(&uniq, radius, &mut parent);
    }
    // Label by the smallest input index in each component.
    let mut first: Vec<usize> = vec![usize::MAX; uniq.len()];
    let mut labels = Vec::with_capacity(hashes.len());
    for (i, h) in hashes.iter().enumerate() {
        let root = find(
            &mut parent,
            uniq.binary_search(h).expect("hash is in uniq") as u32,
        ) as usize;
        if first[root] == usize::MAX {
            first[root] = i;
        }
        labels.push(first[root]);
    }
    labels
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        parent[x as usize] = parent[parent[x as usize] as usize];
        x = parent[x as usize];
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb) as usize] = ra.min(rb);
    }
}

fn binomial_ball(bits: u32, radius: u32) -> f64 {
    let mut total = 0.0;
    let mut term = 1.0;
    for k in 0..=radius.min(bits) {
        if k > 0 {
            term = term * f64::from(bits - k + 1) / f64::from(k);
        }
        total += term;
    }
    total
}

/// Chunk layout: `(shift, width)` per chunk, widths as even as possible.
fn chunks(m: u32) -> Vec<(u32, u32)> {
    let (base, extra) = (64 / m, 64 % m);
    let mut shift = 0;
    (0..m)
        .map(|i| {
            let width = base + u32::from(i < extra);
            let c = (shift, width);
            shift += width;
            c
        })
        .collect()
}

/// Picks the chunk count with the fewest expected bucket visits; chunks wider
/// than 24 bits would need over 16M-entry indexes, so they are not considered.
fn choose_chunks(n: usize, radius: u32) -> u32 {
    (3..=16u32)
        .map(|m| {
            let width = 64 / m;
            let probes = f64::from(m) * binomial_ball(width + 1, radius / m);
            let bucket = n as f64 / 2f64.powi(width as i32);
            (m, probes * (1.0 + bucket))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(4, |(m, _)| m)
}

fn link_within_radius(uniq: &[u64], radius: u32, parent: &mut [u32]) {
    let m = choose_chunks(uniq.len(), radius);
    let sub = radius / m;
    for (shift, width) in chunks(m) {
        let mask = (1u64 << width) - 1;
        let value = |h: u64| ((h >> shift) & mask) as usize;
        // CSR bucket index over this chunk.
        let mut starts = vec![0u32; (1usize << width) + 1];
        for &h in uniq {
            starts[value(h) + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut fill = starts.clone();
        let mut ids = vec![0u32; uniq.len()];
        for (i, &h) in uniq.iter().enumerate() {
            let v = value(h);
            ids[fill[v] as usize] = i as u32;
            fill[v] += 1;
        }
        let flips = flip_masks(width, sub);
        for (i, &h) in uniq.iter().enumerate() {
            let v = value(h);
            for &f in &flips {
                let b = v ^ f;
                for &j in &ids[starts[b] as usize..starts[b + 1] as usize] {
                    if j as usize > i && (h ^ uniq[j as usize]).count_ones() <= radius {
                        union(parent, i as u32, j);
                    }
                }
            }
        }
    }
}

/// Every `width`-bit mask with at most `radius` bits set.
fn flip_masks(width: u32, radius: u32) -> Vec<usize> {
    let mut out = vec![0usize];
    let mut frontier = vec![(0usize, 0u32)];
    for _ in 0..radius {
        let mut next = Vec::new();
        for &(mask, lowest) in &frontier {
            for bit in lowest..width {
                let m = mask | (1 << bit);
                out.push(m);
                next.push((m, bit + 1));
            }
        }
        frontier = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(hashes: &[u64], r: u32) -> Vec<usize> {
        let n = hashes.len();
        let mut parent: Vec<u32> = (0..n as u32).collect();
        for i in 0..n {
            for j in i + 1..n {
                if (hashes[i] ^ hashes[j]).count_ones() <= r {
                    union(&mut parent, i as u32, j as u32);
                }
            }
        }
        (0..n)
            .map(|i| find(&mut parent, i as u32) as usize)
            .collect()
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = self.0;
            (x ^ (x >> 29)).wrapping_mul(0xBF58476D1CE4E5B9) ^ (x >> 32)
        }
    }

    #[test]
    fn matches_brute_force_on_planted_clusters() {
        let mut rng = Lcg(7);
        let mut hashes = Vec::new();
        for _ in 0..150 {
            let base = rng.next();
            hashes.push(base);
            for _ in 0..(rng.next() % 4) {
                let mut h = base;
                for _ in 0..(rng.next() % 9) {
                    h ^= 1 << (rng.next() % 64);
                }
                hashes.push(h);
            }
        }
        hashes.push(hashes[3]);
        for r in [0, 1, 4, 6, 8, 10, 12] {
            let fast = hamming_clusters(&hashes, r);
            let slow = brute(&hashes, r);
            // Same partition: labels agree up to renaming.
            for i in 0..hashes.len() {
                for j in 0..hashes.len() {
                    assert_eq!(fast[i] == fast[j], slow[i] == slow[j], "r={r} i={i} j={j}");
                }
            }
        }
    }

    #[test]
    fn labels_point_at_first_member() {
        let labels = hamming_clusters(&[0b1111, 0, 0b1110, u64::MAX, 0b1111], 1);
        assert_eq!(labels, vec![0, 1, 0, 3, 0]);
    }

    #[test]
    fn flip_masks_cover_the_ball() {
        assert_eq!(flip_masks(16, 2).len(), 1 + 16 + 120);
        assert_eq!(binomial_ball(16, 2), 137.0);
        assert_eq!(chunks(3), vec![(0, 22), (22, 21), (43, 21)]);
    }
}
