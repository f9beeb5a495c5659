//! Semantic deduplication (SemDeDup, Abbas et al. 2023) of embedding vectors.
//!
//! 1. Spherical k-means on the unit vectors (centroids re-normalised each
//!    iteration; assignment by maximum cosine), scored in row chunks so memory
//!    stays `O(chunk × k)` rather than `O(n × k)`.
//! 2. Within each cluster, members ordered nearest-to-centroid first; a member
//!    whose cosine with an earlier *kept* member reaches the threshold is a
//!    duplicate of the most similar such member. So the member nearest the
//!    centroid is always kept. Clusters run in parallel.
//!
//! The GEMMs and the nearest-centroid search (a top-1 per row) go through a
//! `lakecap-kernels` backend that the runtime shares per device: the CPU
//! (clusters deduplicated in parallel), or a GPU ([`semantic_duplicates_on`]
//! with a CUDA [`Device`]).

use lakecap_kernels::{Backend, HostData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::Result;
use crate::runtime::{Device, with_shared_backend};

#[derive(Debug, Clone)]
pub struct SemDedupParams {
    /// Cosine similarity at or above which two members are duplicates.
    pub threshold: f32,
    /// Number of k-means clusters; `None` picks `√n` (at least 1).
    pub clusters: Option<usize>,
    pub iterations: usize,
    pub seed: u64,
}

impl Default for SemDedupParams {
    fn default() -> Self {
        SemDedupParams {
            threshold: 0.95,
            clusters: None,
            iterations: 20,
            seed: 0,
        }
    }
}

/// The verdict for one input vector.
#[derive(Debug, Clone, PartialEq)]
pub struct SemDup {
    pub cluster: u32,
    /// Index of the kept vector this one duplicates; `None` when kept.
    pub dup_of: Option<usize>,
    /// Cosine with `dup_of` (duplicates) or with the most similar earlier kept member (kept rows; NaN if none).
    pub similarity: f32,
}

const CHUNK: usize = 8192;

/// `a [m, d] · bᵀ` for `b [n, d]` -> `[m, n]` row-major.
fn dots<B: Backend>(be: &B, a: &[f32], b: &B::Tensor, d: usize) -> Result<Vec<f32>> {
    let x = be.upload(&[a.len() / d, d], HostData::F32(a))?;
    Ok(be.download(&be.linear(&x, b, None)?)?)
}

/// Unit-length copies of `vectors` (zero vectors stay zero).
fn normalized(vectors: &[f32], d: usize) -> Vec<f32> {
    lakecap_kernels::cpu::norm::l2_normalize(vectors, d)
}

/// Spherical k-means: the cluster of every vector (rows of `x`, unit
/// length), and the `k × d` unit centroids.
pub fn spherical_kmeans<B: Backend>(
    be: &B,
    x: &[f32],
    d: usize,
    k: usize,
    iterations: usize,
    seed: u64,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let n = x.len() / d;
    let k = k.clamp(1, n.max(1));
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    // k-means++ seeding on the cosine distance 1 - cos: spreads the initial
    // centroids so that well-separated groups each get one.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let first = rng.random_range(0..n);
    let mut cent: Vec<f32> = x[first * d..(first + 1) * d].to_vec();
    let mut dist: Vec<f32> = vec![f32::INFINITY; n];
    for c in 1..k {
        let last = be.upload(&[1, d], HostData::F32(&cent[(c - 1) * d..c * d]))?;
        let mut total = 0f64;
        for (ci, rows) in x.chunks(CHUNK * d).enumerate() {
            for (r, s) in dots(be, rows, &last, d)?.into_iter().enumerate() {
                let e = &mut dist[ci * CHUNK + r];
                *e = e.min((1.0 - s).max(0.0));
                total += *e as f64;
            }
        }
        let pick = if total <= 0.0 {
            rng.random_range(0..n)
        } else {
            let mut t = rng.random_range(0.0..total);
            dist.iter()
                .position(|&e| {
                    t -= e as f64;
                    t < 0.0
                })
                .unwrap_or(n - 1)
        };
        cent.extend_from_slice(&x[pick * d..(pick + 1) * d]);
    }
    lloyd(be, x, d, cent, iterations)
}

/// Spherical Lloyd iterations from the unit centroids `cent` (`k × d`): the
/// cluster of every row of `x` and the final unit centroids; stops early once
/// no assignment changes. An empty cluster keeps its centroid.
pub fn lloyd<B: Backend>(
    be: &B,
    x: &[f32],
    d: usize,
    mut cent: Vec<f32>,
    iterations: usize,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let (n, k) = (x.len() / d, cent.len() / d);
    let mut assign = vec![0u32; n];
    for _ in 0..iterations.max(1) {
        let next = nearest_centroid(be, x, d, &cent)?;
        let changed = next.iter().zip(&assign).filter(|(a, b)| a != b).count();
        assign = next;
        // New centroids: normalised means.
        let mut sum = vec![0f32; k * d];
        let mut count = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            let a = a as usize;
            count[a] += 1;
            sum[a * d..(a + 1) * d]
                .iter_mut()
                .zip(&x[i * d..(i + 1) * d])
                .for_each(|(s, v)| *s += v);
        }
        for j in 0..k {
            if count[j] > 0 {
                cent[j * d..(j + 1) * d].copy_from_slice(&sum[j * d..(j + 1) * d]);
            }
        }
        cent = normalized(&cent, d);
        if changed == 0 {
            break;
        }
    }
    Ok((assign, cent))
}

