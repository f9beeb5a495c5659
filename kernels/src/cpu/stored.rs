//! The small-row product on weights in their stored form, decoded in SIMD
//! registers (AVX-512, else AVX2): f16 and bf16 checkpoint rows, and GGML's Q4_0, Q4_1 and Q8_0
//! blocks (what SmolLM2's and most Q4 GGUF files hold). Decoding steps
//! (`small_m` takes this path up to 16 rows) read every weight once per token; widening
//! four rows into a buffer first ([`super::gemm::small_m`]'s general path)
//! stores and reloads each value as f32 and dominated batch-1 profiles.
//! Here each weight vector is widened where it is used, and x stays f32
//! (not ggml's 8-bit-quantised x), so the result stays the f32 reference's
//! within rounding. Q8_0 blocks' integer values are multiplied by x before
//! the block's scale, as ggml's `vec_dot` does (`x · w_block = d · Σ x_j q_j`).
//! Q4 blocks are dequantised in registers: on AVX-512 each block's 16
//! possible values are one FMA (`d · q + m`, or `d · (q − 8)`) and the
//! nibbles index them (`vpermps`), with no integer-to-float conversion; on
//! AVX2 the values are converted and dequantised by FMA. (Q4_1's minimum as a
//! separate `m · Σ x_j` term made a scalar chain per block that batch-1
//! profiles showed as the hottest instructions.)

use super::Data;
use crate::quant::GgmlType;

/// Whether [`rows`] takes this storage with rows of `k` values on this CPU
/// (AVX-512F or AVX2/FMA, with F16C; block rows must be whole blocks, as
/// GGUF's are).
pub fn supports(w: &Data, k: usize) -> bool {
    let kind = match w {
        Data::F16(_) | Data::BF16(_) => true,
        Data::Quant(t, _) => {
            matches!(t, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0) && k.is_multiple_of(32)
        }
        Data::F32(_) => false,
    };
    kind && (super::avx512() || avx2())
}

/// AVX2, FMA and F16C, within `limit_simd`.
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::avx2_fma() && std::is_x86_feature_detected!("f16c");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `t[(j - j0) · m + i] = x_i · w_j` for weight rows `j0..j0 + cols` and the
/// `m` rows of `x` (the transposed layout of `small_m`'s tasks); the caller
/// has checked [`supports`].
pub fn rows(x: &[f32], w: &Data, j0: usize, cols: usize, m: usize, k: usize, t: &mut [f32]) {
    // Values stored: the weight rows read are inside them.
    let stored = match w {
        Data::F32(v) => v.len(),
        Data::F16(v) => v.len(),
        Data::BF16(v) => v.len(),
        Data::Quant(ty, bytes) => bytes.len() / ty.block().1 * ty.block().0,
    };
    assert!(x.len() >= m * k && t.len() >= cols * m && (j0 + cols) * k <= stored);
    assert!(supports(w, k), "stored rows the CPU cannot decode");
    #[cfg(target_arch = "x86_64")]
    let job = Job { x, j0, cols, m, k };
    // SAFETY: the CPU has AVX-512F or AVX2/FMA, and F16C (`supports`), and
    // every read stays inside x (m·k), the stored rows j0..j0+cols (checked
    // by the slicing below) and t (cols·m, asserted).
    unsafe {
        match super::avx512() {
            true => rows_avx512(&job, w, t),
            false => rows_avx2(&job, w, t),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("supports() is false off x86-64: {x:?} {j0} {t:?}")
}

/// What every tile of one task reads: x, the task's weight rows
/// `j0..j0 + cols`, and the shape.
#[cfg(target_arch = "x86_64")]
struct Job<'a> {
    x: &'a [f32],
    j0: usize,
    cols: usize,
    m: usize,
    k: usize,
}

#[cfg(target_arch = "x86_64")]
impl Job<'_> {
    /// Calls `pass(r, jj, i0)` for weight rows from `jj` in steps of `step`
    /// and x rows `i0..i0 + r`, up to 4 x rows a pass: the tiling both
    /// instruction sets share (each `r` is its own compiled tile).
    fn passes(&self, step: usize, mut pass: impl FnMut(usize, usize, usize)) {
        for jj in (0..self.cols).step_by(step) {
            let mut i0 = 0;
            while i0 < self.m {
                let r = (self.m - i0).min(4);
                pass(r, jj, i0);
                i0 += r;
            }
        }
    }

    /// The x rows `i0..i0 + R`, each sliced (so bounds-checked) once.
    fn x_rows<const R: usize>(&self, i0: usize) -> [*const f32; R] {
        let k = self.k;
        let mut xs = [std::ptr::null::<f32>(); R];
        for (q, p) in xs.iter_mut().enumerate() {
            *p = self.x[(i0 + q) * k..(i0 + q + 1) * k].as_ptr();
        }
        xs
    }
}

