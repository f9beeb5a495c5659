//! Dense layers: `y = x · wᵀ + b` through the `gemm` crate (multi-threaded,
//! runtime-dispatched SIMD), except for few rows (decoding batches), where
//! the `gemm` crate's packing of the whole weight matrix on every call costs
//! as much as the product: there, [`small_m`] streams each weight row once
//! against all input rows (AVX-512 or AVX2/FMA when the CPU has them; stored
//! f16 and bf16 rows decoded in AVX-512 or AVX2 registers by
//! [`super::stored`], GGML Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K blocks by 8-bit activations in
//! integer dot products, [`super::int8`]), and [`small_m_many`] runs a layer's
//! products on one input (q/k/v, gate/up) as one parallel pass. GGML blocks
//! multiply 8-bit activations on every path, as llama.cpp does.

use super::int8::{self, Q8Rows};
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
/// The same for block-quantised weights, and for f16/bf16 weights where no
/// bf16 GEMM takes them (decoding batches of up to 64).
pub const STORED_SMALL_M: usize = 64;
/// Most rows for which block-quantised weights stream through the integer
/// tiles where the CPU has them ([`int8::tiles_many_rows`]): a prompt of a
/// few hundred tokens would otherwise widen every matrix whole to f32 for
/// few rows (a 1B-size model's 128-token prefill: 4 GB written per
/// prompt); past it the f32 GEMM's rate pays for the widening (SmolLM2's
/// 4096-row prefill at batch 32: 679 against 404 tokens/s with tiles).
pub const TILES_M: usize = 512;

/// `out [m, n] += x [m, k] · w [n, k]ᵀ`, weight rows in parallel chunks:
/// each task takes 4 weight rows at a time (kept in L1) against every input
/// row, four input rows per pass on AVX-512 (16 dot products), two on AVX2.
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
    small_m_many(x, &mut [(w, &mut out[..m * n])], m, k, registers, false);
}

