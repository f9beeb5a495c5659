//! k-nearest-neighbour search by cosine on a `lakecap-kernels` backend (the
//! CPU or a GPU). [`knn_on`] is exact: every query against every corpus
//! vector, as blocked GEMMs with a top-k per row. [`knn_ivf_on`] is an
//! inverted-file index (FAISS's IVF-Flat): the corpus is clustered by
//! spherical k-means and each query is scored against the rows of its few
//! nearest clusters only, exact within them. Memory is bounded by the blocks: the corpus
//! (`n × d`) plus one block of scores at a time, sized to the backend's
//! activation budget (on the CPU a bigger block is mapped afresh by the
//! allocator on every product and page-faulted in: 4× slower at 20k × 20k).

use lakecap_kernels::{Backend, HostData};

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::runtime::{Device, with_shared_backend};
use crate::semdedup::{lloyd, nearest_centroid};

/// Most query rows scored at once.
const QUERIES: usize = 1024;
/// Corpus rows scored at once (its blocks' top-k are merged per query).
const CORPUS: usize = 16384;
/// Fewest query rows scored at once, whatever the budget (GEMM efficiency).
const MIN_QUERIES: usize = 64;

/// One neighbour: its corpus row and cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    pub index: u32,
    pub similarity: f32,
}

/// For each query (rows of `queries`, `d` wide, any norm; NaN-free), its `k`
/// most similar rows of `corpus` by cosine, most similar first (ties to the
/// lower index); fewer when the corpus has fewer rows.
pub fn knn_on(
    device: Device,
    queries: &[f32],
    corpus: &[f32],
    d: usize,
    k: usize,
) -> Result<Vec<Vec<Neighbour>>> {
    let d = d.max(1);
    let q = lakecap_kernels::cpu::norm::l2_normalize(queries, d);
    let c = lakecap_kernels::cpu::norm::l2_normalize(corpus, d);
    with_shared_backend!(device, |be| search(be, &q, &c, d, k))
}

fn search<B: Backend>(
    be: &B,
    q: &[f32],
    c: &[f32],
    d: usize,
    k: usize,
) -> Result<Vec<Vec<Neighbour>>> {
    let (nq, nc) = (q.len() / d, c.len() / d);
    let mut out: Vec<Vec<Neighbour>> = vec![Vec::new(); nq];
    if nq == 0 || nc == 0 || k == 0 {
        return Ok(out);
    }
    for (cb, block) in c.chunks(CORPUS * d).enumerate() {
        let rows = block.len() / d;
        let kk = k.min(rows);
        let corpus = be.upload(&[rows, d], HostData::F32(block))?;
        let per_block = be
            .activation_budget()
            .map_or(QUERIES, |b| b / (4 * rows))
            .clamp(MIN_QUERIES, QUERIES);
        for (qb, queries) in q.chunks(per_block * d).enumerate() {
            let x = be.upload(&[queries.len() / d, d], HostData::F32(queries))?;
            let (sims, idx) = be.top_k(&be.linear(&x, &corpus, None)?, kk)?;
            for (r, (s, i)) in sims.chunks(kk).zip(idx.chunks(kk)).enumerate() {
                let best = &mut out[qb * per_block + r];
                best.extend(s.iter().zip(i).map(|(&similarity, &j)| Neighbour {
                    index: (cb * CORPUS) as u32 + j,
                    similarity,
                }));
                if cb > 0 {
                    // Merge with earlier blocks: best first, ties to the lower index.
                    best.sort_by(|a, b| {
                        b.similarity
                            .total_cmp(&a.similarity)
                            .then(a.index.cmp(&b.index))
                    });
                    best.truncate(k);
                }
            }
        }
    }
    Ok(out)
}

/// An inverted-file index's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ivf {
    /// Clusters the corpus is split into.
    pub lists: usize,
    /// Clusters each query searches.
    pub probes: usize,
    pub seed: u64,
}