/// Weight rows decoded together: each x vector loaded serves both.
#[cfg(target_arch = "x86_64")]
const WR: usize = 2;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
unsafe fn rows_avx512(job: &Job<'_>, w: &Data, t: &mut [f32]) {
    // Each x row count is its own instance, so no accumulator is spent on a
    // row that is not there.
    // SAFETY: the caller's checks (see `rows`).
    job.passes(WR, |r, jj, i0| unsafe {
        match r {
            1 => tile::<1>(job, w, jj, i0, t),
            2 => tile::<2>(job, w, jj, i0, t),
            3 => tile::<3>(job, w, jj, i0, t),
            _ => tile::<4>(job, w, jj, i0, t),
        }
    });
}

/// `t[(jj + c) · m + i0 + q]` for weight rows `j0 + jj + c` (`c < WR`, the
/// last row repeated past `cols`) and x rows `i0 + q` (`q < R`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
#[inline]
unsafe fn tile<const R: usize>(job: &Job<'_>, w: &Data, jj: usize, i0: usize, t: &mut [f32]) {
    use std::arch::x86_64::*;
    let k = job.k;
    let mut js = [0; WR];
    for (c, j) in js.iter_mut().enumerate() {
        *j = job.j0 + (jj + c).min(job.cols - 1);
    }
    let xs = job.x_rows::<R>(i0);
    // SAFETY: x rows and block rows are sliced above and below (so
    // bounds-checked once); half-precision rows js < j0 + cols are inside
    // the stored values (asserted in `rows`); the tiles read k values of each.
    let acc = unsafe {
        match w {
            Data::F16(v) => half_tile::<R, false>(v.as_ptr().cast(), js, xs, k),
            Data::BF16(v) => half_tile::<R, true>(v.as_ptr().cast(), js, xs, k),
            Data::Quant(ty, bytes) => {
                let (bb, blocks) = (ty.block().1, k / 32);
                let mut rows = [std::ptr::null::<u8>(); WR];
                for (c, row) in rows.iter_mut().enumerate() {
                    *row = bytes[js[c] * blocks * bb..(js[c] + 1) * blocks * bb].as_ptr();
                }
                match ty {
                    GgmlType::Q4_0 => quant_tile::<R, 0>(rows, xs, blocks),
                    GgmlType::Q4_1 => quant_tile::<R, 1>(rows, xs, blocks),
                    _ => quant_tile::<R, 2>(rows, xs, blocks),
                }
            }
            Data::F32(_) => unreachable!("f32 rows are read in place by small_m"),
        }
    };
    for c in 0..WR.min(job.cols - jj) {
        for q in 0..R {
            t[(jj + c) * job.m + i0 + q] = _mm512_reduce_add_ps(acc[c][q]);
        }
    }
}

/// Half-precision rows `js` of the matrix at `w` (k values each) against x
/// rows `xs`, 16 values at a time; `BF`: bf16, else f16. The accumulators
/// are returned, not passed in, so they stay in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
#[inline]
unsafe fn half_tile<const R: usize, const BF: bool>(
    w: *const u16,
    js: [usize; WR],
    xs: [*const f32; R],
    k: usize,
) -> [[std::arch::x86_64::__m512; R]; WR] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); R]; WR];
    let wide = |v: __m256i| match BF {
        true => _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)),
        false => _mm512_cvtph_ps(v),
    };
    let (k16, tail) = (k / 16 * 16, k % 16);
    // SAFETY: rows js[c] are inside the stored values (asserted in `rows`);
    // each load reads 16 values below k, the tail a copy.
    unsafe {
        let rows = js.map(|j| w.add(j * k));
        let mut at = 0;
        while at < k16 {
            let mut wv = [_mm512_setzero_ps(); WR];
            for c in 0..WR {
                wv[c] = wide(_mm256_loadu_si256(rows[c].add(at).cast()));
            }
            for q in 0..R {
                let xv = _mm512_loadu_ps(xs[q].add(at));
                for c in 0..WR {
                    acc[c][q] = _mm512_fmadd_ps(xv, wv[c], acc[c][q]);
                }
            }
            at += 16;
        }
        if tail > 0 {
            // The last partial vector through zero-padded copies.
            let mask: __mmask16 = ((1u32 << tail) - 1) as u16;
            let mut wv = [_mm512_setzero_ps(); WR];
            for c in 0..WR {
                let mut buf = [0u16; 16];
                std::ptr::copy_nonoverlapping(rows[c].add(k16), buf.as_mut_ptr(), tail);
                wv[c] = wide(_mm256_loadu_si256(buf.as_ptr().cast()));
            }
            for q in 0..R {
                let xv = _mm512_maskz_loadu_ps(mask, xs[q].add(k16));
                for c in 0..WR {
                    acc[c][q] = _mm512_fmadd_ps(xv, wv[c], acc[c][q]);
                }
            }
        }
    }
    acc
}

