//! Normalisations over the last axis: LayerNorm, RMSNorm and L2.

use rayon::prelude::*;

use super::CpuTensor;
use crate::backend::{Result, check};

/// Plain LayerNorm: two passes in f64 per row.
pub fn layer_norm_ref(x: &[f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for i in 0..d {
            out.push(((row[i] as f64 - mean) * inv) as f32 * gamma[i] + beta[i]);
        }
    }
    out
}

/// `(Σ v, Σ v²)` of a row in f64, in eight independent lanes: one running
/// f64 sum would wait on the adder's latency at every element.
fn sums(row: &[f32]) -> (f64, f64) {
    let (mut s, mut s2) = ([0f64; 8], [0f64; 8]);
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            let v = c[i] as f64;
            s[i] += v;
            s2[i] += v * v;
        }
    }
    let tail = chunks.remainder();
    (
        s.iter().sum::<f64>() + tail.iter().map(|&v| v as f64).sum::<f64>(),
        s2.iter().sum::<f64>() + tail.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>(),
    )
}

/// LayerNorm, rows in parallel, one fused pass for the moments.
pub fn layer_norm(
    x: &CpuTensor,
    gamma: &CpuTensor,
    beta: &CpuTensor,
    eps: f32,
) -> Result<CpuTensor> {
    let d = check::layer_norm(&x.shape, &gamma.shape, &beta.shape)?;
    let (g, b) = (gamma.f32(), beta.f32());
    let mut out = x.f32().into_owned();
    out.par_chunks_mut(d).for_each(|row| {
        let (s, s2) = sums(row);
        let mean = s / d as f64;
        let var = (s2 / d as f64 - mean * mean).max(0.0);
        let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
        let mean = mean as f32;
        for ((v, gi), bi) in row.iter_mut().zip(g.iter()).zip(b.iter()) {
            *v = (*v - mean) * inv * gi + bi;
        }
    });
    Ok(CpuTensor::from_f32(&x.shape, out))
}

/// Plain RMSNorm (HF `LlamaRMSNorm`): f64 mean of squares per row.
pub fn rms_norm_ref(x: &[f32], d: usize, gamma: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (ms + eps as f64).sqrt();
        out.extend(
            row.iter()
                .zip(gamma)
                .map(|(&v, &g)| (v as f64 * inv) as f32 * g),
        );
    }
    out
}

/// RMSNorm, rows in parallel.
pub fn rms_norm(x: &CpuTensor, gamma: &CpuTensor, eps: f32) -> Result<CpuTensor> {
    let d = check::rms_norm(&x.shape, &gamma.shape)?;
    let g = gamma.f32();
    let mut out = x.f32().into_owned();
    out.par_chunks_mut(d).for_each(|row| {
        let ms = sums(row).1 / d as f64;
        let inv = (1.0 / (ms + eps as f64).sqrt()) as f32;
        row.iter_mut()
            .zip(g.iter())
            .for_each(|(v, gi)| *v = *v * inv * gi);
    });
    Ok(CpuTensor::from_f32(&x.shape, out))
}

/// Each row of length `d` scaled to unit norm; PyTorch's `F.normalize` clamps the norm at 1e-12.
pub fn l2_normalize(x: &[f32], d: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    out.par_chunks_mut(d.max(1)).for_each(|row| {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= n);
    });
    out
}
