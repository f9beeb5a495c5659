//! Dense layers: `y = x · wᵀ + b` through the `gemm` crate (multi-threaded,
//! runtime-dispatched SIMD), except for few rows (decoding batches), where
//! the `gemm` crate's packing of the whole weight matrix on every call costs
//! as much as the product: there, [`small_m`] streams each weight row once
//! against all input rows (AVX2/FMA when the CPU has them; stored f16, bf16
//! and Q4/Q8 rows decoded in AVX-512 or AVX2 registers by [`super::stored`]).

use super::{CpuTensor, Data};
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

/// The weight matrix of [`small_m`]: f32 values, or a tensor's storage.
#[derive(Clone, Copy)]
pub enum WeightRows<'a> {
    F32(&'a [f32]),
    Stored(&'a Data),
}

/// Most rows for which [`small_m`] beats the packed GEMM.
pub const SMALL_M: usize = 16;
/// The same for block-quantised weights (decoding batches of up to 64).
pub const QUANT_SMALL_M: usize = 64;

/// `out [m, n] += x [m, k] · w [n, k]ᵀ`, weight rows in parallel chunks:
/// each task takes 4 weight rows at a time (kept in L1) against every input
/// row, two input rows per pass, so one pass does 8 dot products.
/// Half-precision rows are widened four at a time into a task-local buffer,
/// so a checkpoint's f16/bf16 weights are read at half the bytes and never
/// converted whole.
pub fn small_m(x: &[f32], w: WeightRows<'_>, out: &mut [f32], m: usize, k: usize, n: usize) {
    small_m_with(x, w, out, m, k, n, true);
}

/// [`small_m`]; `registers: false` always widens stored rows into the
/// buffer, never decoding them in registers ([`super::stored`]): the peer
/// `kernels/benches/gemm.rs` measures that path against.
pub fn small_m_with(
    x: &[f32],
    w: WeightRows<'_>,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    registers: bool,
) {
    use rayon::prelude::*;
    // Columns per task: enough work per task, enough tasks per thread.
    const COLS: usize = 64;
    let fast = super::avx2_fma();
    // f32 storage is read in place.
    let w = match w {
        WeightRows::Stored(Data::F32(v)) => WeightRows::F32(v),
        other => other,
    };
    // Stored rows the CPU can decode in registers skip the widening buffer;
    // past `SMALL_M` rows decoding once per four x rows costs more than
    // widening once (kernels/benches/gemm.rs).
    let decode = match w {
        WeightRows::Stored(d) if registers && m <= SMALL_M && super::stored::supports(d, k) => {
            Some(d)
        }
        _ => None,
    };
    let sums = decode.map_or_else(Vec::new, |d| super::stored::block_sums(x, d, m, k));
    // Transposed result: column j's m values together, so tasks own disjoint slices.
    let mut t = vec![0f32; n * m];
    t.par_chunks_mut(COLS * m).enumerate().for_each(|(c, tc)| {
        let j0 = c * COLS;
        let cols = tc.len() / m;
        if let Some(d) = decode {
            super::stored::rows(x, &sums, d, j0, cols, m, k, tc);
            return;
        }
        let mut jj = 0;
        let mut wide = Vec::new();
        while jj < cols {
            let r = (cols - jj).min(4);
            let row = |q: usize| (j0 + jj + q.min(r - 1)) * k;
            let rows: [&[f32]; 4] = match w {
                WeightRows::F32(w) => std::array::from_fn(|q| &w[row(q)..][..k]),
                WeightRows::Stored(half) => {
                    wide.clear();
                    for q in 0..4 {
                        half.extend_f32(row(q), k, &mut wide);
                    }
                    std::array::from_fn(|q| &wide[q * k..][..k])
                }
            };
            let mut acc = [0f32; 4 * 64];
            let acc = &mut acc[..4 * m.min(64)];
            for i0 in (0..m).step_by(64) {
                let mm = (m - i0).min(64);
                let xs = &x[i0 * k..(i0 + mm) * k];
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { block_avx2(xs, k, rows, &mut acc[..4 * mm]) };
                } else {
                    block_portable(xs, k, rows, &mut acc[..4 * mm]);
                }
                #[cfg(not(target_arch = "x86_64"))]
                block_portable(xs, k, rows, &mut acc[..4 * mm]);
                for q in 0..r {
                    tc[(jj + q) * m + i0..(jj + q) * m + i0 + mm]
                        .copy_from_slice(&acc[q * mm..(q + 1) * mm]);
                }
            }
            jj += r;
        }
    });
    let _ = fast;
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] += t[j * m + i];
        }
    }
}

/// `a · b` (AVX2/FMA when the CPU has them; the attention scores use it too).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { dot_avx2(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let n8 = n / 8 * 8;
    let mut s = _mm256_setzero_ps();
    let mut t = 0;
    let mut l = [0f32; 8];
    // SAFETY: every load reads 8 floats at t < n8 <= n of both slices.
    unsafe {
        while t < n8 {
            s = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(t)),
                _mm256_loadu_ps(b.as_ptr().add(t)),
                s,
            );
            t += 8;
        }
        _mm256_storeu_ps(l.as_mut_ptr(), s);
    }
    l.iter().sum::<f32>()
        + a[n8..n]
            .iter()
            .zip(&b[n8..n])
            .map(|(x, y)| x * y)
            .sum::<f32>()
}

