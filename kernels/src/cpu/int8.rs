//! 8-bit activations against GGML's Q4_0, Q4_1 and Q8_0 blocks, as llama.cpp
//! multiplies them: every 32 values of x become `d · q`, q an integer in
//! −127..=127 and d = max|x| / 127 kept at f16 precision (ggml's
//! `quantize_row_q8_0`/`q8_1`), and a weight block's dot product is
//! `d_w · d_x · Σ q_w q_x`, plus `m_w · d_x · Σ q_x` for Q4_1's minimum (ggml's
//! `vec_dot_q4_0_q8_0`, `vec_dot_q4_1_q8_1`, `vec_dot_q8_0_q8_0`). The
//! integer sums are exact: AVX-512 VNNI (`vpdpbusd`, two blocks of byte
//! products a step), AVX2 (`vpmaddubsw`) and the portable loops differ only in
//! the order of their f32 sums, and products of more rows multiply x
//! [`round`]ed the same way by widened weights: the same values again.
//! (Unlike ggml, Q4_1's `d_x · Σ q_x` is not rounded to f16 a second time, so
//! that the two forms agree.)

use super::Data;
use crate::quant::GgmlType;
use half::f16;

/// Values per block of x (and of the weights).
const QK: usize = 32;

/// Rows of x quantised per 32 values; each row is padded with zero blocks to
/// an even count (the AVX-512 kernel takes two blocks a step).
pub struct Q8Rows {
    m: usize,
    k: usize,
    /// Blocks per padded row.
    nb: usize,
    /// The integers, `nb · 32` per row.
    q: Vec<i8>,
    /// Per block and lane (8 lanes of 4 values a block, the layout of the
    /// integer sums): the block's d on each lane.
    dl: Vec<f32>,
    /// `d · Σ q / 8` on each lane: Q4_1's minimum term spread over the lanes.
    sl: Vec<f32>,
    /// `−8 · Σ q` of the lane's 4 values: Q4_0's offset (its values are q − 8).
    nl: Vec<i32>,
}

impl Q8Rows {
    /// Quantises the `m` rows of `x` (`k` values each, a multiple of 32).
    pub fn new(x: &[f32], m: usize, k: usize) -> Q8Rows {
        assert!(k.is_multiple_of(QK) && x.len() >= m * k);
        let nb = (k / QK).next_multiple_of(2);
        let mut r = Q8Rows {
            m,
            k,
            nb,
            q: vec![0; m * nb * QK],
            dl: vec![0.0; m * nb * 8],
            sl: vec![0.0; m * nb * 8],
            nl: vec![0; m * nb * 8],
        };
        for i in 0..m {
            for b in 0..k / QK {
                let at = (i * nb + b) * QK;
                let q = &mut r.q[at..at + QK];
                let d = quantize_block(&x[i * k + b * QK..][..QK], q);
                let sum: i32 = q.iter().map(|&v| v as i32).sum();
                for l in 0..8 {
                    let lane = (i * nb + b) * 8 + l;
                    r.dl[lane] = d;
                    r.sl[lane] = d * sum as f32 / 8.0;
                    r.nl[lane] = -8 * q[4 * l..4 * l + 4].iter().map(|&v| v as i32).sum::<i32>();
                }
            }
        }
        r
    }
}

/// Rounds 32 values to `d · q`: returns d (at f16 precision) and sets q.
fn quantize_block(xs: &[f32], q: &mut [i8]) -> f32 {
    // Adding and taking away 1.5 · 2²³ rounds |v| ≤ 127 half to even, as
    // ggml's AVX code rounds, without a call to libm per value.
    const MAGIC: f32 = 12_582_912.0;
    // `max` skips NaN: a NaN value makes d NaN, so the block's products are.
    let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs()));
    let amax = if xs.iter().any(|v| v.is_nan()) {
        f32::NAN
    } else {
        amax
    };
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, v) in q.iter_mut().zip(xs) {
        // `as` saturates (NaN becomes 0; d carries it, as for ±inf).
        *q = ((v * id + MAGIC) - MAGIC) as i8;
    }
    f16::from_f32(d).to_f32()
}

