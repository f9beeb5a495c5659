//! Rotary position embeddings in the HF `rotate_half` layout: within each
//! head, element `i` pairs with `i + d/2`.

use rayon::prelude::*;

use super::CpuTensor;
use crate::backend::{Result, Rope, check};

/// Plain reference: angles and rotations in f64.
pub fn rope_ref(x: &[f32], d: usize, positions: &[usize], rope: Rope<'_>) -> Vec<f32> {
    let half = d / 2;
    let w = x.len() / positions.len().max(1);
    let mut out = x.to_vec();
    for (r, &p) in positions.iter().enumerate() {
        for h in 0..w / d {
            let base = r * w + h * d;
            for i in 0..half {
                let a = p as f64 * rope.inv_freq[i] as f64;
                let (s, c) = (a.sin() * rope.scale as f64, a.cos() * rope.scale as f64);
                let (x1, x2) = (x[base + i] as f64, x[base + half + i] as f64);
                out[base + i] = (x1 * c - x2 * s) as f32;
                out[base + half + i] = (x2 * c + x1 * s) as f32;
            }
        }
    }
    out
}

/// Rows in parallel; the angle is formed in f32 as PyTorch does
/// (`inv_freq @ position_ids` in float32), then rotated.
pub fn rope(x: &CpuTensor, heads: usize, positions: &[usize], rope: Rope<'_>) -> Result<CpuTensor> {
    let (_, d) = check::rope(&x.shape, heads, positions, rope.inv_freq)?;
    let half = d / 2;
    let w = heads * d;
    let mut out = x.f32().into_owned();
    out.par_chunks_mut(w).zip(positions).for_each(|(row, &p)| {
        let cs: Vec<(f32, f32)> = rope
            .inv_freq
            .iter()
            .map(|&f| {
                let a = p as f32 * f;
                (a.cos() * rope.scale, a.sin() * rope.scale)
            })
            .collect();
        for head in row.chunks_mut(d) {
            let (x1, x2) = head.split_at_mut(half);
            for ((a, b), &(c, s)) in x1.iter_mut().zip(x2.iter_mut()).zip(&cs) {
                let (u, v) = (*a, *b);
                *a = u * c - v * s;
                *b = v * c + u * s;
            }
        }
    });
    Ok(CpuTensor::from_f32(&x.shape, out))
}
