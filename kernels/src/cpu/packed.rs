//! GGML Q4_0, Q4_1 and Q8_0 weight rows interleaved eight at a time, as llama.cpp
//! repacks them at load (`ggml-cpu/repack.cpp`, `block_q4_0x8`), and their
//! AVX-512 VNNI kernel. In GGML's own layout one `vpdpbusd` lane belongs to
//! one weight row, so every 32-value block is split, scaled and summed on
//! its own, and a decoding step spends more time on that than on reading
//! the bytes (a 1B-size Q4_0 model at batch 1: 0.54–0.71× llama.cpp on an
//! EPYC Zen 4, bench/RESULTS.md). Interleaved, one 64-byte load holds 8
//! bytes of each of 8 rows, each 32-bit lane a (row, 4 values) pair, so one
//! x broadcast serves 8 rows, one scale vector scales them, and the eight
//! dot products come out side by side: a block of 8 rows (256 weights) takes
//! about as many instructions as one block of one row did.
//!
//! The layout is a permutation of the rows' bytes (same size): per group of
//! 8 rows and per 32-value block, the 8 rows' d (f16; Q4_1: then their 8
//! m), then 64-byte pieces, piece h holding bytes `8h..8h + 8` of each
//! row's value bytes, row by row: Q4's two pieces (low nibbles of piece h
//! are values `8h..8h + 8` of a block, high nibbles values `16 + 8h..`),
//! Q8_0's four. The sums are the same integers as [`super::int8`]'s, so the
//! results equal its to f32 rounding of the scale products. (Q4_K and Q6_K
//! keep GGML's layout: their per-32-value scales would need decoding into a
//! layout of their own, as llama.cpp's `block_q4_Kx8` does.)

use super::int8::{self, Q8Rows};
use crate::quant::GgmlType;

/// Rows a group interleaves.
const ROWS: usize = 8;

/// Whether a weight of `ty` and `shape` (`[n, k]`) is kept interleaved on
/// this CPU: Q4_0, Q4_1 and Q8_0 matrices of whole groups, where the VNNI
/// kernel runs (the AVX2 and portable dots read GGML's layout).
pub fn packs(ty: GgmlType, shape: &[usize]) -> bool {
    kind(ty)
        && matches!(shape, [n, k] if *n > 0 && *k > 0 && n.is_multiple_of(ROWS) && k.is_multiple_of(32))
        && int8::tiles_many_rows()
}

/// Whether blocks of `ty` have an interleaved layout: Q4_0, Q4_1, Q8_0.
pub fn kind(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0)
}

/// Where block `b` of row `j` lies in each layout, for rows of `rb` bytes:
/// `(plain offset, interleaved offset, length)` of its d, its m (Q4_1; else
/// length 0), and its 8-byte pieces of values (two of nibbles, Q8_0's
/// four).
fn pieces(ty: GgmlType, rb: usize, j: usize, b: usize) -> [(usize, usize, usize); 6] {
    let bb = ty.block().1;
    let head = if ty == GgmlType::Q4_1 { 4 } else { 2 };
    let (g, r) = (j / ROWS, j % ROWS);
    let plain = j * rb + b * bb;
    let packed = g * ROWS * rb + b * ROWS * bb;
    let values = packed + ROWS * head;
    // Q4's 16 bytes are two pieces; the missing ones have length 0.
    let piece = |h: usize| match h < (bb - head) / 8 {
        true => (plain + head + 8 * h, values + 64 * h + 8 * r, 8),
        false => (plain, packed, 0),
    };
    [
        (plain, packed + 2 * r, 2),
        (plain + 2, packed + 2 * ROWS + 2 * r, head - 2),
        piece(0),
        piece(1),
        piece(2),
        piece(3),
    ]
}