/// The rows of `x` (`k` values each, a multiple of 32) rounded as
/// [`Q8Rows`] rounds them, in f32: what products of more rows multiply by
/// widened weights. Rows in parallel (a prefill's thousands).
pub fn round(x: &[f32], k: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = x.to_vec();
    out.par_chunks_mut(k).for_each(|row| {
        for b in row.chunks_exact_mut(QK) {
            let mut q = [0i8; QK];
            let d = quantize_block(b, &mut q);
            for (v, q) in b.iter_mut().zip(q) {
                *v = d * q as f32;
            }
        }
    });
    out
}

/// Whether weights in this storage multiply 8-bit activations ([`rows`]).
pub fn takes(w: &Data, k: usize) -> bool {
    matches!(
        w,
        Data::Quant(GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0, _)
    ) && k.is_multiple_of(QK)
}

/// `t[(j - j0) · m + i] = x_i · w_j` for weight rows `j0..j0 + cols` and
/// the `m` quantised rows of `x` (the transposed layout of `small_m`'s
/// tasks); `w` is storage [`takes`] accepts.
pub fn rows(x: &Q8Rows, w: &Data, j0: usize, cols: usize, t: &mut [f32]) {
    let Data::Quant(ty, bytes) = w else {
        panic!("8-bit activations multiply GGML blocks only")
    };
    let (m, k, bb) = (x.m, x.k, ty.block().1);
    assert!(takes(w, k) && t.len() >= cols * m && (j0 + cols) * (k / QK) * bb <= bytes.len());
    let row = |j: usize| &bytes[j * (k / QK) * bb..(j + 1) * (k / QK) * bb];
    #[cfg(target_arch = "x86_64")]
    if vnni() {
        for c in (0..cols).step_by(2) {
            let ws = [row(j0 + c), row(j0 + (c + 1).min(cols - 1))];
            for i0 in (0..m).step_by(4) {
                // SAFETY: the CPU has AVX-512F/BW/VNNI and F16C (`vnni`); the
                // rows are whole rows of blocks and x rows are inside x.
                let acc = unsafe {
                    match ((m - i0).min(4), ty) {
                        (1, GgmlType::Q4_0) => tile_vnni::<1, 0>(x, ws, i0),
                        (1, GgmlType::Q4_1) => tile_vnni::<1, 1>(x, ws, i0),
                        (1, _) => tile_vnni::<1, 2>(x, ws, i0),
                        (2, GgmlType::Q4_0) => tile_vnni::<2, 0>(x, ws, i0),
                        (2, GgmlType::Q4_1) => tile_vnni::<2, 1>(x, ws, i0),
                        (2, _) => tile_vnni::<2, 2>(x, ws, i0),
                        (3, GgmlType::Q4_0) => tile_vnni::<3, 0>(x, ws, i0),
                        (3, GgmlType::Q4_1) => tile_vnni::<3, 1>(x, ws, i0),
                        (3, _) => tile_vnni::<3, 2>(x, ws, i0),
                        (_, GgmlType::Q4_0) => tile_vnni::<4, 0>(x, ws, i0),
                        (_, GgmlType::Q4_1) => tile_vnni::<4, 1>(x, ws, i0),
                        _ => tile_vnni::<4, 2>(x, ws, i0),
                    }
                };
                for (cc, a) in acc.iter().enumerate().take((cols - c).min(2)) {
                    for (q, v) in a.iter().enumerate().take((m - i0).min(4)) {
                        t[(c + cc) * m + i0 + q] = *v;
                    }
                }
            }
        }
        return;
    }
    for c in 0..cols {
        let w = row(j0 + c);
        for i in 0..m {
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                // SAFETY: the CPU has AVX2, FMA and F16C (`avx2`); `w` is a
                // whole row of blocks and row i is inside x.
                t[c * m + i] = unsafe { dot_avx2(x, *ty, w, i) };
                continue;
            }
            t[c * m + i] = dot_portable(x, *ty, w, i);
        }
    }
}

