//! GGML Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K weight rows interleaved
//! eight at a time, as llama.cpp repacks them at load
//! (`ggml-cpu/repack.cpp`, `block_q4_0x8`, `block_q4_Kx8`), and their
//! AVX-512 VNNI kernels. In GGML's own layout one `vpdpbusd` lane belongs
//! to one weight row, so every 32-value block is split, scaled and summed
//! on its own, and a decoding step spends more time on that than on
//! reading the bytes (a 1B-size Q4_0 model at batch 1: 0.54–0.71×
//! llama.cpp on an EPYC Zen 4, bench/RESULTS.md). Interleaved, one 64-byte
//! load holds 8 bytes of each of 8 rows, each 32-bit lane a (row, 4
//! values) pair, so one x broadcast serves 8 rows, one scale vector scales
//! them, and the eight dot products come out side by side: a block of 8
//! rows takes about as many instructions as one block of one row did.
//!
//! Per group of 8 rows and per GGML block, a *unit* holds the 8 rows' d
//! (f16; Q4_1: then their 8 m, Q4_K/Q5_K: their 8 dmin), then for the
//! K-quants the 8 rows' scales a byte each, scale by scale (Q4_K/Q5_K: the
//! 6-bit scales, then the minimums, unpacked so that the kernel loads them
//! instead of decoding 12 packed bytes; Q6_K: its 16 i8 scales), then
//! 64-byte pieces, piece h holding bytes `8h..8h + 8` of each row's value
//! bytes, row by row: Q4_0/Q4_1's two (low nibbles of piece h are values
//! `8h..8h + 8` of the block, high nibbles values `16 + 8h..`), Q8_0's
//! four, Q4_K's 16 (chunk c of 64 values is pieces `4c..4c + 4`: low
//! nibbles its first 32 values, high nibbles its last), Q5_K's 4 of fifth
//! bits then the same 16, Q6_K's 16 of low nibbles then 8 of high bits, as
//! GGML orders them. Units are the rows' bytes moved, but for the unpacked
//! 6-bit scales (4 bytes a row a super-block: Q4_K 2.8% more, Q5_K 2.3%).
//! The integer sums are the same as [`super::int8`]'s, so the results
//! equal its to f32 rounding of the scale products.

use super::int8::{self, Q8Rows};
use crate::quant::GgmlType;

/// Rows a group interleaves.
const ROWS: usize = 8;

/// x rows a block of the kernels' loop over a task's groups.
const X_BLOCK: usize = 64;

/// Bytes of a GGML block in the largest type interleaved (Q6_K's).
const MAX_BLOCK: usize = 210;

/// Whether a weight of `ty` and `shape` (`[n, k]`) is kept interleaved on
/// this CPU: matrices of [`kind`] in whole groups of rows and whole blocks,
/// where the VNNI kernel runs (the AVX2 and portable dots read GGML's
/// layout).
pub fn packs(ty: GgmlType, shape: &[usize]) -> bool {
    kind(ty)
        && matches!(shape, [n, k] if *n > 0 && *k > 0 && n.is_multiple_of(ROWS)
            && k.is_multiple_of(ty.block().0))
        && int8::tiles_many_rows()
}

/// Whether blocks of `ty` have an interleaved layout: Q4_0, Q4_1, Q8_0,
/// Q4_K, Q5_K, Q6_K.
pub fn kind(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q8_0 | Q4K | Q5K | Q6K)
}

/// Bytes of a unit: 8 rows' blocks, Q4_K's and Q5_K's 12 bytes of scales
/// a row as 16.
fn unit(ty: GgmlType) -> usize {
    let bb = ty.block().1;
    ROWS * if six_bit(ty) { bb + 4 } else { bb }
}

/// Whether `ty`'s scales and minimums are GGML's packed 6-bit ones (Q4_K,
/// Q5_K), which a unit holds unpacked.
fn six_bit(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4K | GgmlType::Q5K)
}

/// Bytes of a group of 8 interleaved rows of `k` values.
fn group_bytes(ty: GgmlType, k: usize) -> usize {
    unit(ty) * (k / ty.block().0)
}

/// Where Q4_K's and Q5_K's unpacked scales (`SC`) and minimums (`MN`) lie
/// in a unit: sub-block j's 8 rows at `SC + 8j`. Their pieces of values
/// follow at `MN + 64` (Q5_K: 4 pieces of `qh`, then its 16 of nibbles).
const SC: usize = 32;
const MN: usize = 96;

/// Where Q6_K's scales (scale s's 8 rows at `S6 + 8s`) and its pieces of
/// values (`V6`: 16 pieces of `ql`, then 8 of `qh`) lie in a unit.
const S6: usize = 16;
const V6: usize = S6 + 128;

