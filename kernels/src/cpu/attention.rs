//! Fused multi-head attention: scores, mask, softmax and the weighted sum in
//! one pass per query row, never materialising the `[b, h, sq, sk]` tensor;
//! and the decoder's KV cache with attention over it.

use rayon::prelude::*;

use super::CpuTensor;
use super::activation::softmax;
use super::gemm::dot;
use crate::backend::{Mask, Pos, Result, check};

/// How many keys query `i` of batch row `b` may see.
fn visible(mask: &Mask, b: usize, i: usize, sk: usize) -> usize {
    let mut n = mask.key_lens.as_ref().map_or(sk, |l| l[b].min(sk));
    if mask.causal {
        n = n.min(i + 1);
    }
    n
}

/// Plain reference of one query head over `n` keys, in f64: `key(j)` and
/// `value(j)` are that head's rows.
fn attend_ref<'a>(
    qr: &[f32],
    n: usize,
    key: impl Fn(usize) -> &'a [f32],
    value: impl Fn(usize) -> &'a [f32],
    out: &mut [f32],
) {
    let scale = 1.0 / (qr.len() as f64).sqrt();
    let scores: Vec<f64> = (0..n)
        .map(|j| {
            let dot: f64 = qr
                .iter()
                .zip(key(j))
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            dot * scale
        })
        .collect();
    let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
    let z: f64 = e.iter().sum();
    for (t, o) in out.iter_mut().enumerate() {
        let acc: f64 = (0..n).map(|j| e[j] / z * value(j)[t] as f64).sum();
        *o = acc as f32;
    }
}

/// Plain reference: per (batch, head, query), f64 softmax.
#[allow(clippy::too_many_arguments)]
pub fn attention_ref(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    b: usize,
    sq: usize,
    sk: usize,
    heads: usize,
    d: usize,
    mask: &Mask,
) -> Vec<f32> {
    let hd = heads * d;
    let mut out = vec![0f32; b * sq * hd];
    for bi in 0..b {
        for h in 0..heads {
            for i in 0..sq {
                let row = (bi * sq + i) * hd + h * d;
                let base = |j: usize| (bi * sk + j) * hd + h * d;
                attend_ref(
                    &q[row..row + d],
                    visible(mask, bi, i, sk),
                    |j| &k[base(j)..base(j) + d],
                    |j| &v[base(j)..base(j) + d],
                    &mut out[row..row + d],
                );
            }
        }
    }
    out
}

/// Both sequence lengths from which [`attention`] runs each head as two GEMMs.
const GEMM_FROM: usize = 32;

