//! Fused multi-head attention: scores, mask, softmax and the weighted sum in
//! one pass per query row, never materialising the `[b, h, sq, sk]` tensor.

use rayon::prelude::*;

use super::CpuTensor;
use crate::backend::{Mask, Result, check};

/// How many keys query `i` of batch row `b` may see.
fn visible(mask: &Mask, b: usize, i: usize, sk: usize) -> usize {
    let mut n = mask.key_lens.as_ref().map_or(sk, |l| l[b].min(sk));
    if mask.causal {
        n = n.min(i + 1);
    }
    n
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
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f32; b * sq * hd];
    for bi in 0..b {
        for h in 0..heads {
            for i in 0..sq {
                let n = visible(mask, bi, i, sk);
                let qr = &q[(bi * sq + i) * hd + h * d..][..d];
                let scores: Vec<f64> = (0..n)
                    .map(|j| {
                        let kr = &k[(bi * sk + j) * hd + h * d..][..d];
                        qr.iter()
                            .zip(kr)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for t in 0..d {
                    let acc: f64 = (0..n)
                        .map(|j| e[j] / z * v[(bi * sk + j) * hd + h * d + t] as f64)
                        .sum();
                    out[(bi * sq + i) * hd + h * d + t] = acc as f32;
                }
            }
        }
    }
    out
}

/// `q [b, sq, h·d]`, `k`, `v [b, sk, h·d]` -> `[b, sq, h·d]`. Query rows run in
/// parallel; each computes all heads into its own contiguous output row.
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
    let scale = 1.0 / (d as f32).sqrt();
    let (qv, kv, vv) = (q.f32(), k.f32(), v.f32());
    let mut out = vec![0f32; b * sq * hd];
    out.par_chunks_mut(hd).enumerate().for_each(|(row, o)| {
        let (bi, i) = (row / sq, row % sq);
        let n = visible(mask, bi, i, sk);
        let mut scores = vec![0f32; n];
        for h in 0..heads {
            let qr = &qv[row * hd + h * d..][..d];
            let mut mx = f32::NEG_INFINITY;
            for (j, s) in scores.iter_mut().enumerate() {
                let kr = &kv[(bi * sk + j) * hd + h * d..][..d];
                *s = qr.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>() * scale;
                mx = mx.max(*s);
            }
            let mut z = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - mx).exp();
                z += *s;
            }
            let oh = &mut o[h * d..(h + 1) * d];
            for (j, s) in scores.iter().enumerate() {
                let w = s / z;
                let vr = &vv[(bi * sk + j) * hd + h * d..][..d];
                oh.iter_mut().zip(vr).for_each(|(a, b)| *a += w * b);
            }
        }
    });
    Ok(CpuTensor::from_f32(&q.shape, out))
}