/// Calls `f(block offset, unit offset, length)` for the parts of row `r`'s
/// block that move as bytes: its d, its m (Q4_1) or dmin (Q4_K, Q5_K),
/// Q6_K's scales, and its 8-byte pieces of values. (Q4_K's and Q5_K's
/// packed scales are converted apart.)
fn moves(ty: GgmlType, r: usize, mut f: impl FnMut(usize, usize, usize)) {
    if ty == GgmlType::Q6K {
        f(208, 2 * r, 2);
        for s in 0..16 {
            f(192 + s, S6 + 8 * s + r, 1);
        }
        for h in 0..24 {
            f(8 * h, V6 + 64 * h + 8 * r, 8);
        }
        return;
    }
    let bb = ty.block().1;
    // The bytes before the values, and where the values start in a unit.
    let (head, values) = match ty {
        GgmlType::Q4_1 => (4, 32),
        GgmlType::Q4K | GgmlType::Q5K => (16, MN + 64),
        _ => (2, 16),
    };
    f(0, 2 * r, 2);
    if head > 2 {
        f(2, 16 + 2 * r, 2);
    }
    for h in 0..(bb - head) / 8 {
        f(head + 8 * h, values + 64 * h + 8 * r, 8);
    }
}

/// Row `r`'s block `blk` into `unit`.
fn put(ty: GgmlType, blk: &[u8], r: usize, unit: &mut [u8]) {
    moves(ty, r, |from, to, len| {
        unit[to..to + len].copy_from_slice(&blk[from..from + len])
    });
    if six_bit(ty) {
        for j in 0..8 {
            let (sc, mn) = crate::quant::scale_min_k4(j, &blk[4..16]);
            (unit[SC + 8 * j + r], unit[MN + 8 * j + r]) = (sc as u8, mn as u8);
        }
    }
}

/// Row `r`'s block back from `unit` into `blk`, byte for byte.
fn take(ty: GgmlType, unit: &[u8], r: usize, blk: &mut [u8]) {
    moves(ty, r, |from, to, len| {
        blk[from..from + len].copy_from_slice(&unit[to..to + len])
    });
    if six_bit(ty) {
        // GGML's 12 bytes of 6-bit values (`get_scale_min_k4` inverted):
        // sub-blocks 0–3 in the low 6 bits of bytes 0–7, 4–7's low 4 bits
        // in bytes 8–11 and their top 2 bits in the top of bytes 0–7.
        let (sc, mn) = (
            |j: usize| unit[SC + 8 * j + r],
            |j: usize| unit[MN + 8 * j + r],
        );
        for j in 0..4 {
            blk[4 + j] = sc(j) | (sc(j + 4) >> 4) << 6;
            blk[8 + j] = mn(j) | (mn(j + 4) >> 4) << 6;
            blk[12 + j] = (sc(j + 4) & 0xF) | (mn(j + 4) & 0xF) << 4;
        }
    }
}

/// `bytes` (GGML rows of `k` values, a whole number of groups) interleaved,
/// groups in parallel (a 1B-size model's are 0.6 GB).
pub fn pack(ty: GgmlType, bytes: &[u8], k: usize) -> Vec<u8> {
    use rayon::prelude::*;
    let rb = ty.bytes_for(k).expect("whole blocks a row");
    let bb = ty.block().1;
    assert!(kind(ty) && k > 0 && bytes.len().is_multiple_of(ROWS * rb));
    let mut out = vec![0u8; bytes.len() / (ROWS * rb) * group_bytes(ty, k)];
    let groups = out
        .par_chunks_mut(group_bytes(ty, k))
        .zip(bytes.par_chunks(ROWS * rb));
    groups.for_each(|(to, from)| {
        for (b, u) in to.chunks_exact_mut(unit(ty)).enumerate() {
            for r in 0..ROWS {
                put(ty, &from[r * rb + b * bb..][..bb], r, u);
            }
        }
    });
    out
}

/// Row `j`'s block `b` of interleaved `packed` (rows of `k` values) back in
/// GGML's layout, into `blk`.
fn block_into(ty: GgmlType, packed: &[u8], k: usize, j: usize, b: usize, blk: &mut [u8]) {
    let at = j / ROWS * group_bytes(ty, k) + b * unit(ty);
    take(ty, &packed[at..at + unit(ty)], j % ROWS, blk);
}

/// Values `start..start + out.len()` of interleaved rows of `k` values,
/// rebuilding only the blocks they lie in.
pub fn widen_into(ty: GgmlType, packed: &[u8], k: usize, start: usize, out: &mut [f32]) {
    let (bv, bb) = ty.block();
    let mut blk = [0u8; MAX_BLOCK];
    let (mut at, mut done) = (start, 0);
    while done < out.len() {
        let (j, off) = (at / k, at % k);
        let len = (bv - off % bv).min(out.len() - done);
        block_into(ty, packed, k, j, off / bv, &mut blk[..bb]);
        crate::quant::dequantize_into(ty, &blk[..bb], off % bv, &mut out[done..done + len]);
        at += len;
        done += len;
    }
}