/// GGML block rows (`rows`, `blocks` blocks each) against x rows `xs`; `Q`:
/// 0 Q4_0, 1 Q4_1 (both dequantised by a 16-value table), 2 Q8_0: one
/// instance per type, so the blocks' loop has no branch. Returns the
/// accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn quant_tile<const R: usize, const Q: u8>(
    rows: [*const u8; WR],
    xs: [*const f32; R],
    blocks: usize,
) -> [[std::arch::x86_64::__m512; R]; WR] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); R]; WR];
    let bb = [18, 20, 34][Q as usize];
    // A Q4 block's 16 values: d·q + m (Q4_1) or d·(q − 8) (Q4_0), one
    // FMA from these, looked up by nibble with `vpermps` (which reads an
    // index's low 4 bits): no integer-to-float conversions.
    let iota = _mm512_setr_ps(
        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
    );
    let iota = match Q {
        0 => _mm512_sub_ps(iota, _mm512_set1_ps(8.0)),
        _ => iota,
    };
    // SAFETY: every block read is below `blocks` of a row the caller
    // sliced; x reads are below 32 · blocks = k.
    unsafe {
        for b in 0..blocks {
            let mut d = [_mm512_setzero_ps(); WR];
            let mut qa = [_mm512_setzero_ps(); WR];
            let mut qb = [_mm512_setzero_ps(); WR];
            for c in 0..WR {
                let p = rows[c].add(b * bb);
                // The block's first 4 bytes (its f16 scale, and Q4_1's f16
                // minimum) broadcast by one load and widened: [d, m, d, m, ..].
                let dm = _mm512_cvtph_ps(_mm256_set1_epi32(p.cast::<i32>().read_unaligned()));
                d[c] = _mm512_permute_ps::<0x00>(dm);
                if Q == 2 {
                    // The block's 32 integer values as two f32 vectors.
                    qa[c] =
                        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(2).cast())));
                    qb[c] =
                        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(18).cast())));
                } else {
                    let table = match Q {
                        0 => _mm512_mul_ps(iota, d[c]),
                        _ => _mm512_fmadd_ps(iota, d[c], _mm512_permute_ps::<0x55>(dm)),
                    };
                    // Low nibbles are values 0..16, high ones 16..32.
                    let at = if Q == 0 { 2 } else { 4 };
                    let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(p.add(at).cast()));
                    qa[c] = _mm512_permutexvar_ps(v, table);
                    qb[c] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
                }
            }
            for q in 0..R {
                let xa = _mm512_loadu_ps(xs[q].add(b * 32));
                let xb = _mm512_loadu_ps(xs[q].add(b * 32 + 16));
                for c in 0..WR {
                    acc[c][q] = match Q {
                        // Q8_0: the integers by x, then the scale once.
                        2 => _mm512_fmadd_ps(
                            _mm512_fmadd_ps(xb, qb[c], _mm512_mul_ps(xa, qa[c])),
                            d[c],
                            acc[c][q],
                        ),
                        _ => _mm512_fmadd_ps(xb, qb[c], _mm512_fmadd_ps(xa, qa[c], acc[c][q])),
                    };
                }
            }
        }
    }
    acc
}

/// The AVX2 form of [`rows_avx512`]: 8-wide, one weight row a pass (16
/// vector registers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_avx2(job: &Job<'_>, w: &Data, t: &mut [f32]) {
    // SAFETY: the caller's checks (see `rows`).
    job.passes(1, |r, jj, i0| unsafe {
        match r {
            1 => tile_avx2::<1>(job, w, jj, i0, t),
            2 => tile_avx2::<2>(job, w, jj, i0, t),
            3 => tile_avx2::<3>(job, w, jj, i0, t),
            _ => tile_avx2::<4>(job, w, jj, i0, t),
        }
    });
}