/// A block's f16 scale (and Q4_1's minimum) and its 32 integers (Q4: 0..16).
fn block(ty: GgmlType, b: &[u8]) -> (f32, f32, [i32; QK]) {
    let h = |at: usize| f16::from_le_bytes([b[at], b[at + 1]]).to_f32();
    let mut q = [0i32; QK];
    match ty {
        GgmlType::Q8_0 => {
            for (v, &byte) in q.iter_mut().zip(&b[2..34]) {
                *v = byte as i8 as i32;
            }
            (h(0), 0.0, q)
        }
        _ => {
            let at = if ty == GgmlType::Q4_0 { 2 } else { 4 };
            for (l, &byte) in b[at..at + 16].iter().enumerate() {
                q[l] = (byte & 0xF) as i32;
                q[l + 16] = (byte >> 4) as i32;
            }
            (h(0), if ty == GgmlType::Q4_1 { h(2) } else { 0.0 }, q)
        }
    }
}

/// x row `i` by one weight row of blocks, in plain loops.
fn dot_portable(x: &Q8Rows, ty: GgmlType, w: &[u8], i: usize) -> f32 {
    let bb = ty.block().1;
    let mut acc = 0f32;
    for (b, blk) in w.chunks_exact(bb).enumerate() {
        let (dw, mw, qw) = block(ty, blk);
        let at = (x.nb * i + b) * QK;
        let qx = &x.q[at..at + QK];
        let mut s: i32 = qw.iter().zip(qx).map(|(a, &b)| a * b as i32).sum();
        if ty == GgmlType::Q4_0 {
            s -= 8 * qx.iter().map(|&v| v as i32).sum::<i32>();
        }
        let lane = (x.nb * i + b) * 8;
        acc += dw * x.dl[lane] * s as f32 + mw * x.sl[lane] * 8.0;
    }
    acc
}

/// AVX-512F/BW/VNNI and F16C, within `limit_simd`.
#[cfg(target_arch = "x86_64")]
fn vnni() -> bool {
    super::avx512()
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
}

/// AVX2, FMA and F16C, within `limit_simd`.
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    super::avx2_fma() && std::is_x86_feature_detected!("f16c")
}

/// Two weight rows (`ws`) against x rows `i0..i0 + R`, two blocks a step:
/// the weights' 64 values as unsigned bytes (Q4: the nibbles; Q8_0: their
/// magnitudes, x's signs flipped where a weight is negative) by x's signed
/// bytes into 16 integer lanes (`vpdpbusd`), each lane's sum scaled by its
/// block's `d_w · d_x`. Returns the dot products (the first R of each row).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_vnni<const R: usize, const T: u8>(
    x: &Q8Rows,
    ws: [&[u8]; 2],
    i0: usize,
) -> [[f32; 4]; 2] {
    use std::arch::x86_64::*;
    // One instance per block type (0 Q4_0, 1 Q4_1, 2 Q8_0): no branch on it
    // in the loop.
    let ty = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0][T as usize];
    let bb = ty.block().1;
    let blocks = x.k / QK;
    let mut acc = [[_mm512_setzero_ps(); R]; 2];
    let nib = _mm512_set1_epi8(0xF);
    let zero = _mm512_setzero_si512();
    // SAFETY: weight reads stay inside blocks b and b + 1 < blocks of a
    // whole row; x reads stay inside row i0 + q's nb padded blocks.
    unsafe {
        for b in (0..blocks).step_by(2) {
            let two = b + 1 < blocks;
            let mut wq = [zero; 2];
            let mut neg = [0u64; 2];
            let mut dw = [_mm512_setzero_ps(); 2];
            let mut mw = [_mm512_setzero_ps(); 2];
            for c in 0..2 {
                let p0 = ws[c].as_ptr().add(b * bb);
                let p1 = p0.add(bb);
                // [d, m, d, m ..] of each block (its first 4 bytes), the second
                // block's on the upper 8 lanes; a missing block's are zeros.
                let s1 = if two {
                    p1.cast::<i32>().read_unaligned()
                } else {
                    0
                };
                let dm = _mm512_cvtph_ps(_mm256_inserti128_si256::<1>(
                    _mm256_castsi128_si256(_mm_set1_epi32(p0.cast::<i32>().read_unaligned())),
                    _mm_set1_epi32(s1),
                ));
                dw[c] = _mm512_permute_ps::<0x00>(dm);
                mw[c] = _mm512_permute_ps::<0x55>(dm);
                if T == 2 {
                    let hi = if two {
                        _mm256_loadu_si256(p1.add(2).cast())
                    } else {
                        _mm256_setzero_si256()
                    };
                    let v = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(_mm256_loadu_si256(p0.add(2).cast())),
                        hi,
                    );
                    neg[c] = _mm512_movepi8_mask(v);
                    wq[c] = _mm512_abs_epi8(v);
                } else {
                    let at = if T == 0 { 2 } else { 4 };
                    let hi = if two {
                        _mm_loadu_si128(p1.add(at).cast())
                    } else {
                        _mm_setzero_si128()
                    };
                    // [lo, lo, hi, hi] 16-byte lanes; the 2nd and 4th shifted
                    // by 4 give the high nibbles (values 16..32 of a block).
                    let v = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128(
                            p0.add(at).cast(),
                        ))),
                        _mm256_broadcastsi128_si256(hi),
                    );
                    wq[c] = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFF00_FF00, v, 4), nib);
                }
            }
            for q in 0..R {
                let row = (i0 + q) * x.nb + b;
                let xv = _mm512_loadu_si512(x.q.as_ptr().add(row * QK).cast());
                let dx = _mm512_loadu_ps(x.dl.as_ptr().add(row * 8));
                let init = match T {
                    0 => _mm512_loadu_si512(x.nl.as_ptr().add(row * 8).cast()),
                    _ => zero,
                };
                for c in 0..2 {
                    let xs = match T {
                        2 => _mm512_mask_sub_epi8(xv, neg[c], zero, xv),
                        _ => xv,
                    };
                    let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init, wq[c], xs));
                    acc[c][q] = _mm512_fmadd_ps(s, _mm512_mul_ps(dw[c], dx), acc[c][q]);
                    if T == 1 {
                        let sx = _mm512_loadu_ps(x.sl.as_ptr().add(row * 8));
                        acc[c][q] = _mm512_fmadd_ps(mw[c], sx, acc[c][q]);
                    }
                }
            }
        }
    }
    let mut out = [[0f32; 4]; 2];
    for c in 0..2 {
        for q in 0..R {
            out[c][q] = _mm512_reduce_add_ps(acc[c][q]);
        }
    }
    out
}