/// `t[(j - j0) · m + i] = x_i · w_j` for rows `j0..j0 + cols` of interleaved
/// `packed`, as [`int8::rows`] computes it for GGML's layout.
pub(super) fn rows(x: &Q8Rows, ty: GgmlType, packed: &[u8], j0: usize, cols: usize, t: &mut [f32]) {
    let (m, k) = (x.rows(), x.cols());
    let gb = group_bytes(ty, k);
    assert!(kind(ty) && k.is_multiple_of(ty.block().0) && t.len() >= cols * m);
    assert!((j0 + cols).div_ceil(ROWS) * gb <= packed.len());
    // The K-quants' kernels multiply their scales in integers: one d of x
    // a super-block.
    let k_quant = matches!(ty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K);
    assert!(
        !k_quant || x.span() == int8::SUPER,
        "{ty:?} needs x rounded per super-block"
    );
    #[cfg(target_arch = "x86_64")]
    if int8::tiles_many_rows() && j0.is_multiple_of(ROWS) && cols.is_multiple_of(ROWS) {
        // x in blocks of rows that stay in L2 while the task's groups pass
        // over them (a prompt's x is megabytes).
        for xb in (0..m).step_by(X_BLOCK) {
            let end = (xb + X_BLOCK).min(m);
            for g in (j0..j0 + cols).step_by(ROWS) {
                let group = &packed[g / ROWS * gb..][..gb];
                let mut i0 = xb;
                while i0 < end {
                    let r = int8::pass_rows(end - i0);
                    // SAFETY: the CPU has AVX-512F/BW/VNNI and F16C
                    // (`tiles_many_rows`); the group is 8 whole rows and x
                    // rows i0..i0 + r are inside x.
                    let acc = unsafe { group_type(ty, x, group, i0, r) };
                    for (q, a) in acc.iter().enumerate().take(r) {
                        for (c, v) in a.iter().enumerate() {
                            t[(g - j0 + c) * m + i0 + q] = *v;
                        }
                    }
                    i0 += r;
                }
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
    let bb = ty.block().1;
    let mut row = vec![0u8; ty.bytes_for(k).expect("whole blocks a row")];
    for c in 0..cols {
        for (b, blk) in row.chunks_exact_mut(bb).enumerate() {
            block_into(ty, packed, k, j0 + c, b, blk);
        }
        int8::rows_of(x, ty, &row, 0, 1, &mut t[c * m..(c + 1) * m]);
    }
}

/// [`group_vnni`], [`group_q4k`] or [`group_q6k`] for `ty` and `r` (1–4
/// or 8) x rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn group_type(ty: GgmlType, x: &Q8Rows, g: &[u8], i0: usize, r: usize) -> [[f32; 8]; 8] {
    // SAFETY: as the caller's.
    unsafe {
        match ty {
            GgmlType::Q4_0 => group_rows::<0>(x, g, i0, r),
            GgmlType::Q4_1 => group_rows::<1>(x, g, i0, r),
            GgmlType::Q8_0 => group_rows::<2>(x, g, i0, r),
            GgmlType::Q4K => group_rows::<3>(x, g, i0, r),
            GgmlType::Q6K => group_rows::<4>(x, g, i0, r),
            GgmlType::Q5K => group_rows::<5>(x, g, i0, r),
            _ => unreachable!("{ty:?} has no interleaved layout"),
        }
    }
}

/// The kernel of type `T` (0 Q4_0, 1 Q4_1, 2 Q8_0, 3 Q4_K, 4 Q6_K, 5
/// Q5_K) for `r` (1–4 or 8) x rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn group_rows<const T: u8>(x: &Q8Rows, g: &[u8], i0: usize, r: usize) -> [[f32; 8]; 8] {
    // SAFETY: as the caller's.
    unsafe {
        match (T, r) {
            (3, 1) => group_q4k::<1, false>(x, g, i0),
            (3, 2) => group_q4k::<2, false>(x, g, i0),
            (3, 3) => group_q4k::<3, false>(x, g, i0),
            (3, 4) => group_q4k::<4, false>(x, g, i0),
            (3, _) => group_q4k::<8, false>(x, g, i0),
            (5, 1) => group_q4k::<1, true>(x, g, i0),
            (5, 2) => group_q4k::<2, true>(x, g, i0),
            (5, 3) => group_q4k::<3, true>(x, g, i0),
            (5, 4) => group_q4k::<4, true>(x, g, i0),
            (5, _) => group_q4k::<8, true>(x, g, i0),
            (4, 1) => group_q6k::<1>(x, g, i0),
            (4, 2) => group_q6k::<2>(x, g, i0),
            (4, 3) => group_q6k::<3>(x, g, i0),
            (4, 4) => group_q6k::<4>(x, g, i0),
            (4, _) => group_q6k::<8>(x, g, i0),
            (_, 1) => group_vnni::<1, T>(x, g, i0),
            (_, 2) => group_vnni::<2, T>(x, g, i0),
            (_, 3) => group_vnni::<3, T>(x, g, i0),
            (_, 4) => group_vnni::<4, T>(x, g, i0),
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

/// x rows `i0..i0 + R` as the kernels read their blocks, without bounds
/// checks or index arithmetic per read (at batch 32 they were a large share
/// of a tile's instructions).
struct XRows<'a, const R: usize> {
    x: &'a Q8Rows,
    /// Each row's block 0, as [`Q8Rows::block_at`] numbers blocks.
    first: [usize; R],
    /// Each row's super-block 0 in [`Q8Rows::super_parts`]' `mins`.
    supers: [usize; R],
}

impl<'a, const R: usize> XRows<'a, R> {
    fn new(x: &'a Q8Rows, i0: usize) -> Self {
        assert!(i0 + R <= x.rows());
        let (mut first, mut supers) = ([0; R], [0; R]);
        for q in 0..R {
            first[q] = x.block_at(i0 + q, 0);
            supers[q] = (i0 + q) * (x.cols() / int8::SUPER);
        }
        XRows { x, first, supers }
    }

    /// Row q's block b: where its 32 integers start, as 4 `i64` of 8.
    /// (Safety of the readers: q < R and b within a row's blocks.)
    #[inline(always)]
    unsafe fn ints(&self, q: usize, b: usize) -> *const i64 {
        // SAFETY: the caller's; rows have `nb · 32` integers.
        unsafe {
            self.x
                .parts()
                .0
                .as_ptr()
                .add((self.first[q] + b) * 32)
                .cast()
        }
    }

    /// Row q's block b's d.
    #[inline(always)]
    unsafe fn d(&self, q: usize, b: usize) -> f32 {
        // SAFETY: the caller's; 8 lanes a block.
        unsafe { *self.x.parts().1.get_unchecked((self.first[q] + b) * 8) }
    }

    /// Row q's block b's `d · Σ q / 2`: the Σ x term's share of each of an
    /// interleaved row's two lanes (`sl` holds an eighth).
    #[inline(always)]
    unsafe fn half_sum(&self, q: usize, b: usize) -> f32 {
        // SAFETY: the caller's; 8 lanes a block.
        unsafe { *self.x.parts().2.get_unchecked((self.first[q] + b) * 8) * 4.0 }
    }

    /// Row q's block b's `−4 · Σ q`.
    #[inline(always)]
    unsafe fn n4(&self, q: usize, b: usize) -> i32 {
        // SAFETY: the caller's; one a block.
        unsafe { *self.x.parts().3.get_unchecked(self.first[q] + b) }
    }

    /// Row q's super-block s's Q4_K minimum patterns (per-[`int8::SUPER`]
    /// x only).
    #[inline(always)]
    unsafe fn mins(&self, q: usize, s: usize) -> *const i16 {
        // SAFETY: the caller's; one a super-block.
        unsafe {
            self.x
                .super_parts()
                .0
                .as_ptr()
                .add(self.supers[q] + s)
                .cast()
        }
    }

    /// Row q's block b's Q6_K and Q5_K offsets, lane pair by lane pair
    /// (per-[`int8::SUPER`] x only).
    #[inline(always)]
    unsafe fn offsets(&self, q: usize, b: usize) -> [i64; 3] {
        // SAFETY: the caller's; one a block.
        unsafe { *self.x.super_parts().1.get_unchecked(self.first[q] + b) }
    }
}

/// Each x row's 8 dot products from its accumulator: row r's on lanes 2r
/// and 2r + 1, or (`QUAD`) on lanes l and l + 2 for l = 4 · ⌊r / 2⌋ +
/// r mod 2, as [`QUAD`] lays them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn lane_sums<const R: usize, const QUAD: bool>(
    acc: &[std::arch::x86_64::__m512; R],
) -> [[f32; 8]; 8] {
    use std::arch::x86_64::*;
    let mut out = [[0f32; 8]; 8];
    for (q, acc) in acc.iter().enumerate() {
        let mut lanes = [0f32; 16];
        // SAFETY: 16 f32 into a 16-f32 array.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *acc) };
        for (r, o) in out[q].iter_mut().enumerate() {
            let (a, b) = match QUAD {
                false => (2 * r, 2 * r + 1),
                true => (4 * (r / 2) + r % 2, 4 * (r / 2) + r % 2 + 2),
            };
            *o = lanes[a] + lanes[b];
        }
    }
    out
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
    let xr = XRows::<R>::new(x, i0);
    let mut acc = [_mm512_setzero_ps(); R];
    // SAFETY: block b's bytes of the group are inside `g` (8 whole rows of
    // k / 32 blocks); x reads stay inside rows i0..i0 + R.
    unsafe {
        for b in 0..x.cols() / 32 {
            let p = g.as_ptr().add(b * ROWS * bb);
            // The lines 6 KiB on, into L2 (a batch-1 pass waits on memory
            // without; about as far as the K-quants' [`AHEAD`]).
            for l in 0..bb.div_ceil(8) {
                super::prefetch_l2(p.wrapping_add(6144 + 64 * l));
            }
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
                let xq = xr.ints(q, b);
                let mut s = _mm512_set1_epi32(offset * xr.n4(q, b));
                for (h, w) in w.iter().enumerate() {
                    s = _mm512_dpbusd_epi32(s, *w, _mm512_set1_epi64(xq.add(h).read_unaligned()));
                }
                let dx = _mm512_set1_ps(xr.d(q, b));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dx), *acc);
                if T == 1 {
                    *acc = _mm512_fmadd_ps(mw, _mm512_set1_ps(xr.half_sum(q, b)), *acc);
                }
            }
        }
        lane_sums::<R, false>(&acc)
    }
}