/// `bytes` (GGML rows of `k` values, a whole number of groups) interleaved,
/// groups in parallel (a 1B-size model's are 0.6 GB).
pub fn pack(ty: GgmlType, bytes: &[u8], k: usize) -> Vec<u8> {
    use rayon::prelude::*;
    let rb = ty.bytes_for(k).expect("whole blocks a row");
    assert!(kind(ty) && k > 0 && bytes.len().is_multiple_of(ROWS * rb));
    let mut out = vec![0u8; bytes.len()];
    let groups = out
        .par_chunks_mut(ROWS * rb)
        .zip(bytes.par_chunks(ROWS * rb));
    groups.for_each(|(to_group, from_group)| {
        // Offsets within a group are those of group 0.
        for j in 0..ROWS {
            for b in 0..k / 32 {
                for (from, to, len) in pieces(ty, rb, j, b) {
                    to_group[to..to + len].copy_from_slice(&from_group[from..from + len]);
                }
            }
        }
    });
    out
}

/// Row `j` of interleaved `packed` back in GGML's layout, into `row`.
fn row_into(ty: GgmlType, packed: &[u8], k: usize, j: usize, row: &mut [u8]) {
    let rb = row.len();
    for b in 0..k / 32 {
        for (from, to, len) in pieces(ty, rb, j, b) {
            let from = from - j * rb;
            row[from..from + len].copy_from_slice(&packed[to..to + len]);
        }
    }
}

/// Values `start..start + out.len()` of interleaved rows of `k` values.
pub fn widen_into(ty: GgmlType, packed: &[u8], k: usize, start: usize, out: &mut [f32]) {
    let mut row = vec![0u8; ty.bytes_for(k).expect("whole blocks a row")];
    let (mut at, mut done) = (start, 0);
    while done < out.len() {
        let (j, off) = (at / k, at % k);
        let take = (k - off).min(out.len() - done);
        row_into(ty, packed, k, j, &mut row);
        crate::quant::dequantize_into(ty, &row, off, &mut out[done..done + take]);
        at += take;
        done += take;
    }
}

/// `t[(j - j0) · m + i] = x_i · w_j` for rows `j0..j0 + cols` of interleaved
/// `packed`, as [`int8::rows`] computes it for GGML's layout.
pub(super) fn rows(x: &Q8Rows, ty: GgmlType, packed: &[u8], j0: usize, cols: usize, t: &mut [f32]) {
    let (m, k) = (x.rows(), x.cols());
    let rb = ty.bytes_for(k).expect("whole blocks a row");
    assert!(kind(ty) && t.len() >= cols * m && (j0 + cols) * rb <= packed.len());
    #[cfg(target_arch = "x86_64")]
    if int8::tiles_many_rows() && j0.is_multiple_of(ROWS) && cols.is_multiple_of(ROWS) {
        for g in (j0..j0 + cols).step_by(ROWS) {
            let group = &packed[g * rb..(g + ROWS) * rb];
            let mut i0 = 0;
            while i0 < m {
                // 8 x rows a pass where there are, else up to 4.
                let r = if m - i0 >= 8 { 8 } else { (m - i0).min(4) };
                // SAFETY: the CPU has AVX-512F/BW/VNNI and F16C
                // (`tiles_many_rows`); the group is 8 whole rows and x rows
                // i0..i0 + r are inside x.
                let acc = unsafe { group_type(ty, x, group, i0, r) };
                for (q, a) in acc.iter().enumerate().take(r) {
                    for (c, v) in a.iter().enumerate() {
                        t[(g - j0 + c) * m + i0 + q] = *v;
                    }
                }
                i0 += r;
            }
        }
        return;
    }
    by_row(x, ty, packed, j0, cols, t);
}

/// [`rows`] where the VNNI kernel does not run (SIMD limited after the
/// weights were packed): a row at a time, back in GGML's layout.
fn by_row(x: &Q8Rows, ty: GgmlType, packed: &[u8], j0: usize, cols: usize, t: &mut [f32]) {
    let (m, k) = (x.rows(), x.cols());
    let mut row = vec![0u8; ty.bytes_for(k).expect("whole blocks a row")];
    for c in 0..cols {
        row_into(ty, packed, k, j0 + c, &mut row);
        int8::rows_of(x, ty, &row, 0, 1, &mut t[c * m..(c + 1) * m]);
    }
}