/// x row `i` by one weight row, a block a step: the 32 values as unsigned
/// bytes by x's signed bytes (`vpmaddubsw`, pairs summed without overflow:
/// at most 2 · 128 · 127), then into 8 integer lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_avx2(x: &Q8Rows, ty: GgmlType, w: &[u8], i: usize) -> f32 {
    use std::arch::x86_64::*;
    let bb = ty.block().1;
    let (nib, ones) = (_mm_set1_epi8(0xF), _mm256_set1_epi16(1));
    let mut acc = _mm256_setzero_ps();
    // SAFETY: weight reads stay inside block b of the row (`chunks_exact`),
    // x reads inside row i's blocks.
    unsafe {
        for (b, blk) in w.chunks_exact(bb).enumerate() {
            let p = blk.as_ptr();
            let row = i * x.nb + b;
            let dm = _mm256_cvtph_ps(_mm_set1_epi32(p.cast::<i32>().read_unaligned()));
            let xv = _mm256_loadu_si256(x.q.as_ptr().add(row * QK).cast());
            let (wq, xs) = match ty {
                GgmlType::Q8_0 => {
                    let v = _mm256_loadu_si256(p.add(2).cast());
                    (_mm256_sign_epi8(v, v), _mm256_sign_epi8(xv, v))
                }
                _ => {
                    let raw =
                        _mm_loadu_si128(p.add(if ty == GgmlType::Q4_0 { 2 } else { 4 }).cast());
                    let lo = _mm_and_si128(raw, nib);
                    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), nib);
                    (_mm256_set_m128i(hi, lo), xv)
                }
            };
            let mut s = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xs), ones);
            if ty == GgmlType::Q4_0 {
                s = _mm256_add_epi32(s, _mm256_loadu_si256(x.nl.as_ptr().add(row * 8).cast()));
            }
            let dx = _mm256_loadu_ps(x.dl.as_ptr().add(row * 8));
            let dw = _mm256_permute_ps::<0x00>(dm);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, dx), acc);
            if ty == GgmlType::Q4_1 {
                let sx = _mm256_loadu_ps(x.sl.as_ptr().add(row * 8));
                acc = _mm256_fmadd_ps(_mm256_permute_ps::<0x55>(dm), sx, acc);
            }
        }
        let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}