/// `acc[q·m + i] = x_i · rows[q]` for the `m = x.len() / k` rows of `x`.
fn block_portable(x: &[f32], k: usize, rows: [&[f32]; 4], acc: &mut [f32]) {
    let m = x.len() / k;
    for (i, xi) in x.chunks_exact(k).enumerate() {
        for (q, r) in rows.iter().enumerate() {
            acc[q * m + i] = xi.iter().zip(r.iter()).map(|(a, b)| a * b).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(x: &[f32], k: usize, rows: [&[f32]; 4], acc: &mut [f32]) {
    use std::arch::x86_64::*;
    let m = x.len() / k;
    let k8 = k / 8 * 8;
    let hsum = |v: __m256| -> f32 {
        let mut l = [0f32; 8];
        // SAFETY: stores 8 floats into an 8-float array.
        unsafe { _mm256_storeu_ps(l.as_mut_ptr(), v) };
        l.iter().sum()
    };
    let tail =
        |xi: &[f32], r: &[f32]| -> f32 { xi[k8..].iter().zip(&r[k8..]).map(|(a, b)| a * b).sum() };
    let mut i = 0;
    while i < m {
        let two = i + 1 < m;
        let xa = &x[i * k..(i + 1) * k];
        let xb = if two {
            &x[(i + 1) * k..(i + 2) * k]
        } else {
            xa
        };
        // SAFETY: every load reads 8 floats at t < k8 <= k of a k-long slice.
        unsafe {
            let mut s = [_mm256_setzero_ps(); 8];
            let mut t = 0;
            while t < k8 {
                let a = _mm256_loadu_ps(xa.as_ptr().add(t));
                let b = _mm256_loadu_ps(xb.as_ptr().add(t));
                for q in 0..4 {
                    let wv = _mm256_loadu_ps(rows[q].as_ptr().add(t));
                    s[q] = _mm256_fmadd_ps(a, wv, s[q]);
                    s[4 + q] = _mm256_fmadd_ps(b, wv, s[4 + q]);
                }
                t += 8;
            }
            for q in 0..4 {
                acc[q * m + i] = hsum(s[q]) + tail(xa, rows[q]);
                if two {
                    acc[q * m + i + 1] = hsum(s[4 + q]) + tail(xb, rows[q]);
                }
            }
        }
        i += 2;
    }
}

/// `x [.., k] · wᵀ (+ b)` with `w [n, k]`.
pub fn linear(x: &CpuTensor, w: &CpuTensor, b: Option<&CpuTensor>) -> Result<CpuTensor> {
    let (m, k, n) = check::linear(&x.shape, &w.shape, b.map(|b| b.shape.as_slice()))?;
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has at least one axis") = n;
    if m == 0 {
        return Ok(CpuTensor::from_f32(&shape, Vec::new()));
    }
    let mut out = match b {
        Some(b) => b.f32().repeat(m),
        None => vec![0f32; m * n],
    };
    accumulate(&x.f32(), w, &mut out, m, k, n);
    Ok(CpuTensor::from_f32(&shape, out))
}

/// `out [m, n] += x [m, k] · wᵀ`, by the streaming kernel for few rows, AMX
/// tiles for a bf16 weight where the CPU has them, else the `gemm` crate.
pub fn accumulate(x: &[f32], w: &CpuTensor, out: &mut [f32], m: usize, k: usize, n: usize) {
    // Block-quantised weights would be dequantised whole for the packed
    // GEMM: up to `QUANT_SMALL_M` rows the streaming kernel's four rows at a
    // time cost less.
    let small = match w.data {
        Data::Quant(..) => QUANT_SMALL_M,
        _ => SMALL_M,
    };
    if m <= small {
        small_m(x, WeightRows::Stored(&w.data), out, m, k, n);
    } else if matches!(w.data, Data::BF16(_)) && super::amx::available() {
        // A bf16 checkpoint runs bf16 GEMMs where the CPU has AMX tiles, as
        // PyTorch runs a bf16 model (and CUDA's `auto` precision does).
        super::amx::linear(x, &w.data, out, m, k, n);
    } else {
        // The product dominates the widening (more rows than the crossover).
        large_m(x, &w.f32_par(), out, m, k, n);
    }
}

/// `out [m, n] += x [m, k] · w [n, k]ᵀ` through the `gemm` crate.
pub fn large_m(x: &[f32], w: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    // SAFETY: every pointer/stride pair describes a buffer of exactly the
    // extent gemm reads or writes (asserted above): dst m×n row-major, lhs
    // m×k row-major, rhs k×n read from w[n, k] row-major (column stride k,
    // row stride 1).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
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
}