impl Ivf {
    /// FAISS's rule of thumb for a corpus of `n` rows: about 4·√n lists, and
    /// one in 16 of them probed.
    pub fn for_corpus(n: usize) -> Ivf {
        let lists = ((4.0 * (n as f64).sqrt()).round() as usize).max(1);
        Ivf {
            lists,
            probes: lists.div_ceil(16),
            seed: 0,
        }
    }
}

/// Training rows per list and Lloyd iterations of the index's k-means (on a
/// sample, with random seeding, as FAISS trains IVF).
const TRAIN_PER_LIST: usize = 64;
const TRAIN_ITERATIONS: usize = 10;

/// Like [`knn_on`], but searching only the corpus rows of each query's
/// `ivf.probes` nearest lists: approximate (a neighbour in an unprobed list
/// is missed), deterministic for a seed, exact when every list is probed.
pub fn knn_ivf_on(
    device: Device,
    queries: &[f32],
    corpus: &[f32],
    d: usize,
    k: usize,
    ivf: Ivf,
) -> Result<Vec<Vec<Neighbour>>> {
    let d = d.max(1);
    let q = lakecap_kernels::cpu::norm::l2_normalize(queries, d);
    let c = lakecap_kernels::cpu::norm::l2_normalize(corpus, d);
    with_shared_backend!(device, |be| ivf_search(be, &q, &c, d, k, ivf))
}

fn ivf_search<B: Backend>(
    be: &B,
    q: &[f32],
    c: &[f32],
    d: usize,
    k: usize,
    ivf: Ivf,
) -> Result<Vec<Vec<Neighbour>>> {
    let (nq, nc) = (q.len() / d, c.len() / d);
    if nq == 0 || nc == 0 || k == 0 {
        return Ok(vec![Vec::new(); nq]);
    }
    // Train on a sample: distinct random rows as the first centroids.
    let lists = ivf.lists.clamp(1, nc);
    let mut rng = ChaCha8Rng::seed_from_u64(ivf.seed);
    let picked = sample(&mut rng, nc, (lists * TRAIN_PER_LIST).min(nc)).into_vec();
    let train: Vec<f32> = picked
        .iter()
        .fold(Vec::with_capacity(picked.len() * d), |mut t, &i| {
            t.extend_from_slice(&c[i * d..(i + 1) * d]);
            t
        });
    let start: Vec<f32> = train[..lists * d].to_vec();
    let (_, cent) = lloyd(be, &train, d, start, TRAIN_ITERATIONS)?;
    // The inverted lists, and the lists each query probes.
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); lists];
    for (i, l) in nearest_centroid(be, c, d, &cent)?.into_iter().enumerate() {
        members[l as usize].push(i as u32);
    }
    let mut askers: Vec<Vec<u32>> = vec![Vec::new(); lists];
    for (qi, probed) in search(be, q, &cent, d, ivf.probes.clamp(1, lists))?
        .into_iter()
        .enumerate()
    {
        for p in probed {
            askers[p.index as usize].push(qi as u32);
        }
    }
    let rows_of = |x: &[f32], idx: &[u32]| -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            out.extend_from_slice(&x[i as usize * d..(i as usize + 1) * d]);
        }
        out
    };
    // Each list's rows against the queries that probe it, merged straight
    // into every query's best k: no per-list top-k, no per-list vectors.
    let mut out: Vec<Vec<Neighbour>> = vec![Vec::with_capacity(k + 1); nq];
    for (list, who) in members.iter().zip(&askers) {
        if list.is_empty() || who.is_empty() {
            continue;
        }
        let x = be.upload(&[who.len(), d], HostData::F32(&rows_of(q, who)))?;
        let y = be.upload(&[list.len(), d], HostData::F32(&rows_of(c, list)))?;
        let scores = be.download(&be.linear(&x, &y, None)?)?;
        for (row, &qi) in scores.chunks(list.len()).zip(who) {
            keep_best(&mut out[qi as usize], row, list, k);
        }
    }
    Ok(out)
}