/// The nearest centroid (top-1 cosine, first on ties) of every row of `x`,
/// scored in row chunks.
pub fn nearest_centroid<B: Backend>(be: &B, x: &[f32], d: usize, cent: &[f32]) -> Result<Vec<u32>> {
    let c = be.upload(&[cent.len() / d, d], HostData::F32(cent))?;
    let mut out = Vec::with_capacity(x.len() / d);
    for rows in x.chunks(CHUNK * d) {
        let x = be.upload(&[rows.len() / d, d], HostData::F32(rows))?;
        out.extend(be.top_k(&be.linear(&x, &c, None)?, 1)?.1);
    }
    Ok(out)
}

/// Each vector's (cluster, cosine distance to its centroid), and the unit
/// centroids (`k × d`).
pub type Clustering = (Vec<(u32, f32)>, Vec<f32>);

/// k-means clusters of `vectors` (`n × d`, any norm; NaN-free) on `device`:
/// each vector's cluster and its cosine distance (1 − cos) to the cluster's
/// centroid, and the unit centroids (`k × d`, k at most n). Spherical k-means
/// with k-means++ seeding; deterministic for a seed.
pub fn kmeans_on(
    device: Device,
    vectors: &[f32],
    d: usize,
    k: usize,
    iterations: usize,
    seed: u64,
) -> Result<Clustering> {
    let x = normalized(vectors, d.max(1));
    let (assign, cent) = with_shared_backend!(device, |be| spherical_kmeans(
        be, &x, d, k, iterations, seed
    ))?;
    let rows = assign
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let (row, c) = (
                &x[i * d..(i + 1) * d],
                &cent[a as usize * d..(a as usize + 1) * d],
            );
            let cos: f32 = row.iter().zip(c).map(|(p, q)| p * q).sum();
            (a, (1.0 - cos).max(0.0))
        })
        .collect();
    Ok((rows, cent))
}

/// SemDeDup over `vectors` (`n × d`, any norm; NaN-free) on the CPU.
pub fn semantic_duplicates(vectors: &[f32], d: usize, p: &SemDedupParams) -> Result<Vec<SemDup>> {
    semantic_duplicates_on(Device::CPU, vectors, d, p)
}