/// `t[jj · m + i0 + q]`: weight row `j0 + jj` against x rows `i0 + q`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_avx2<const R: usize>(job: &Job<'_>, w: &Data, jj: usize, i0: usize, t: &mut [f32]) {
    use std::arch::x86_64::*;
    let (k, j) = (job.k, job.j0 + jj);
    let xs = job.x_rows::<R>(i0);
    let mut acc = [_mm256_setzero_ps(); R];
    // 8 stored half-precision values as f32; `bf`: bf16, else f16.
    let wide = |v: __m128i, bf: bool| match bf {
        true => _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16)),
        false => _mm256_cvtph_ps(v),
    };
    // SAFETY: the weight row is sliced (bounds-checked) below; loads read 8
    // values below k of it and of the x rows, tails go through buffers.
    unsafe {
        match w {
            Data::F16(_) | Data::BF16(_) => {
                let (row, bf): (*const u16, bool) = match w {
                    Data::F16(v) => (v[j * k..(j + 1) * k].as_ptr().cast(), false),
                    Data::BF16(v) => (v[j * k..(j + 1) * k].as_ptr().cast(), true),
                    _ => unreachable!(),
                };
                let k8 = k / 8 * 8;
                let mut at = 0;
                while at < k8 {
                    let wv = wide(_mm_loadu_si128(row.add(at).cast()), bf);
                    for q in 0..R {
                        acc[q] = _mm256_fmadd_ps(_mm256_loadu_ps(xs[q].add(at)), wv, acc[q]);
                    }
                    at += 8;
                }
                if k8 < k {
                    let mut buf = [0u16; 8];
                    std::ptr::copy_nonoverlapping(row.add(k8), buf.as_mut_ptr(), k - k8);
                    let wv = wide(_mm_loadu_si128(buf.as_ptr().cast()), bf);
                    for q in 0..R {
                        let mut xb = [0f32; 8];
                        std::ptr::copy_nonoverlapping(xs[q].add(k8), xb.as_mut_ptr(), k - k8);
                        acc[q] = _mm256_fmadd_ps(_mm256_loadu_ps(xb.as_ptr()), wv, acc[q]);
                    }
                }
            }
            Data::Quant(ty, bytes) => {
                let (ty, bb, blocks) = (*ty, ty.block().1, k / 32);
                let row = bytes[j * blocks * bb..(j + 1) * blocks * bb].as_ptr();
                let (nib, eight) = (_mm_set1_epi8(0xF), _mm_set1_epi8(8));
                for b in 0..blocks {
                    let p = row.add(b * bb);
                    // [d, m, d, m, ..] from the block's first 4 bytes.
                    let dm = _mm256_cvtph_ps(_mm_set1_epi32(p.cast::<i32>().read_unaligned()));
                    let mut d = _mm256_permute_ps::<0x00>(dm);
                    // The block's 32 values as signed bytes, then 4 f32 vectors.
                    let (lo, hi) = match ty {
                        GgmlType::Q8_0 => (
                            _mm_loadu_si128(p.add(2).cast()),
                            _mm_loadu_si128(p.add(18).cast()),
                        ),
                        _ => {
                            let at = if ty == GgmlType::Q4_0 { 2 } else { 4 };
                            let raw = _mm_loadu_si128(p.add(at).cast());
                            let lo = _mm_and_si128(raw, nib);
                            let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), nib);
                            match ty {
                                GgmlType::Q4_0 => {
                                    (_mm_sub_epi8(lo, eight), _mm_sub_epi8(hi, eight))
                                }
                                _ => (lo, hi),
                            }
                        }
                    };
                    let mut qv = [
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))),
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))),
                    ];
                    if ty == GgmlType::Q4_1 {
                        // Dequantised here (`d · q + m`); the scale becomes 1.
                        let mn = _mm256_permute_ps::<0x55>(dm);
                        for v in &mut qv {
                            *v = _mm256_fmadd_ps(*v, d, mn);
                        }
                        d = _mm256_set1_ps(1.0);
                    }
                    for q in 0..R {
                        let x = xs[q].add(b * 32);
                        let mut s = _mm256_mul_ps(_mm256_loadu_ps(x), qv[0]);
                        for (v, qv) in qv.iter().enumerate().skip(1) {
                            s = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(8 * v)), *qv, s);
                        }
                        acc[q] = _mm256_fmadd_ps(s, d, acc[q]);
                    }
                }
            }
            Data::F32(_) => unreachable!("f32 rows are read in place by small_m"),
        }
    }
    for q in 0..R {
        let v = acc[q];
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        t[jj * job.m + i0 + q] = _mm_cvtss_f32(s);
    }
}