/// [`group_vnni`] for `ty` (Q4_0, Q4_1 or Q8_0) and `r` (1–4 or 8) x rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn group_type(ty: GgmlType, x: &Q8Rows, g: &[u8], i0: usize, r: usize) -> [[f32; 8]; 8] {
    // SAFETY: as the caller's.
    unsafe {
        match ty {
            GgmlType::Q4_0 => group_rows::<0>(x, g, i0, r),
            GgmlType::Q4_1 => group_rows::<1>(x, g, i0, r),
            GgmlType::Q8_0 => group_rows::<2>(x, g, i0, r),
            _ => unreachable!("{ty:?} has no interleaved layout"),
        }
    }
}

/// [`group_vnni`] for `r` (1–4 or 8) x rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn group_rows<const T: u8>(x: &Q8Rows, g: &[u8], i0: usize, r: usize) -> [[f32; 8]; 8] {
    // SAFETY: as the caller's.
    unsafe {
        match r {
            1 => group_vnni::<1, T>(x, g, i0),
            2 => group_vnni::<2, T>(x, g, i0),
            3 => group_vnni::<3, T>(x, g, i0),
            4 => group_vnni::<4, T>(x, g, i0),
            _ => group_vnni::<8, T>(x, g, i0),
        }
    }
}

/// The 8 f16 scales at `p`, row r's on lanes 2r and 2r + 1. (A function,
/// not a closure: closures do not inherit `target_feature`, and their
/// intrinsics become calls.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
#[inline]
unsafe fn scales(p: *const u8) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    // SAFETY: the caller's 16 bytes at p.
    let s = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) });
    _mm512_permutexvar_ps(pairs, _mm512_castps256_ps512(s))
}

