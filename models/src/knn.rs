//! Exact k-nearest-neighbour search by cosine: every query against every
//! corpus vector, as blocked GEMMs with a top-k per row on a `lakecap-kernels`
//! backend (the CPU or a GPU). Memory is bounded by the blocks: the corpus
//! (`n × d`) plus one block of scores at a time, sized to the backend's
//! activation budget (on the CPU a bigger block is mapped afresh by the
//! allocator on every product and page-faulted in: 4× slower at 20k × 20k).

use lakecap_kernels::{Backend, HostData};

use crate::error::Result;
use crate::runtime::{Device, with_shared_backend};

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
        let got = knn_on(Device::Cpu, &q, &c, d, 5).unwrap();
        let want = brute(&q, &c, d, 5);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.iter().map(|n| n.index).collect::<Vec<_>>(), *w);
            assert!(g.windows(2).all(|p| p[0].similarity >= p[1].similarity));
        }
        // Fewer corpus rows than k; an empty corpus.
        let small = knn_on(Device::Cpu, &q[..d], &c[..2 * d], d, 5).unwrap();
        assert_eq!(small[0].len(), 2);
        assert!(knn_on(Device::Cpu, &q[..d], &[], d, 5).unwrap()[0].is_empty());
    }
}