/// One (batch row, head) of long-sequence attention: `S = Q Kᵀ · scale`
/// (GEMM), masked row softmax, `O = S V` (GEMM) -> `[sq, d]`. Q, K and V are
/// read in place through strides (their rows are `hd` apart).
#[allow(clippy::too_many_arguments)]
fn head_gemm(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (sq, sk, hd, d): (usize, usize, usize, usize),
    h: usize,
    visible_of: impl Fn(usize) -> usize,
) -> Vec<f32> {
    let mut s = vec![0f32; sq * sk];
    let mut o = vec![0f32; sq * d];
    let scale = 1.0 / (d as f32).sqrt();
    let (q, k, v) = (&q[h * d..], &k[h * d..], &v[h * d..]);
    // SAFETY: every pointer/stride pair stays inside its slice: Q is sq rows
    // of hd (d used), K and V are sk rows of hd (d used), S is sq × sk, O sq × d.
    unsafe {
        gemm::gemm(
            sq,
            sk,
            d,
            s.as_mut_ptr(),
            1,
            sk as isize,
            false,
            q.as_ptr(),
            1,
            hd as isize,
            k.as_ptr(),
            hd as isize,
            1,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    for (i, row) in s.chunks_mut(sk).enumerate() {
        let n = visible_of(i);
        softmax(&mut row[..n]);
        row[n..].fill(0.0);
    }
    // SAFETY: as above.
    unsafe {
        gemm::gemm(
            sq,
            d,
            sk,
            o.as_mut_ptr(),
            1,
            d as isize,
            false,
            s.as_ptr(),
            1,
            sk as isize,
            v.as_ptr(),
            1,
            hd as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    o
}

/// `q [b, sq, h·d]`, `k`, `v [b, sk, h·d]` -> `[b, sq, h·d]`. Long sequences
/// (ViT, BLIP's 577 image tokens) run each (batch row, head) as two GEMMs in
/// parallel; short ones (captions, decoding) run query rows in parallel, each
/// computing all heads into its own contiguous output row.
pub fn attention(
    q: &CpuTensor,
    k: &CpuTensor,
    v: &CpuTensor,
    heads: usize,
    mask: &Mask,
) -> Result<CpuTensor> {
    check::attention(&q.shape, &k.shape, &v.shape, heads, mask)?;
    let (b, sq, hd) = (q.shape[0], q.shape[1], q.shape[2]);
    let sk = k.shape[1];
    let d = hd / heads;
    let (qv, kv, vv) = (q.f32(), k.f32(), v.f32());
    let mut out = vec![0f32; b * sq * hd];
    if sq >= GEMM_FROM && sk >= GEMM_FROM {
        let heads_out: Vec<Vec<f32>> = (0..b * heads)
            .into_par_iter()
            .map(|t| {
                let (bi, h) = (t / heads, t % heads);
                head_gemm(
                    &qv[bi * sq * hd..(bi + 1) * sq * hd],
                    &kv[bi * sk * hd..(bi + 1) * sk * hd],
                    &vv[bi * sk * hd..(bi + 1) * sk * hd],
                    (sq, sk, hd, d),
                    h,
                    |i| visible(mask, bi, i, sk),
                )
            })
            .collect();
        for (t, o) in heads_out.iter().enumerate() {
            let (bi, h) = (t / heads, t % heads);
            for (i, r) in o.chunks(d).enumerate() {
                let at = (bi * sq + i) * hd + h * d;
                out[at..at + d].copy_from_slice(r);
            }
        }
        return Ok(CpuTensor::from_f32(&q.shape, out));
    }
    out.par_chunks_mut(hd).enumerate().for_each(|(row, o)| {
        let (bi, i) = (row / sq, row % sq);
        let n = visible(mask, bi, i, sk);
        let (ks, vs) = (&kv[bi * sk * hd..], &vv[bi * sk * hd..]);
        for (h, oh) in o.chunks_mut(d).enumerate() {
            head_attend(&qv[row * hd + h * d..][..d], ks, vs, n, hd, h * d, oh);
        }
    });
    Ok(CpuTensor::from_f32(&q.shape, out))
}

/// A KV cache in host memory: per slot, key and value rows of `width`, grown
/// on demand (memory follows the longest sequence a slot has held, not the
/// capacity).
#[derive(Debug, Clone)]
pub struct CpuKvCache {
    width: usize,
    capacity: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl CpuKvCache {
    pub fn new(slots: usize, capacity: usize, width: usize) -> CpuKvCache {
        CpuKvCache {
            width,
            capacity,
            k: vec![Vec::new(); slots],
            v: vec![Vec::new(); slots],
        }
    }
}

pub fn kv_store(cache: &mut CpuKvCache, k: &CpuTensor, v: &CpuTensor, at: &[Pos]) -> Result<()> {
    let w = cache.width;
    check::kv_store(&k.shape, &v.shape, w, cache.k.len(), cache.capacity, at)?;
    let (kv, vv) = (k.f32(), v.f32());
    for (i, p) in at.iter().enumerate() {
        for (store, src) in [(&mut cache.k[p.slot], &kv), (&mut cache.v[p.slot], &vv)] {
            if store.len() < (p.pos + 1) * w {
                store.resize((p.pos + 1) * w, 0.0);
            }
            store[p.pos * w..(p.pos + 1) * w].copy_from_slice(&src[i * w..(i + 1) * w]);
        }
    }
    Ok(())
}

pub fn kv_copy(cache: &mut CpuKvCache, moves: &[(usize, usize)], len: usize) -> Result<()> {
    check::kv_copy(moves, len, cache.k.len(), cache.capacity)?;
    let n = len * cache.width;
    for store in [&mut cache.k, &mut cache.v] {
        let src: Vec<Vec<f32>> = moves
            .iter()
            .map(|&(from, _)| store[from][..n.min(store[from].len())].to_vec())
            .collect();
        for (&(_, to), s) in moves.iter().zip(src) {
            let dst = &mut store[to];
            if dst.len() < s.len() {
                dst.resize(s.len(), 0.0);
            }
            dst[..s.len()].copy_from_slice(&s);
        }
    }
    Ok(())
}

/// Softmax-weighted sum of one head over `n` cached rows (the shared inner
/// loop of the cached attention). `k` and `v` hold rows of `w` floats; the
/// head is the `qr.len()` floats at `off` of each.
fn head_attend(qr: &[f32], k: &[f32], v: &[f32], n: usize, w: usize, off: usize, o: &mut [f32]) {
    let d = qr.len();
    let scale = 1.0 / (d as f32).sqrt();
    let mut scores = vec![0f32; n];
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(8) && super::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA; rows j < n of `k` and `v` hold
        // `off + d` floats at stride `w` (checked by the callers' shape checks).
        unsafe {
            avx2::scores(qr, k, w, off, scale, &mut scores);
            softmax(&mut scores);
            avx2::weighted_sum(&scores, v, w, off, o);
        }
        return;
    }
    for (j, s) in scores.iter_mut().enumerate() {
        *s = dot(qr, &k[j * w + off..][..d]) * scale;
    }
    softmax(&mut scores);
    o.fill(0.0);
    for (j, wt) in scores.iter().enumerate() {
        let vr = &v[j * w + off..][..d];
        o.iter_mut().zip(vr).for_each(|(a, b)| *a += wt * b);
    }
}

/// The cached attention's two loops, eight lanes at a time: one query
/// against four keys per pass (one horizontal reduction for all four), and
/// the weighted sum with up to 64 output values held in registers while every
/// value row streams past once.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `out[j] = (q · k[j·w + off ..][..d]) · scale`, `d = q.len()` a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(q: &[f32], k: &[f32], w: usize, off: usize, scale: f32, out: &mut [f32]) {
        let (d, n) = (q.len(), out.len());
        assert!(d.is_multiple_of(8) && (n == 0 || k.len() >= (n - 1) * w + off + d));
        let row = |j: usize| k[j * w + off..].as_ptr();
        let mut j = 0;
        // SAFETY: every load reads 8 floats at t < d of `q` or of a key row
        // j < n, all inside `k` (asserted above); stores write `out[j..j + 4]`.
        unsafe {
            while j + 4 <= n {
                let mut acc = [_mm256_setzero_ps(); 4];
                for t in (0..d).step_by(8) {
                    let qv = _mm256_loadu_ps(q.as_ptr().add(t));
                    for (i, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(row(j + i).add(t)), *a);
                    }
                }
                let h = _mm256_hadd_ps(
                    _mm256_hadd_ps(acc[0], acc[1]),
                    _mm256_hadd_ps(acc[2], acc[3]),
                );
                let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                _mm_storeu_ps(out.as_mut_ptr().add(j), _mm_mul_ps(s, _mm_set1_ps(scale)));
                j += 4;
            }
        }
        for (jj, o) in out.iter_mut().enumerate().skip(j) {
            *o = super::dot(q, &k[jj * w + off..][..d]) * scale;
        }
    }

    /// `o = Σ_j p[j] · v[j·w + off ..][..d]`, `d = o.len()` a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(p: &[f32], v: &[f32], w: usize, off: usize, o: &mut [f32]) {
        let (d, n) = (o.len(), p.len());
        assert!(d.is_multiple_of(8) && (n == 0 || v.len() >= (n - 1) * w + off + d));
        for c0 in (0..d).step_by(64) {
            let lanes = (d - c0).min(64) / 8;
            let mut acc = [_mm256_setzero_ps(); 8];
            // SAFETY: loads read 8 floats at c0 + 8i < d of value rows j < n
            // (asserted above); stores write o[c0 + 8i ..][..8] with c0 + 8i < d.
            unsafe {
                for (j, pj) in p.iter().enumerate() {
                    let pv = _mm256_set1_ps(*pj);
                    let r = v.as_ptr().add(j * w + off + c0);
                    if lanes == 8 {
                        for (i, a) in acc.iter_mut().enumerate() {
                            *a = _mm256_fmadd_ps(pv, _mm256_loadu_ps(r.add(8 * i)), *a);
                        }
                    } else {
                        for (i, a) in acc.iter_mut().enumerate().take(lanes) {
                            *a = _mm256_fmadd_ps(pv, _mm256_loadu_ps(r.add(8 * i)), *a);
                        }
                    }
                }
                for (i, a) in acc.iter().enumerate().take(lanes) {
                    _mm256_storeu_ps(o.as_mut_ptr().add(c0 + 8 * i), *a);
                }
            }
        }
    }
}