/// Merges `scores` of corpus rows `rows` into `best` (most similar first,
/// ties to the lower index), keeping `k`.
fn keep_best(best: &mut Vec<Neighbour>, scores: &[f32], rows: &[u32], k: usize) {
    for (&similarity, &index) in scores.iter().zip(rows) {
        let worse = |b: &Neighbour| {
            similarity < b.similarity || (similarity == b.similarity && index > b.index)
        };
        if best.len() == k && best.last().is_some_and(worse) {
            continue;
        }
        let at = best.partition_point(worse);
        best.insert(at, Neighbour { index, similarity });
        best.truncate(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain reference: every pair's cosine, sorted.
    fn brute(q: &[f32], c: &[f32], d: usize, k: usize) -> Vec<Vec<u32>> {
        let q = lakecap_kernels::cpu::norm::l2_normalize(q, d);
        let c = lakecap_kernels::cpu::norm::l2_normalize(c, d);
        q.chunks(d)
            .map(|x| {
                let mut s: Vec<(f32, u32)> = c
                    .chunks(d)
                    .enumerate()
                    .map(|(j, y)| (x.iter().zip(y).map(|(a, b)| a * b).sum(), j as u32))
                    .collect();
                s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                s.into_iter().take(k).map(|(_, j)| j).collect()
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_across_blocks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let d = 24;
        // More corpus rows than one block, so blocks' top-k are merged.
        // Over 64 queries: the backend ranks rows in parallel.
        let (nq, nc) = (100, CORPUS + 300);
        let q: Vec<f32> = (0..nq * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let c: Vec<f32> = (0..nc * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let got = knn_on(Device::CPU, &q, &c, d, 5).unwrap();
        let want = brute(&q, &c, d, 5);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.iter().map(|n| n.index).collect::<Vec<_>>(), *w);
            assert!(g.windows(2).all(|p| p[0].similarity >= p[1].similarity));
        }
        // Fewer corpus rows than k; an empty corpus.
        let small = knn_on(Device::CPU, &q[..d], &c[..2 * d], d, 5).unwrap();
        assert_eq!(small[0].len(), 2);
        assert!(knn_on(Device::CPU, &q[..d], &[], d, 5).unwrap()[0].is_empty());
    }

    /// Probing every list is exact search; on clustered data the default
    /// probes find nearly every true neighbour; the same seed, the same answer.
    #[test]
    fn ivf_is_exact_with_every_list_and_close_with_few() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (d, n, blobs) = (16, 3000, 30);
        let centres: Vec<f32> = (0..blobs * d)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let c: Vec<f32> = (0..n * d)
            .map(|i| centres[(i / d % blobs) * d + i % d] + rng.random_range(-0.15..0.15))
            .collect();
        let q = &c[..200 * d];
        let exact = brute(q, &c, d, 10);
        let ids = |r: Vec<Vec<Neighbour>>| -> Vec<Vec<u32>> {
            r.into_iter()
                .map(|v| v.into_iter().map(|n| n.index).collect())
                .collect()
        };
        let all = Ivf {
            lists: 12,
            probes: 12,
            seed: 1,
        };
        assert_eq!(
            ids(knn_ivf_on(Device::CPU, q, &c, d, 10, all).unwrap()),
            exact
        );
        let ivf = Ivf::for_corpus(n);
        assert_eq!((ivf.lists, ivf.probes), (219, 14));
        let got = ids(knn_ivf_on(Device::CPU, q, &c, d, 10, ivf).unwrap());
        let hits: usize = got
            .iter()
            .zip(&exact)
            .map(|(g, e)| g.iter().filter(|i| e.contains(i)).count())
            .sum();
        let recall = hits as f64 / (10 * exact.len()) as f64;
        assert!(recall >= 0.9, "recall@10 {recall}");
        assert_eq!(
            ids(knn_ivf_on(Device::CPU, q, &c, d, 10, ivf).unwrap()),
            got
        );
        // Fewer corpus rows than lists or k (both clamp), and an empty corpus.
        let tiny = Ivf {
            lists: 8,
            probes: 8,
            seed: 0,
        };
        assert_eq!(
            knn_ivf_on(Device::CPU, q, &c[..3 * d], d, 5, tiny).unwrap()[0].len(),
            3
        );
        assert!(knn_ivf_on(Device::CPU, q, &[], d, 5, tiny).unwrap()[0].is_empty());
    }
}