/// How the K-quants' kernels lay out their integer sums: `vpackssdw` of two
/// blocks' sums (rows on lanes 2r and 2r + 1, each lane's sum within an
/// `i16`) then `vpdpwssd` by their scales leaves lane 4L + e holding row
/// 2L + (e & 1)'s scaled sum of block e >> 1. `QUAD[lane]`: the row.
const QUAD: [i32; 16] = quad();

const fn quad() -> [i32; 16] {
    let mut t = [0; 16];
    let mut l = 0;
    while l < 16 {
        t[l] = (2 * (l / 4) + l % 2) as i32;
        l += 1;
    }
    t
}

/// How many units ahead the K-quant kernels ask for their weights (into L2):
/// at batch 1 a pass waits on memory, and one unit ahead into L1 was too
/// close on an EPYC Zen 4 (1B-size Q4_K_M decoding 25–27 tokens/s against
/// 32–38 three to five units ahead; bench/RESULTS.md).
const AHEAD: usize = 5;

/// `vpermw` indices that spread 16 byte scales (8 rows of block a, then 8
/// of block b, widened to `i16`) over [`QUAD`]'s lanes, each twice (both
/// halves of a `vpdpwssd` pair).
static PAIR_SCALES: [i16; 32] = spread(8, 0);

/// `vpermw` indices that spread Q4_K's minimums (and Q5_K's scales) of 4
/// sub-blocks (8 rows each, widened) over [`QUAD`]'s lanes: lane 4L + e's
/// pair is sub-blocks e >> 1 and (e >> 1) + 2, as `Q8Rows`' `mins` pattern
/// pairs x's sums.
static PAIR_MINS: [i16; 32] = spread(8, 16);