/// [`small_m`] of one `x [m, k]` by several weights `(w [n, k], out [m, n])`
/// (a layer's q/k/v or gate/up projections) as one parallel pass: the pool
/// is woken once for all of them, which at batch 1 costs as much as the
/// smaller products themselves. `exact`: as [`linear`]'s.
pub fn small_m_many(
    x: &[f32],
    products: &mut [(WeightRows<'_>, &mut [f32])],
    m: usize,
    k: usize,
    registers: bool,
    exact: bool,
) {
    use rayon::prelude::*;
    // Columns per task: enough work per task, enough tasks per thread.
    const COLS: usize = 64;
    if m == 0 {
        return;
    }
    let x = Input::new(x, products.iter().map(|p| p.0), m, k, registers, exact);
    // Transposed results: column j's m values together, so tasks own
    // disjoint slices.
    let mut ts: Vec<Vec<f32>> = products.iter().map(|p| vec![0f32; p.1.len()]).collect();
    let tasks: Vec<(WeightRows<'_>, usize, &mut [f32])> = ts
        .iter_mut()
        .zip(products.iter().map(|p| p.0))
        .flat_map(|(t, w)| {
            t.chunks_mut(COLS * m)
                .enumerate()
                .map(move |(c, tc)| (w, c * COLS, tc))
        })
        .collect();
    let run =
        |(w, j0, tc): (WeightRows<'_>, usize, &mut [f32])| columns(&x, w, j0, tc, m, k, registers);
    // One thread: no hand-off to the pool at all.
    if rayon::current_num_threads() == 1 {
        tasks.into_iter().for_each(run);
    } else {
        tasks.into_par_iter().for_each(run);
    }
    for ((_, out), t) in products.iter_mut().zip(&ts) {
        add_transposed(out, t, m);
    }
}

/// `out [m, n] += tᵀ` for `t [n, m]`: rows of out in parallel for a
/// prompt's thousands, 16 columns at a time so that the 16 rows of t read
/// stay in cache (column by column, each read of t was a cache line and
/// page apart: a quarter of a 4096-row prefill).
fn add_transposed(out: &mut [f32], t: &[f32], m: usize) {
    use rayon::prelude::*;
    const COLS: usize = 16;
    const ROWS_A_TASK: usize = 64;
    let n = t.len() / m;
    if n == 0 {
        return;
    }
    let rows = |(b, out): (usize, &mut [f32])| {
        let i0 = b * ROWS_A_TASK;
        for j0 in (0..n).step_by(COLS) {
            let j1 = (j0 + COLS).min(n);
            for (i, row) in out.chunks_exact_mut(n).enumerate() {
                for (j, o) in row[j0..j1].iter_mut().enumerate() {
                    *o += t[(j0 + j) * m + i0 + i];
                }
            }
        }
    };
    match m > ROWS_A_TASK && rayon::current_num_threads() > 1 {
        true => out
            .par_chunks_mut(ROWS_A_TASK * n)
            .enumerate()
            .for_each(rows),
        false => out.chunks_mut(ROWS_A_TASK * n).enumerate().for_each(rows),
    }
}

/// What the products of one [`small_m_many`] pass read of x: its f32 rows,
/// and where GGML blocks take 8-bit activations ([`super::int8`]), x
/// quantised once for all of them: as integers, or rounded in f32 where the
/// weights are widened instead (many rows without AVX-512 VNNI, and
/// `registers: false`, the benchmark's peer).
struct Input<'a> {
    x: &'a [f32],
    q: Option<Q8Rows>,
    rounded: Option<Vec<f32>>,
}

impl<'a> Input<'a> {
    fn new<'w>(
        x: &'a [f32],
        ws: impl Iterator<Item = WeightRows<'w>>,
        m: usize,
        k: usize,
        registers: bool,
        exact: bool,
    ) -> Input<'a> {
        // One d per 256 values where any weight is a K-quant (the others'
        // kernels read a block's d wherever it came from).
        let span = ws
            .filter_map(|w| match w {
                WeightRows::Stored(d) => int8::span(d, k),
                _ => None,
            })
            .max()
            .filter(|_| !exact);
        // The integers, unless asked to widen the weights (the benchmark's
        // peer) or where many rows widen faster.
        let integers = registers && (m <= SMALL_M || int8::tiles_many_rows());
        Input {
            x,
            q: span.filter(|_| integers).map(|s| Q8Rows::new(x, m, k, s)),
            rounded: span
                .filter(|_| !integers)
                .map(|s| int8::round(&x[..m * k], k, s)),
        }
    }
}

/// One task of [`small_m_many`]: `tc[(j - j0) · m + i] = x_i · w_j` for the
/// `tc.len() / m` weight rows from `j0`.
fn columns(
    input: &Input<'_>,
    w: WeightRows<'_>,
    j0: usize,
    tc: &mut [f32],
    m: usize,
    k: usize,
    registers: bool,
) {
    let (fast, wide512) = (super::avx2_fma(), super::avx512());
    let cols = tc.len() / m;
    let mut x = input.x;
    // f32 storage is read in place.
    let w = match w {
        WeightRows::Stored(Data::F32(v)) => WeightRows::F32(v),
        other => other,
    };
    // Stored rows the CPU can decode in registers skip the widening buffer;
    // past `SMALL_M` rows widening once costs less than decoding once per
    // four x rows (kernels/benches/gemm.rs, "stored weights").
    if let WeightRows::Stored(d) = w {
        match (&input.q, &input.rounded) {
            (Some(q), _) if int8::takes(d, k) => return int8::rows(q, d, j0, cols, tc),
            (_, Some(rounded)) if int8::takes(d, k) => x = rounded,
            _ if registers && m <= SMALL_M && super::stored::supports(d) => {
                return super::stored::rows(x, d, j0, cols, m, k, tc);
            }
            _ => {}
        }
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
            if wide512 {
                // SAFETY: the CPU has AVX-512F (checked above).
                unsafe { block_avx512(xs, k, rows, &mut acc[..4 * mm]) };
            } else if fast {
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
    let _ = (fast, wide512);
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

/// [`block_avx2`] 16 wide: four weight rows against four x rows a pass (16
/// accumulators), so each loaded vector serves four FMAs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn block_avx512(x: &[f32], k: usize, rows: [&[f32]; 4], acc: &mut [f32]) {
    use std::arch::x86_64::*;
    let m = x.len() / k;
    let (k16, tail) = (k / 16 * 16, k % 16);
    let mask: __mmask16 = ((1u32 << tail) - 1) as u16;
    let mut i = 0;
    while i < m {
        let r = (m - i).min(4);
        // Missing x rows repeat the last one (their sums are not stored).
        let xs: [&[f32]; 4] = std::array::from_fn(|q| &x[(i + q.min(r - 1)) * k..][..k]);
        // SAFETY: full loads read 16 floats at t < k16 <= k of k-long
        // slices; the masked tail reads only the `tail` floats below k.
        unsafe {
            let mut s = [[_mm512_setzero_ps(); 4]; 4];
            let mut t = 0;
            while t < k16 {
                // Index loops, not `array::from_fn` or iterators: their
                // generic code can land in another codegen unit and stay a
                // call per load (a batch-32 profile showed it).
                let mut wv = [_mm512_setzero_ps(); 4];
                for c in 0..4 {
                    wv[c] = _mm512_loadu_ps(rows[c].as_ptr().add(t));
                }
                for q in 0..4 {
                    let xv = _mm512_loadu_ps(xs[q].as_ptr().add(t));
                    for c in 0..4 {
                        s[q][c] = _mm512_fmadd_ps(xv, wv[c], s[q][c]);
                    }
                }
                t += 16;
            }
            if tail > 0 {
                let mut wv = [_mm512_setzero_ps(); 4];
                for c in 0..4 {
                    wv[c] = _mm512_maskz_loadu_ps(mask, rows[c].as_ptr().add(k16));
                }
                for q in 0..4 {
                    let xv = _mm512_maskz_loadu_ps(mask, xs[q].as_ptr().add(k16));
                    for c in 0..4 {
                        s[q][c] = _mm512_fmadd_ps(xv, wv[c], s[q][c]);
                    }
                }
            }
            for q in 0..r {
                for c in 0..4 {
                    acc[c * m + i + q] = _mm512_reduce_add_ps(s[q][c]);
                }
            }
        }
        i += r;
    }
}

/// `x [.., k] · wᵀ (+ b)` with `w [n, k]`.
/// `exact`: x stays f32 in every product (no 8-bit x for GGML blocks, no
/// bf16 GEMMs for bf16 weights; `Precision::F32`).
pub fn linear(
    x: &CpuTensor,
    w: &CpuTensor,
    b: Option<&CpuTensor>,
    exact: bool,
) -> Result<CpuTensor> {
    let (m, k, n) = check::linear(&x.shape, &w.shape, b.map(|b| b.shape.as_slice()))?;
    let (shape, mut out) = output(x, b, m, n);
    if m > 0 {
        accumulate(&x.f32(), w, &mut out, m, k, n, exact);
    }
    Ok(CpuTensor::from_f32(&shape, out))
}

/// The shape of `x · wᵀ` with `n` outputs, and its `m × n` values holding
/// the bias (or zeros) for the product to be added to.
fn output(x: &CpuTensor, b: Option<&CpuTensor>, m: usize, n: usize) -> (Vec<usize>, Vec<f32>) {
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has at least one axis") = n;
    let out = match b {
        Some(b) => b.f32().repeat(m),
        None => vec![0f32; m * n],
    };
    (shape, out)
}

/// [`linear`] of one `x` by several weights (with their biases): the
/// products that take the streaming kernel run as one parallel pass
/// ([`small_m_many`]), the others one by one.
pub fn linear_many(
    x: &CpuTensor,
    ws: &[(&CpuTensor, Option<&CpuTensor>)],
    exact: bool,
) -> Result<Vec<CpuTensor>> {
    let mut shapes = Vec::with_capacity(ws.len());
    for (w, b) in ws {
        shapes.push(check::linear(
            &x.shape,
            &w.shape,
            b.map(|b| b.shape.as_slice()),
        )?);
    }
    let m = shapes.first().map_or(0, |s| s.0);
    if m == 0 || !ws.iter().all(|(w, _)| streams(w, m)) {
        return ws.iter().map(|(w, b)| linear(x, w, *b, exact)).collect();
    }
    let k = shapes[0].1;
    let mut outs: Vec<(Vec<usize>, Vec<f32>)> = ws
        .iter()
        .zip(&shapes)
        .map(|((_, b), &(_, _, n))| output(x, *b, m, n))
        .collect();
    let mut products: Vec<(WeightRows<'_>, &mut [f32])> = ws
        .iter()
        .zip(outs.iter_mut())
        .map(|((w, _), (_, o))| (WeightRows::Stored(&w.data), o.as_mut_slice()))
        .collect();
    small_m_many(&x.f32(), &mut products, m, k, true, exact);
    Ok(outs
        .into_iter()
        .map(|(shape, o)| CpuTensor::from_f32(&shape, o))
        .collect())
}

/// Whether `m` rows by `w` take the streaming kernel ([`small_m`]).
/// Block-quantised weights would be dequantised whole for the packed GEMM,
/// half-precision ones widened whole: up to `STORED_SMALL_M` rows the
/// streaming kernel's four widened rows at a time cost less (for halves
/// where no bf16 GEMM takes them), and blocks up to `TILES_M` rows where
/// the CPU has the integer tiles.
fn streams(w: &CpuTensor, m: usize) -> bool {
    m <= match &w.data {
        Data::Quant(..) | Data::Packed { .. } if int8::tiles_many_rows() => TILES_M,
        Data::Quant(..) | Data::Packed { .. } => STORED_SMALL_M,
        Data::F16(_) | Data::BF16(_) if !super::bf16_gemm::available() => STORED_SMALL_M,
        _ => SMALL_M,
    }
}

/// `out [m, n] += x [m, k] · wᵀ`, by the streaming kernel for few rows, a
/// bf16 GEMM for a bf16 weight where the CPU has one (AMX tiles or
/// AVX512-BF16; unless `exact`), else the `gemm` crate (GGML blocks by 8-bit
/// x unless `exact`).
pub fn accumulate(
    x: &[f32],
    w: &CpuTensor,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    exact: bool,
) {
    if streams(w, m) {
        let w = WeightRows::Stored(&w.data);
        small_m_many(x, &mut [(w, &mut out[..m * n])], m, k, true, exact);
    } else if matches!(w.data, Data::BF16(_)) && super::bf16_gemm::available() && !exact {
        // A bf16 checkpoint runs bf16 GEMMs where the CPU multiplies bf16, as
        // PyTorch runs a bf16 model (and CUDA's `auto` precision does).
        super::bf16_gemm::linear(x, &w.data, out, m, k, n);
    } else {
        // The product dominates the widening (more rows than the crossover);
        // GGML blocks multiply 8-bit activations however many rows there
        // are, here by widened weights, which beat the integer tiles past
        // the streaming kernel's rows (SmolLM2 prefill at batch 32: 679
        // against 404 tokens/s, EPYC Zen 4).
        let rounded;
        let x = match int8::span(&w.data, k).filter(|_| !exact) {
            Some(span) => {
                rounded = int8::round(&x[..m * k], k, span);
                &rounded
            }
            None => x,
        };
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

#[cfg(test)]
mod tests {
    /// `add_transposed` adds every value to its place for shapes past one
    /// task of rows and one block of columns, and does nothing for no
    /// columns.
    #[test]
    fn transposed_results_add_back() {
        for (m, n) in [(1, 1), (70, 19), (130, 16), (5, 0)] {
            let t: Vec<f32> = (0..m * n).map(|v| v as f32).collect();
            let mut out = vec![1f32; m * n];
            super::add_transposed(&mut out, &t, m);
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(out[i * n + j], 1.0 + t[j * m + i], "({m}, {n}) at {i}, {j}");
                }
            }
        }
    }
}