/// [`semantic_duplicates`] on `device` (a GPU runs the k-means GEMMs and the
/// nearest-centroid top-1, then the clusters one after another).
pub fn semantic_duplicates_on(
    device: Device,
    vectors: &[f32],
    d: usize,
    p: &SemDedupParams,
) -> Result<Vec<SemDup>> {
    let parallel = matches!(device, Device::Cpu(_));
    with_shared_backend!(device, |be| run(be, parallel, vectors, d, p))
}

/// SemDeDup on `be`; `parallel`: clusters on rayon's threads (the CPU).
fn run<B: Backend>(
    be: &B,
    parallel: bool,
    vectors: &[f32],
    d: usize,
    p: &SemDedupParams,
) -> Result<Vec<SemDup>> {
    let n = vectors.len().checked_div(d).unwrap_or(0);
    let x = normalized(vectors, d.max(1));
    let k = p
        .clusters
        .unwrap_or_else(|| (n as f64).sqrt().ceil() as usize)
        .max(1);
    let (assign, _) = spherical_kmeans(be, &x, d, k, p.iterations, p.seed)?;
    let k = assign.iter().map(|&a| a as usize + 1).max().unwrap_or(0);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &a) in assign.iter().enumerate() {
        members[a as usize].push(i);
    }
    let one = |(c, m): (usize, &Vec<usize>)| dedup_cluster(be, &x, d, c as u32, m, p.threshold);
    let per_cluster: Vec<Result<Vec<(usize, SemDup)>>> = if parallel {
        members.par_iter().enumerate().map(one).collect()
    } else {
        members.iter().enumerate().map(one).collect()
    };
    let mut out = vec![
        SemDup {
            cluster: 0,
            dup_of: None,
            similarity: f32::NAN
        };
        n
    ];
    for r in per_cluster {
        for (i, v) in r? {
            out[i] = v;
        }
    }
    Ok(out)
}