/// Lane 4L + e's pair of words: row 2L + (e & 1) of the source's rows of
/// 8, from its row block `(e >> 1) · block + half · pair` (half 0 or 1).
const fn spread(block: usize, pair: usize) -> [i16; 32] {
    let mut t = [0; 32];
    let mut p = 0;
    while p < 32 {
        let (l, half) = (p / 2, p % 2);
        let (at, e) = (l / 4, l % 4);
        t[p] = ((e >> 1) * block + half * pair + 2 * at + (e & 1)) as i16;
        p += 1;
    }
    t
}

/// The 8 f16 scales at `p` on [`QUAD`]'s lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
#[inline]
unsafe fn quad_scales(p: *const u8) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // SAFETY: the caller's 16 bytes at p; QUAD is 16 i32.
    unsafe {
        let s = _mm256_cvtph_ps(_mm_loadu_si128(p.cast()));
        _mm512_permutexvar_ps(
            _mm512_loadu_si512(QUAD.as_ptr().cast()),
            _mm512_castps256_ps512(s),
        )
    }
}

/// `n` (16 or 32) bytes at `p` as `i16` (`SIGNED`: Q6_K's i8 scales, else
/// Q4_K's u8) permuted by `table`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn byte_words<const SIGNED: bool>(
    p: *const u8,
    n: usize,
    table: &[i16; 32],
) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    // SAFETY: the caller's n bytes at p.
    unsafe {
        let words = match (n, SIGNED) {
            (16, true) => _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast()))),
            (16, false) => _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast()))),
            _ => _mm512_cvtepu8_epi16(_mm256_loadu_si256(p.cast())),
        };
        _mm512_permutexvar_epi16(_mm512_loadu_si512(table.as_ptr().cast()), words)
    }
}

/// Piece `h` (8 bytes) of the x block at `x`, on every 64-bit lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn xs(x: *const i64, h: usize) -> std::arch::x86_64::__m512i {
    // SAFETY: the caller's block of 4 pieces at x.
    std::arch::x86_64::_mm512_set1_epi64(unsafe { x.add(h).read_unaligned() })
}

