//! Dense layers: `y = x · wᵀ + b` through the `gemm` crate (multi-threaded,
//! runtime-dispatched SIMD).

use super::CpuTensor;
use crate::backend::{Result, check};

/// Plain triple loop, f64 accumulation: the reference.
pub fn linear_ref(x: &[f32], w: &[f32], b: Option<&[f32]>, k: usize, n: usize) -> Vec<f32> {
    let m = x.len() / k;
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = b.map_or(0.0, |b| b[j] as f64);
            for t in 0..k {
                acc += x[i * k + t] as f64 * w[j * k + t] as f64;
            }
            out[i * n + j] = acc as f32;
        }
    }
    out
}

/// `x [.., k] · wᵀ (+ b)` with `w [n, k]`.
pub fn linear(x: &CpuTensor, w: &CpuTensor, b: Option<&CpuTensor>) -> Result<CpuTensor> {
    let (m, k, n) = check::linear(&x.shape, &w.shape, b.map(|b| b.shape.as_slice()))?;
    let (xv, wv) = (x.f32(), w.f32());
    let mut out = match b {
        Some(b) => b.f32().repeat(m),
        None => vec![0f32; m * n],
    };
    // SAFETY: every pointer/stride pair describes a buffer of exactly the
    // extent gemm reads or writes: dst m×n row-major, lhs m×k row-major,
    // rhs k×n read from w[n, k] row-major (column stride k, row stride 1).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            b.is_some(),
            xv.as_ptr(),
            1,
            k as isize,
            wv.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has at least one axis") = n;
    Ok(CpuTensor::from_f32(&shape, out))
}