/// Plain reference of [`kv_attention`] over explicit per-slot key/value rows.
pub fn kv_attention_ref(
    q: &[f32],
    keys: &[Vec<f32>],
    values: &[Vec<f32>],
    width: usize,
    at: &[Pos],
    heads: usize,
) -> Vec<f32> {
    let hd = q.len() / at.len().max(1);
    let d = hd / heads;
    let group = heads / (width / d);
    let mut out = vec![0f32; q.len()];
    for (i, p) in at.iter().enumerate() {
        for h in 0..heads {
            let off = (h / group) * d;
            let row = i * hd + h * d;
            let (ks, vs) = (&keys[p.slot], &values[p.slot]);
            attend_ref(
                &q[row..row + d],
                p.pos + 1,
                |j| &ks[j * width + off..][..d],
                |j| &vs[j * width + off..][..d],
                &mut out[row..row + d],
            );
        }
    }
    out
}

/// Cached attention, query rows in parallel (grouped-query heads share a
/// cached head).
pub fn kv_attention(
    q: &CpuTensor,
    cache: &CpuKvCache,
    at: &[Pos],
    heads: usize,
) -> Result<CpuTensor> {
    let w = cache.width;
    let (_, d, kv_heads) =
        check::kv_attention(&q.shape, w, cache.k.len(), cache.capacity, at, heads)?;
    if let Some(p) = at.iter().find(|p| cache.k[p.slot].len() < (p.pos + 1) * w) {
        return Err(crate::KernelError::Shape {
            op: "kv_attention",
            detail: format!(
                "slot {} has no keys stored up to position {}",
                p.slot, p.pos
            ),
        });
    }
    let group = heads / kv_heads;
    let qv = q.f32();
    let hd = heads * d;
    let mut out = vec![0f32; at.len() * hd];
    out.par_chunks_mut(hd)
        .zip(at)
        .enumerate()
        .for_each(|(i, (o, p))| {
            let (k, v) = (&cache.k[p.slot], &cache.v[p.slot]);
            for (h, oh) in o.chunks_mut(d).enumerate() {
                let qr = &qv[i * hd + h * d..][..d];
                head_attend(qr, k, v, p.pos + 1, w, (h / group) * d, oh);
            }
        });
    Ok(CpuTensor::from_f32(&q.shape, out))
}