/// [`group_vnni`] for Q4_K (Q5_K where `Q5`) against x rounded per
/// super-block (one d for 256 values, as ggml's `Q8_K`), so that the 6-bit
/// scales multiply in integers as ggml's `vec_dot_q4_K_q8_K` does: per
/// 64-value chunk four 64-byte loads whose low nibbles are sub-block 2c
/// and high nibbles sub-block 2c + 1 (Q5_K: each joined with its bit of
/// `qh` as bit 4), each sub-block's four `vpdpbusd` (Q4_K: at most 16 · 15
/// · 127 a lane; Q5_K's start from −16 · Σ x of the lane, so at most 16 ·
/// 16 · 127), the two packed to `i16` and multiplied by their scales with
/// one `vpdpwssd`; the minimums (and Q5_K's 16 · scale) by x's sub-block
/// sums likewise; one float step per super-block: d · d_x · Σ less dmin ·
/// d_x · Σ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn group_q4k<const R: usize, const Q5: bool>(
    x: &Q8Rows,
    g: &[u8],
    i0: usize,
) -> [[f32; 8]; 8] {
    use std::arch::x86_64::*;
    let (nib, bit4) = (_mm512_set1_epi8(0xF), _mm512_set1_epi8(0x10));
    let zero = _mm512_setzero_si512();
    let xr = XRows::<R>::new(x, i0);
    let mut acc = [_mm512_setzero_ps(); R];
    let u = unit(if Q5 { GgmlType::Q5K } else { GgmlType::Q4K });
    // Q5_K's 4 pieces of `qh` come first.
    let nibbles = MN + 64 + if Q5 { 256 } else { 0 };
    // SAFETY: super-block s's unit is inside `g` (8 whole rows of k / 256
    // units); x reads stay inside rows i0..i0 + R.
    unsafe {
        for s in 0..x.cols() / 256 {
            let p = g.as_ptr().add(s * u);
            let mut qh = [zero; 4];
            if Q5 {
                for (h, q) in qh.iter_mut().enumerate() {
                    *q = _mm512_loadu_si512(p.add(MN + 64 + 64 * h).cast());
                }
            }
            let mut sums = [zero; R];
            for c in 0..4 {
                let v = p.add(nibbles + 256 * c).cast::<__m512i>();
                // The lines of the super-block AHEAD on (a batch-1 pass
                // waits on memory without).
                for h in 0..4 {
                    super::prefetch_l2(v.wrapping_byte_add(AHEAD * u).wrapping_add(h));
                }
                super::prefetch_l2(p.wrapping_add(AHEAD * u + 64 * c));
                if Q5 {
                    super::prefetch_l2(p.wrapping_add(AHEAD * u + 256 + 64 * c));
                }
                let w = [
                    _mm512_loadu_si512(v),
                    _mm512_loadu_si512(v.add(1)),
                    _mm512_loadu_si512(v.add(2)),
                    _mm512_loadu_si512(v.add(3)),
                ];
                // (No closures: they do not inherit `target_feature`.)
                let (mut lo, mut hi) = (w, w);
                for h in 0..4 {
                    lo[h] = _mm512_and_si512(w[h], nib);
                    hi[h] = _mm512_and_si512(_mm512_srli_epi16::<4>(w[h]), nib);
                    if Q5 {
                        // Bits 2c and 2c + 1 of qh to bit 4.
                        let q = _mm512_srl_epi16(qh[h], _mm_cvtsi32_si128(2 * c as i32));
                        let (l4, h4) = (_mm512_slli_epi16::<4>(q), _mm512_slli_epi16::<3>(q));
                        lo[h] = _mm512_or_si512(lo[h], _mm512_and_si512(l4, bit4));
                        hi[h] = _mm512_or_si512(hi[h], _mm512_and_si512(h4, bit4));
                    }
                }
                let sc = byte_words::<false>(p.add(SC + 16 * c), 16, &PAIR_SCALES);
                for (q, sum) in sums.iter_mut().enumerate() {
                    let b = 8 * s + 2 * c;
                    let (xa, xb) = (xr.ints(q, b), xr.ints(q, b + 1));
                    let (mut sa, mut sb) = match Q5 {
                        true => (
                            _mm512_set1_epi64(xr.offsets(q, b)[2]),
                            _mm512_set1_epi64(xr.offsets(q, b + 1)[2]),
                        ),
                        false => (zero, zero),
                    };
                    for h in 0..4 {
                        sa = _mm512_dpbusd_epi32(sa, lo[h], xs(xa, h));
                        sb = _mm512_dpbusd_epi32(sb, hi[h], xs(xb, h));
                    }
                    *sum = _mm512_dpwssd_epi32(*sum, _mm512_packs_epi32(sa, sb), sc);
                }
            }
            let (d, dmin) = (quad_scales(p), quad_scales(p.add(16)));
            let mins = [
                byte_words::<false>(p.add(MN), 32, &PAIR_MINS),
                byte_words::<false>(p.add(MN + 32), 32, &PAIR_MINS),
            ];
            let mut scales = [zero; 2];
            if Q5 {
                scales = [
                    byte_words::<false>(p.add(SC), 32, &PAIR_MINS),
                    byte_words::<false>(p.add(SC + 32), 32, &PAIR_MINS),
                ];
            }
            for (q, acc) in acc.iter_mut().enumerate() {
                let xm = xr.mins(q, s);
                let (mut m, mut t) = (zero, sums[q]);
                for h in 0..2 {
                    let xs = _mm512_broadcast_i32x4(_mm_loadu_si128(xm.add(8 * h).cast()));
                    m = _mm512_dpwssd_epi32(m, mins[h], xs);
                    if Q5 {
                        // What the offsets took away: 16 · sc · Σ x of
                        // each sub-block.
                        let back = _mm512_dpwssd_epi32(zero, scales[h], xs);
                        t = _mm512_add_epi32(t, _mm512_slli_epi32::<4>(back));
                    }
                }
                let dx = _mm512_set1_ps(xr.d(q, 8 * s));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(d, dx), *acc);
                *acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dmin, dx), *acc);
            }
        }
        lane_sums::<R, true>(&acc)
    }
}