fn dedup_cluster<B: Backend>(
    be: &B,
    x: &[f32],
    d: usize,
    cluster: u32,
    members: &[usize],
    threshold: f32,
) -> Result<Vec<(usize, SemDup)>> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<f32> = members
        .iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].to_vec())
        .collect();
    // Order by cosine to the centroid, nearest first (ties by input order).
    let mut centroid = vec![0f32; d];
    for r in rows.chunks(d) {
        centroid.iter_mut().zip(r).for_each(|(c, v)| *c += v);
    }
    let centroid = normalized(&centroid, d);
    let to_c: Vec<f32> = rows
        .chunks(d)
        .map(|r| r.iter().zip(&centroid).map(|(a, b)| a * b).sum())
        .collect();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| to_c[b].total_cmp(&to_c[a]).then(a.cmp(&b)));
    let sorted: Vec<f32> = order
        .iter()
        .flat_map(|&o| rows[o * d..(o + 1) * d].to_vec())
        .collect();
    let all = be.upload(&[order.len(), d], HostData::F32(&sorted))?;
    let mut kept = vec![false; order.len()];
    let mut out = Vec::with_capacity(order.len());
    // Similarities of a block of members against all members, one GEMM per block.
    const BLOCK: usize = 256;
    for start in (0..order.len()).step_by(BLOCK) {
        let end = (start + BLOCK).min(order.len());
        let sims = dots(be, &sorted[start * d..end * d], &all, d)?;
        for i in start..end {
            let row = &sims[(i - start) * order.len()..(i - start + 1) * order.len()];
            let best = (0..i).filter(|&j| kept[j]).map(|j| (j, row[j])).fold(
                None,
                |b: Option<(usize, f32)>, (j, s)| match b {
                    Some((_, bs)) if bs >= s => b,
                    _ => Some((j, s)),
                },
            );
            let (dup_of, similarity) = match best {
                Some((j, s)) if s >= threshold => (Some(members[order[j]]), s),
                Some((_, s)) => (None, s),
                None => (None, f32::NAN),
            };
            kept[i] = dup_of.is_none();
            out.push((
                members[order[i]],
                SemDup {
                    cluster,
                    dup_of,
                    similarity,
                },
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use lakecap_kernels::Cpu;

    use super::*;

    /// Points around `centers` with small noise; returns (vectors, center of each).
    fn blobs(centers: usize, per: usize, d: usize, noise: f32) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let cs: Vec<Vec<f32>> = (0..centers)
            .map(|_| (0..d).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let mut v = Vec::new();
        let mut label = Vec::new();
        for _ in 0..per {
            for (ci, c) in cs.iter().enumerate() {
                v.extend(c.iter().map(|x| x + rng.random_range(-noise..noise)));
                label.push(ci);
            }
        }
        (v, label)
    }

    #[test]
    fn kmeans_recovers_well_separated_clusters() {
        let (v, label) = blobs(5, 40, 16, 0.05);
        let x = normalized(&v, 16);
        let (a, _) = spherical_kmeans(&Cpu, &x, 16, 5, 30, 1).unwrap();
        // Same blob <-> same cluster.
        for i in 0..label.len() {
            for j in 0..label.len() {
                assert_eq!(label[i] == label[j], a[i] == a[j], "{i} {j}");
            }
        }
        // kmeans_on: the same clusters (any norm), small distances to their
        // centroids, and the same answer for the same seed.
        let scaled: Vec<f32> = v.iter().map(|x| x * 3.0).collect();
        let (r, cent) = kmeans_on(Device::CPU, &scaled, 16, 5, 30, 1).unwrap();
        assert_eq!(r.iter().map(|(c, _)| *c).collect::<Vec<_>>(), a);
        // Unit centroids, one per cluster, each nearest its own members.
        assert_eq!(cent.len(), 5 * 16);
        for (c, centroid) in cent.chunks(16).enumerate() {
            let norm: f32 = centroid.iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
            let member = a.iter().position(|&m| m as usize == c).unwrap();
            let cos = |q: &[f32]| -> f32 {
                x[member * 16..][..16]
                    .iter()
                    .zip(q)
                    .map(|(p, q)| p * q)
                    .sum()
            };
            assert!(cent.chunks(16).all(|o| cos(o) <= cos(centroid) + 1e-6));
        }
        assert!(
            r.iter().all(|(_, dist)| (0.0..0.05).contains(dist)),
            "{r:?}"
        );
        assert_eq!(kmeans_on(Device::CPU, &scaled, 16, 5, 30, 1).unwrap().0, r);
    }

    #[test]
    fn near_copies_are_duplicates_of_one_kept_member() {
        let d = 8;
        let mut v: Vec<f32> = vec![1., 0., 0., 0., 0., 0., 0., 0.];
        v.extend([0.99, 0.01, 0., 0., 0., 0., 0., 0.]); // near copy of 0
        v.extend([0., 1., 0., 0., 0., 0., 0., 0.]); // different
        v.extend([0., 0., 0., 0., 0., 0., 0., 0.]); // zero vector: kept, never a duplicate
        let r = semantic_duplicates(
            &v,
            d,
            &SemDedupParams {
                clusters: Some(1),
                threshold: 0.9,
                ..Default::default()
            },
        )
        .unwrap();
        let dups: Vec<_> = r.iter().map(|x| x.dup_of).collect();
        assert_eq!(dups.iter().filter(|x| x.is_some()).count(), 1);
        // One of rows 0/1 duplicates the other; 2 and 3 are kept.
        assert!(dups[0] == Some(1) || dups[1] == Some(0));
        assert_eq!((dups[2], dups[3]), (None, None));
        let s = r.iter().find(|x| x.dup_of.is_some()).unwrap().similarity;
        assert!(s > 0.99);
        // A threshold above every similarity keeps everything.
        let r = semantic_duplicates(
            &v,
            d,
            &SemDedupParams {
                clusters: Some(2),
                threshold: 1.01,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(r.iter().all(|x| x.dup_of.is_none()));
    }
}