/// The 8 interleaved rows of group `g` against x rows `i0..i0 + R`, a block
/// a step: each 8-byte piece of values (Q4: a half's low or high nibbles;
/// Q8_0: a quarter's bytes, made unsigned by adding 128) by the x broadcast
/// of the 8 values it holds, four `vpdpbusd` into one integer vector (row r
/// on lanes 2r and 2r + 1, starting from Q4_0's −8 · Σ x or Q8_0's −128 ·
/// Σ x over the two), scaled by the rows' d times x's d, plus Q4_1's m · Σ
/// x. Returns each x row's 8 dot products. `T`: 0 Q4_0, 1 Q4_1, 2 Q8_0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn group_vnni<const R: usize, const T: u8>(
    x: &Q8Rows,
    g: &[u8],
    i0: usize,
) -> [[f32; 8]; 8] {
    use std::arch::x86_64::*;
    let bb = [18, 20, 34][T as usize];
    let values = ROWS * if T == 1 { 4 } else { 2 };
    // n4 is −4 · Σ x: the offset's share of each of a row's two lanes.
    let offset = [1, 0, 16][T as usize];
    let (nib, top) = (_mm512_set1_epi8(0xF), _mm512_set1_epi8(-128));
    let zero = _mm512_setzero_si512();
    let (xs, dl, sl, n4) = x.parts();
    let mut acc = [_mm512_setzero_ps(); R];
    // SAFETY: block b's bytes of the group are inside `g` (8 whole rows of
    // k / 32 blocks); x reads stay inside rows i0..i0 + R.
    unsafe {
        for b in 0..x.cols() / 32 {
            let p = g.as_ptr().add(b * ROWS * bb);
            let dw = scales(p);
            let mw = if T == 1 { scales(p.add(16)) } else { dw };
            let v = p.add(values).cast::<__m512i>();
            let mut w = [
                _mm512_loadu_si512(v),
                _mm512_loadu_si512(v.add(1)),
                zero,
                zero,
            ];
            if T == 2 {
                w[2] = _mm512_loadu_si512(v.add(2));
                w[3] = _mm512_loadu_si512(v.add(3));
                for w in &mut w {
                    *w = _mm512_xor_si512(*w, top);
                }
            } else {
                w[2] = _mm512_and_si512(_mm512_srli_epi16::<4>(w[0]), nib);
                w[3] = _mm512_and_si512(_mm512_srli_epi16::<4>(w[1]), nib);
                w[0] = _mm512_and_si512(w[0], nib);
                w[1] = _mm512_and_si512(w[1], nib);
            }
            for (q, acc) in acc.iter_mut().enumerate() {
                let at = x.block_at(i0 + q, b);
                let xq = xs.as_ptr().add(at * 32).cast::<i64>();
                let mut s = _mm512_set1_epi32(offset * n4[at]);
                for (h, w) in w.iter().enumerate() {
                    s = _mm512_dpbusd_epi32(s, *w, _mm512_set1_epi64(xq.add(h).read_unaligned()));
                }
                let dx = _mm512_set1_ps(dl[at * 8]);
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dx), *acc);
                if T == 1 {
                    // Σ x's scale is spread over 8 lanes of a block in `sl`;
                    // here over a row's 2.
                    *acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(sl[at * 8] * 4.0), *acc);
                }
            }
        }
    }
    let mut out = [[0f32; 8]; 8];
    for (q, acc) in acc.iter().enumerate() {
        let mut lanes = [0f32; 16];
        // SAFETY: 16 f32 into a 16-f32 array.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *acc) };
        for (r, o) in out[q].iter_mut().enumerate() {
            *o = lanes[2 * r] + lanes[2 * r + 1];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of `n` rows of `k` values: varied nibbles, small f16 scales
    /// (and Q4_1 minimums).
    fn weights(ty: GgmlType, n: usize, k: usize) -> Vec<u8> {
        let bb = ty.block().1;
        let mut b: Vec<u8> = (0..n * k / 32 * bb)
            .map(|i| (i * 131 % 251) as u8)
            .collect();
        for (i, blk) in b.chunks_mut(bb).enumerate() {
            let d = half::f16::from_f32(0.01 + (i % 7) as f32 * 1e-3);
            blk[0..2].copy_from_slice(&d.to_le_bytes());
            if ty == GgmlType::Q4_1 {
                blk[2..4].copy_from_slice(&half::f16::from_f32(-0.05).to_le_bytes());
            }
        }
        b
    }

    /// The interleaved kernel (where the CPU runs it) and the row-at-a-time
    /// fallback give GGML layout's products, for x row counts that take
    /// every tile height and a task of several groups from an offset.
    #[test]
    fn products_match_the_row_layout() {
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            let (n, k) = (32, 160);
            let plain = weights(ty, n, k);
            let packed = pack(ty, &plain, k);
            for m in [1, 3, 8, 13] {
                let xs: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let x = Q8Rows::new(&xs, m, k);
                let (j0, cols) = (8, 24);
                let mut want = vec![0f32; cols * m];
                int8::rows_of(&x, ty, &plain, j0, cols, &mut want);
                let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                for (name, f) in [
                    (
                        "rows",
                        rows as fn(&Q8Rows, GgmlType, &[u8], usize, usize, &mut [f32]),
                    ),
                    ("by_row", by_row),
                ] {
                    let mut got = vec![0f32; cols * m];
                    f(&x, ty, &packed, j0, cols, &mut got);
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-5 * scale,
                            "{ty:?} {name} m={m}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// Interleaving is a permutation: every row comes back byte for byte,
    /// and widening any range equals widening the plain rows.
    #[test]
    fn rows_come_back() {
        // No rows' worth of values: nothing to interleave.
        assert!(!packs(GgmlType::Q4_0, &[8, 0]));
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            let (n, k) = (16, 96);
            let rb = ty.bytes_for(k).unwrap();
            let plain: Vec<u8> = (0..n * rb).map(|i| (i * 37 % 251) as u8 & 0x3B).collect();
            let packed = pack(ty, &plain, k);
            let mut row = vec![0u8; rb];
            for j in 0..n {
                row_into(ty, &packed, k, j, &mut row);
                assert_eq!(row, plain[j * rb..(j + 1) * rb], "{ty:?} row {j}");
            }
            for (start, len) in [(0, n * k), (5, 200), (k - 3, 7), (7 * k + 31, k + 2)] {
                let mut a = vec![0f32; len];
                let mut b = vec![0f32; len];
                widen_into(ty, &packed, k, start, &mut a);
                crate::quant::dequantize_into(ty, &plain, start, &mut b);
                assert_eq!(a, b, "{ty:?} {start}+{len}");
            }
        }
    }
}