/// [`group_q4k`] for Q6_K: per 128-value half n, four 64-byte loads of
/// its high bits (`qh`) and eight of its low nibbles (`ql`: four for each
/// of the sub-block pairs (4n, 4n + 2) and (4n + 1, 4n + 3), low and high
/// nibbles), each 32-value sub-block t's 6-bit values joined from its
/// nibbles and bits `2t..2t + 2` of `qh`; its two 16-value halves' sums
/// start from −32 · Σ x of each lane's own values (so that a lane's sum,
/// at most 8 · 32 · 127, packs to `i16`) and are multiplied by their i8
/// scales with one `vpdpwssd`; one float step per super-block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn group_q6k<const R: usize>(x: &Q8Rows, g: &[u8], i0: usize) -> [[f32; 8]; 8] {
    use std::arch::x86_64::*;
    let (nib, top) = (_mm512_set1_epi8(0xF), _mm512_set1_epi8(0x30));
    let zero = _mm512_setzero_si512();
    let xr = XRows::<R>::new(x, i0);
    let mut acc = [_mm512_setzero_ps(); R];
    let u = unit(GgmlType::Q6K);
    // SAFETY: super-block s's unit is inside `g` (8 whole rows of k / 256
    // units); x reads stay inside rows i0..i0 + R.
    unsafe {
        for s in 0..x.cols() / 256 {
            let p = g.as_ptr().add(s * u);
            let pieces = p.add(V6).cast::<__m512i>();
            let mut sums = [zero; R];
            for n in 0..2 {
                let (mut qh, mut ql) = ([zero; 4], [[zero; 4]; 2]);
                for h in 0..4 {
                    qh[h] = _mm512_loadu_si512(pieces.add(16 + 4 * n + h));
                    ql[0][h] = _mm512_loadu_si512(pieces.add(8 * n + h));
                    ql[1][h] = _mm512_loadu_si512(pieces.add(8 * n + 4 + h));
                }
                for t in 0..4 {
                    // The lines of the super-block AHEAD on, 4 a step (32
                    // lines cover its 1,680 bytes).
                    for l in 0..4 {
                        super::prefetch_l2(p.wrapping_add(AHEAD * u + 64 * (16 * n + 4 * t + l)));
                    }
                    let mut w = [zero; 4];
                    for (h, w) in w.iter_mut().enumerate() {
                        let lo = match t < 2 {
                            true => ql[t][h],
                            false => _mm512_srli_epi16::<4>(ql[t - 2][h]),
                        };
                        // Bits 2t..2t + 2 of qh to bits 4–5.
                        let hi = match t {
                            0 => _mm512_slli_epi16::<4>(qh[h]),
                            1 => _mm512_slli_epi16::<2>(qh[h]),
                            2 => qh[h],
                            _ => _mm512_srli_epi16::<2>(qh[h]),
                        };
                        *w = _mm512_or_si512(_mm512_and_si512(lo, nib), _mm512_and_si512(hi, top));
                    }
                    let j = 4 * n + t;
                    let sc = byte_words::<true>(p.add(S6 + 16 * j), 16, &PAIR_SCALES);
                    for (q, sum) in sums.iter_mut().enumerate() {
                        let b = 8 * s + j;
                        let xq = xr.ints(q, b);
                        let [oa, ob, _] = xr.offsets(q, b);
                        let (mut sa, mut sb) = (_mm512_set1_epi64(oa), _mm512_set1_epi64(ob));
                        for h in 0..2 {
                            let (xa, xb) =
                                (xq.add(h).read_unaligned(), xq.add(2 + h).read_unaligned());
                            sa = _mm512_dpbusd_epi32(sa, w[h], _mm512_set1_epi64(xa));
                            sb = _mm512_dpbusd_epi32(sb, w[2 + h], _mm512_set1_epi64(xb));
                        }
                        *sum = _mm512_dpwssd_epi32(*sum, _mm512_packs_epi32(sa, sb), sc);
                    }
                }
            }
            let d = quad_scales(p);
            for (q, acc) in acc.iter_mut().enumerate() {
                let dx = _mm512_set1_ps(xr.d(q, 8 * s));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[q]), _mm512_mul_ps(d, dx), *acc);
            }
        }
        lane_sums::<R, true>(&acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: [GgmlType; 6] = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ];

    /// Blocks of `n` rows of `k` values: varied values (and Q4_K scales),
    /// small f16 scales (Q4_1's minimums, Q4_K's dmin).
    fn weights(ty: GgmlType, n: usize, k: usize) -> Vec<u8> {
        let (bv, bb) = ty.block();
        let mut b: Vec<u8> = (0..n * k / bv * bb)
            .map(|i| (i * 131 % 251) as u8)
            .collect();
        for (i, blk) in b.chunks_mut(bb).enumerate() {
            let d = half::f16::from_f32(0.01 + (i % 7) as f32 * 1e-3);
            // Q6_K's d comes last.
            let at = if ty == GgmlType::Q6K { 208 } else { 0 };
            blk[at..at + 2].copy_from_slice(&d.to_le_bytes());
            if matches!(ty, GgmlType::Q4_1 | GgmlType::Q4K | GgmlType::Q5K) {
                blk[2..4].copy_from_slice(&half::f16::from_f32(-0.05).to_le_bytes());
            }
        }
        b
    }

    /// Values a row in these tests: several blocks (Q4_K: super-blocks).
    fn cols(ty: GgmlType) -> usize {
        match ty {
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => 512,
            _ => 160,
        }
    }

    /// The interleaved kernel (where the CPU runs it) and the row-at-a-time
    /// fallback give GGML layout's products, for x row counts that take
    /// every tile height and a task of several groups from an offset.
    #[test]
    fn products_match_the_row_layout() {
        for ty in TYPES {
            let (n, k) = (32, cols(ty));
            let plain = weights(ty, n, k);
            let packed = pack(ty, &plain, k);
            for m in [1, 3, 8, 13] {
                let xs: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let span = if ty.block().0 == 256 { int8::SUPER } else { 32 };
                let x = Q8Rows::new(&xs, m, k, span);
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

    /// The K-quants' sums pack to `i16` lane by lane: the largest (Q4_K's
    /// 15s, Q5_K's 31s, Q6_K's 31s and −32s, x at ±127 throughout) come out
    /// as GGML layout's unpacked sums.
    #[test]
    fn extreme_sums_stay_exact() {
        for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            let (n, k) = (8, 512);
            for (byte, sign) in [(0xFF, 1.0), (0xFF, -1.0), (0x00, 1.0)] {
                let mut plain = weights(ty, n, k);
                for blk in plain.chunks_exact_mut(ty.block().1) {
                    // The values' bytes (Q6_K: ql, qh); Q4_K's and Q5_K's
                    // after their d, dmin and scales.
                    let values = match ty {
                        GgmlType::Q6K => 0..192,
                        _ => 16..ty.block().1,
                    };
                    blk[values].fill(byte);
                }
                let packed = pack(ty, &plain, k);
                let xs = vec![sign; k];
                let x = Q8Rows::new(&xs, 1, k, int8::SUPER);
                let (mut want, mut got) = (vec![0f32; n], vec![0f32; n]);
                int8::rows_of(&x, ty, &plain, 0, n, &mut want);
                rows(&x, ty, &packed, 0, n, &mut got);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{ty:?} {byte}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// Every block comes back byte for byte (Q4_K's 6-bit scales too, from
    /// arbitrary bytes), and widening any range equals widening the plain
    /// rows.
    #[test]
    fn rows_come_back() {
        // No rows' worth of values: nothing to interleave.
        assert!(!packs(GgmlType::Q4_0, &[8, 0]));
        for ty in TYPES {
            let (n, k) = (16, 3 * ty.block().0);
            let (bv, bb) = ty.block();
            let rb = ty.bytes_for(k).unwrap();
            let mut plain: Vec<u8> = (0..n * rb).map(|i| (i * 37 % 251) as u8).collect();
            // No f16 infinite or NaN: their high bytes masked, all other
            // bytes (Q4_K's packed scales too) left arbitrary.
            let halves: &[usize] = match ty {
                GgmlType::Q4_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
                GgmlType::Q6K => &[208],
                _ => &[0],
            };
            for blk in plain.chunks_exact_mut(bb) {
                for h in halves {
                    blk[h + 1] &= 0x3B;
                }
            }
            let packed = pack(ty, &plain, k);
            assert_eq!(packed.len(), n / ROWS * group_bytes(ty, k));
            let mut blk = [0u8; MAX_BLOCK];
            for j in 0..n {
                for b in 0..k / bv {
                    block_into(ty, &packed, k, j, b, &mut blk[..bb]);
                    assert_eq!(blk[..bb], plain[j * rb + b * bb..][..bb], "{ty:?} {j}.{b}");
                }
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
