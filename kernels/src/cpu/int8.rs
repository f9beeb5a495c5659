//! 8-bit activations against GGML's Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K blocks,
//! as llama.cpp multiplies them: every 32 values of x become `d · q`, q an
//! integer in −127..=127 and d = max|x| / 127 kept at f16 precision (ggml's
//! `quantize_row_q8_0`/`q8_1`), and a weight block's dot product is
//! `d_w · d_x · Σ q_w q_x`, plus `m_w · d_x · Σ q_x` for Q4_1's and Q4_K's
//! minimum (ggml's `vec_dot_q4_0_q8_0`, `vec_dot_q4_1_q8_1`,
//! `vec_dot_q8_0_q8_0`, `vec_dot_q4_K_q8_K`, `vec_dot_q5_K_q8_K`,
//! `vec_dot_q6_K_q8_K`). For
//! K-quants x is rounded per 256 values with an f32 d, as ggml's
//! `quantize_row_q8_K` rounds it ([`SUPER`]: one d for a super-block's 8
//! blocks, so that the interleaved kernels sum the weights' scales in
//! integers and take one float step per 256 values); their 32-value weight
//! blocks carry a 6-bit scale and minimum (Q4_K; Q5_K, whose values have
//! a fifth bit in `qh`) or two 16-value i8 scales
//! (Q6_K, whose values are q − 32). The integer sums are exact: AVX-512
//! VNNI (`vpdpbusd`, two blocks of byte products a step), AVX2
//! (`vpmaddubsw`) and the portable loops differ only in the order of their
//! f32 sums, and widened weights by x [`round`]ed the same way (the
//! benchmark's peer) give the same values again. Products of up to
//! `gemm::TILES_M` rows take the integer tiles (8 x rows a pass) where the
//! CPU has AVX-512 VNNI; longer prompts and other CPUs' batches of more
//! than 16 rows multiply widened weights by x [`round`]ed: the same values
//! but for the order of the sums. On VNNI CPUs, Q4_0/Q4_1/Q8_0/Q4_K/Q5_K/Q6_K
//! matrices of whole groups of 8 rows are kept interleaved and multiplied
//! by [`super::packed`]'s kernels from these same x blocks. (Unlike ggml, Q4_1's
//! `d_x · Σ q_x` is not rounded to f16 a second time, so that the two forms
//! agree.)

use super::Data;
use crate::quant::GgmlType;
use half::f16;

/// Values per block of x (and of the weights).
const QK: usize = 32;

/// Rows of x quantised per 32 values (or per [`SUPER`] for the K-quants:
/// one d for 8 blocks); each row is padded with zero blocks to an even
/// count (the AVX-512 kernel takes two blocks a step).
pub struct Q8Rows {
    m: usize,
    k: usize,
    /// Values one d covers: 32, or [`SUPER`].
    span: usize,
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
    /// `−4 · Σ q` per block: the same offset spread over the 2 lanes of
    /// an interleaved row ([`super::packed`]).
    n4: Vec<i32>,
    /// Per-[`SUPER`] rows only, per super-block: its 8 blocks' Σ q in the
    /// order Q4_K's interleaved minimums multiply them, two 128-bit
    /// patterns `[s0, s2, s0, s2, s1, s3, s1, s3]` and the same from s4.
    mins: Vec<[i16; 16]>,
    /// Per-[`SUPER`] rows only, per block: `−32 · Σ q` of the values each
    /// lane of an interleaved row's integer sums sees, for the block's two
    /// 16-value halves (lanes 2r and 2r + 1 as one `i64`): Q6_K's offset
    /// (its values are q − 32), lane by lane so that each lane's sum stays
    /// within an `i16`; then `−16 · Σ q` of each lane's 16 values of the
    /// whole block, Q5_K's (its values taken as q − 16 for the same reason).
    offsets: Vec<[i64; 3]>,
}

/// Values one d of x covers for the K-quants, as ggml's `Q8_K` rounds x.
pub const SUPER: usize = 256;

impl Q8Rows {
    /// Quantises the `m` rows of `x` (`k` values each, a multiple of
    /// `span`: 32, or [`SUPER`] for the K-quants' integer sums).
    pub fn new(x: &[f32], m: usize, k: usize, span: usize) -> Q8Rows {
        assert!(matches!(span, QK | SUPER) && k.is_multiple_of(span) && x.len() >= m * k);
        let nb = (k / QK).next_multiple_of(2);
        let supers = if span == SUPER { k / SUPER } else { 0 };
        let mut r = Q8Rows {
            m,
            k,
            span,
            nb,
            q: vec![0; m * nb * QK],
            dl: vec![0.0; m * nb * 8],
            sl: vec![0.0; m * nb * 8],
            nl: vec![0; m * nb * 8],
            n4: vec![0; m * nb],
            mins: vec![[0; 16]; m * supers],
            offsets: vec![[0; 3]; if span == SUPER { m * nb } else { 0 }],
        };
        for i in 0..m {
            let (mut sums, mut sd) = ([0i32; 8], 0.0);
            for b in 0..k / QK {
                let at = (i * nb + b) * QK;
                let xs = &x[i * k + b * QK..][..QK];
                let q = &mut r.q[at..at + QK];
                if span == SUPER && b % 8 == 0 {
                    sd = scale_of(&x[i * k + b * QK..][..SUPER]);
                }
                // ggml keeps Q8_0's d at f16 precision and Q8_K's at f32.
                let d = match span {
                    QK => f16::from_f32(quantize(xs, q, scale_of(xs))).to_f32(),
                    _ => quantize(xs, q, sd),
                };
                // Sums of each lane's 4 integers; the halves' and the
                // block's are theirs.
                let mut lanes = [0i32; 8];
                for (s, four) in lanes.iter_mut().zip(q.chunks_exact(4)) {
                    *s = four.iter().map(|&v| v as i32).sum();
                }
                let sum: i32 = lanes.iter().sum();
                r.n4[i * nb + b] = -4 * sum;
                for (l, s) in lanes.iter().enumerate() {
                    let lane = (i * nb + b) * 8 + l;
                    r.dl[lane] = d;
                    r.sl[lane] = d * sum as f32 / 8.0;
                    r.nl[lane] = -8 * s;
                }
                if span == SUPER {
                    // An interleaved lane pair reads 8 bytes a step: the
                    // even lane bytes 0–3 of each, the odd lane 4–7.
                    let pair = |c: i32, lanes: &[i32]| {
                        let even: i32 = lanes.iter().step_by(2).sum();
                        let odd: i32 = lanes.iter().skip(1).step_by(2).sum();
                        (c * even) as u32 as i64 | ((c * odd) as i64) << 32
                    };
                    r.offsets[i * nb + b] = [
                        pair(-32, &lanes[..4]),
                        pair(-32, &lanes[4..]),
                        pair(-16, &lanes),
                    ];
                    sums[b % 8] = sum;
                    if b % 8 == 7 {
                        let s = |j: usize| sums[j] as i16;
                        let mut p = [0i16; 16];
                        for h in 0..2 {
                            let o = 4 * h;
                            p[8 * h..8 * h + 8].copy_from_slice(&[
                                s(o),
                                s(o + 2),
                                s(o),
                                s(o + 2),
                                s(o + 1),
                                s(o + 3),
                                s(o + 1),
                                s(o + 3),
                            ]);
                        }
                        r.mins[i * supers + b / 8] = p;
                    }
                }
            }
        }
        r
    }

    /// Rows quantised.
    #[inline]
    pub fn rows(&self) -> usize {
        self.m
    }

    /// Values a row.
    #[inline]
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Values one d covers: 32 or [`SUPER`].
    #[inline]
    pub fn span(&self) -> usize {
        self.span
    }

    /// The index of row `i`'s block `b`: its 32 integers start at 32 times
    /// it, its 8 lanes of `dl`, `sl` at 8 times it.
    #[inline]
    pub fn block_at(&self, i: usize, b: usize) -> usize {
        i * self.nb + b
    }

    /// The integers, `dl`, `sl` and `n4`, as the kernels read them.
    #[inline]
    pub fn parts(&self) -> (&[i8], &[f32], &[f32], &[i32]) {
        (&self.q, &self.dl, &self.sl, &self.n4)
    }

    /// Per-[`SUPER`] rows' `mins` (row `i`'s super-block s at
    /// `i · k / SUPER + s`) and `offsets` (by [`Self::block_at`]).
    #[inline]
    pub fn super_parts(&self) -> (&[[i16; 16]], &[[i64; 3]]) {
        (&self.mins, &self.offsets)
    }
}

/// The d that rounds `xs` to −127..=127: max |x| / 127 (NaN if any is).
fn scale_of(xs: &[f32]) -> f32 {
    // `max` skips NaN: a NaN value makes d NaN, so the block's products are.
    match xs.iter().any(|v| v.is_nan()) {
        true => f32::NAN,
        false => xs.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0,
    }
}

/// Rounds `xs` to `d · q`: sets q, returns d.
fn quantize(xs: &[f32], q: &mut [i8], d: f32) -> f32 {
    // Adding and taking away 1.5 · 2²³ rounds |v| ≤ 127 half to even, as
    // ggml's AVX code rounds, without a call to libm per value.
    const MAGIC: f32 = 12_582_912.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, v) in q.iter_mut().zip(xs) {
        // `as` saturates (NaN becomes 0; d carries it, as for ±inf).
        *q = ((v * id + MAGIC) - MAGIC) as i8;
    }
    d
}

/// The rows of `x` (`k` values each, a multiple of `span`) rounded as
/// [`Q8Rows`] rounds them, in f32: what widened weights multiply (more
/// than 16 rows without [`tiles_many_rows`], and the streaming kernel's
/// `registers: false`). Rows in parallel (a prefill's thousands).
pub fn round(x: &[f32], k: usize, span: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = x.to_vec();
    out.par_chunks_mut(k).for_each(|row| {
        for part in row.chunks_exact_mut(span) {
            let d = scale_of(part);
            for b in part.chunks_exact_mut(QK) {
                let mut q = [0i8; QK];
                let d = match span {
                    QK => f16::from_f32(quantize(b, &mut q, scale_of(b))).to_f32(),
                    _ => quantize(b, &mut q, d),
                };
                for (v, q) in b.iter_mut().zip(q) {
                    *v = d * q as f32;
                }
            }
        }
    });
    out
}

/// Values one d of x covers for weights in this storage, where they
/// multiply 8-bit activations ([`takes`]): [`SUPER`] for the K-quants, else 32.
pub fn span(w: &Data, k: usize) -> Option<usize> {
    let ty = match w {
        Data::Packed { ty, .. } | Data::Quant(ty, _) => *ty,
        _ => return None,
    };
    takes(w, k).then_some(match ty {
        GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => SUPER,
        _ => QK,
    })
}

/// Whether weights in this storage multiply 8-bit activations ([`rows`]).
pub fn takes(w: &Data, k: usize) -> bool {
    match w {
        Data::Packed { ty, k: packed, .. } => *packed == k && super::packed::kind(*ty),
        Data::Quant(ty, _) => takes_type(*ty, k),
        _ => false,
    }
}

/// Whether rows of `k` values of `ty` multiply 8-bit activations here: the
/// block types the kernels decode, in whole blocks.
fn takes_type(ty: GgmlType, k: usize) -> bool {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 => k.is_multiple_of(QK),
        GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => k.is_multiple_of(256),
        _ => false,
    }
}

/// `t[(j - j0) · m + i] = x_i · w_j` for weight rows `j0..j0 + cols` and
/// the `m` quantised rows of `x` (the transposed layout of `small_m`'s
/// tasks); `w` is storage [`takes`] accepts.
pub fn rows(x: &Q8Rows, w: &Data, j0: usize, cols: usize, t: &mut [f32]) {
    assert!(takes(w, x.k), "8-bit activations multiply GGML blocks only");
    match w {
        Data::Packed { ty, bytes, .. } => super::packed::rows(x, *ty, bytes, j0, cols, t),
        Data::Quant(ty, bytes) => rows_of(x, *ty, bytes, j0, cols, t),
        _ => unreachable!("`takes` is false"),
    }
}

/// [`rows`] for `bytes` in GGML's layout, rows of blocks of `ty`.
pub(super) fn rows_of(
    x: &Q8Rows,
    ty: GgmlType,
    bytes: &[u8],
    j0: usize,
    cols: usize,
    t: &mut [f32],
) {
    let (m, k) = (x.m, x.k);
    let rb = ty.bytes_for(k).expect("whole blocks a row");
    assert!(takes_type(ty, k), "{ty:?} blocks do not multiply 8-bit x");
    assert!(t.len() >= cols * m && (j0 + cols) * rb <= bytes.len());
    let row = |j: usize| &bytes[j * rb..(j + 1) * rb];
    #[cfg(target_arch = "x86_64")]
    if vnni() {
        // One weight row a pass for few x rows, two for more (see
        // `stored::ONE_ROW_M`).
        let step = if m <= super::stored::ONE_ROW_M { 1 } else { 2 };
        for c in (0..cols).step_by(step) {
            let ws = [row(j0 + c), row(j0 + (c + 1).min(cols - 1))];
            let mut i0 = 0;
            while i0 < m {
                let r = pass_rows(m - i0);
                // SAFETY: the CPU has AVX-512F/BW/VNNI and F16C (`vnni`); the
                // rows are whole rows of blocks and x rows are inside x.
                let acc = unsafe {
                    match step {
                        1 => tile_type::<1>(ty, x, ws, i0, r),
                        _ => tile_type::<2>(ty, x, ws, i0, r),
                    }
                };
                for (cc, a) in acc.iter().enumerate().take((cols - c).min(step)) {
                    for (q, v) in a.iter().enumerate().take(r) {
                        t[(c + cc) * m + i0 + q] = *v;
                    }
                }
                i0 += r;
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
                t[c * m + i] = unsafe { dot_avx2(x, ty, w, i) };
                continue;
            }
            t[c * m + i] = dot_portable(x, ty, w, i);
        }
    }
}

/// x rows an integer tile takes a pass with `left` rows to go: 8 where
/// there are, else up to 4 (the heights the tiles are built for).
pub(super) fn pass_rows(left: usize) -> usize {
    if left >= 8 { 8 } else { left.min(4) }
}

/// Where 32-value block `b` of a weight row of `ty` lies: the byte offset of
/// the GGML block holding it, and its index there (0 but for the K-quants'
/// 8 a super-block).
fn locate(ty: GgmlType, b: usize) -> (usize, usize) {
    let (values, bytes) = ty.block();
    let per = values / QK;
    (b / per * bytes, b % per)
}

/// One 32-value block `b` of a weight row: the scale of its first and of
/// its last 16 values (equal but for Q6_K's 16-value scales), the scale of
/// `Σ x` (Q4_1's minimum, Q4_K's −dmin · min), and its integers as they
/// multiply (Q4_0: q − 8, Q6_K: q − 32).
fn block(ty: GgmlType, w: &[u8], b: usize) -> ([f32; 2], f32, [i32; QK]) {
    let h = |at: usize| f16::from_le_bytes([w[at], w[at + 1]]).to_f32();
    let mut q = [0i32; QK];
    let (at, j) = locate(ty, b);
    match ty {
        GgmlType::Q8_0 => {
            for (v, &byte) in q.iter_mut().zip(&w[at + 2..at + 34]) {
                *v = byte as i8 as i32;
            }
            ([h(at); 2], 0.0, q)
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let off = if ty == GgmlType::Q4_0 { 8 } else { 0 };
            let qs = at + ty.block().1 - 16;
            for (l, &byte) in w[qs..qs + 16].iter().enumerate() {
                q[l] = (byte & 0xF) as i32 - off;
                q[l + 16] = (byte >> 4) as i32 - off;
            }
            let min = if ty == GgmlType::Q4_1 { h(at + 2) } else { 0.0 };
            ([h(at); 2], min, q)
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            let (sc, mn) = crate::quant::scale_min_k4(j, &w[at + 4..at + 16]);
            // Q5_K: bit j of qh[l] is value l's fifth bit.
            let (qs, qh) = match ty {
                GgmlType::Q4K => (at + 16, None),
                _ => (at + 48, Some(&w[at + 16..at + 48])),
            };
            let qs = qs + 32 * (j / 2);
            for (l, (v, &byte)) in q.iter_mut().zip(&w[qs..qs + 32]).enumerate() {
                let high = qh.map_or(0, |qh| (qh[l] >> j) & 1);
                *v = ((byte >> (4 * (j % 2))) & 0xF | high << 4) as i32;
            }
            ([h(at) * sc; 2], -h(at + 2) * mn, q)
        }
        _ => {
            // Q6_K: half n of 128 values, 32-value group t in it.
            let (n, t) = (j / 4, j % 4);
            let (ql, qh) = (at + 64 * n + 32 * (t % 2), at + 128 + 32 * n);
            for (l, v) in q.iter_mut().enumerate() {
                let lo = (w[ql + l] >> (4 * (t / 2))) & 0xF;
                let hi = (w[qh + l] >> (2 * t)) & 3;
                *v = (lo | hi << 4) as i32 - 32;
            }
            let sc = |i: usize| h(at + 208) * w[at + 192 + 8 * n + i] as i8 as f32;
            ([sc(2 * t), sc(2 * t + 1)], 0.0, q)
        }
    }
}

/// x row `i` by one weight row of blocks, in plain loops.
fn dot_portable(x: &Q8Rows, ty: GgmlType, w: &[u8], i: usize) -> f32 {
    let mut acc = 0f32;
    for b in 0..x.k / QK {
        let (dw, mw, qw) = block(ty, w, b);
        let at = (x.nb * i + b) * QK;
        let qx = &x.q[at..at + QK];
        let half = |r: std::ops::Range<usize>| -> i32 { r.map(|v| qw[v] * qx[v] as i32).sum() };
        let lane = (x.nb * i + b) * 8;
        let (s0, s1) = (half(0..16) as f32, half(16..32) as f32);
        acc += x.dl[lane] * (dw[0] * s0 + dw[1] * s1) + mw * x.sl[lane] * 8.0;
    }
    acc
}

/// The integer-dot path GGML blocks take here, for log lines (`None`: the
/// portable loops).
pub fn path() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        if vnni() {
            return Some("avx512_vnni");
        }
        if avx2() {
            return Some("avx2");
        }
    }
    None
}

/// Whether streaming products of more than 16 rows (decoding batches, up to
/// 64) run faster as integer tiles (AVX-512 VNNI, 8 rows a pass) than by
/// widened weights in f32: AVX2's and the portable dots take one row at a
/// time and are not (kernels/benches/gemm.rs).
pub fn tiles_many_rows() -> bool {
    #[cfg(target_arch = "x86_64")]
    return vnni();
    #[cfg(not(target_arch = "x86_64"))]
    false
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

/// An f16 at `p` as f32 (F16C).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "f16c")]
unsafe fn half_at(p: *const u8) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: the caller's two bytes.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// [`tile_vnni`] for blocks of `ty` (one of [`takes`]'s), `C` weight rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn tile_type<const C: usize>(
    ty: GgmlType,
    x: &Q8Rows,
    ws: [&[u8]; 2],
    i0: usize,
    r: usize,
) -> [[f32; 8]; 2] {
    // SAFETY: as the caller's.
    unsafe {
        match ty {
            GgmlType::Q4_0 => tile_rows::<0, C>(x, ws, i0, r),
            GgmlType::Q4_1 => tile_rows::<1, C>(x, ws, i0, r),
            GgmlType::Q8_0 => tile_rows::<2, C>(x, ws, i0, r),
            GgmlType::Q4K => tile_rows::<3, C>(x, ws, i0, r),
            GgmlType::Q5K => tile_rows::<5, C>(x, ws, i0, r),
            _ => tile_rows::<4, C>(x, ws, i0, r),
        }
    }
}

/// [`tile_vnni`] for `r` (1–4 or 8) x rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn tile_rows<const T: u8, const C: usize>(
    x: &Q8Rows,
    ws: [&[u8]; 2],
    i0: usize,
    r: usize,
) -> [[f32; 8]; 2] {
    // SAFETY: as the caller's.
    unsafe {
        match r {
            1 => tile_vnni::<1, T, C>(x, ws, i0),
            2 => tile_vnni::<2, T, C>(x, ws, i0),
            3 => tile_vnni::<3, T, C>(x, ws, i0),
            4 => tile_vnni::<4, T, C>(x, ws, i0),
            _ => tile_vnni::<8, T, C>(x, ws, i0),
        }
    }
}

/// Blocks `b` and `b + 1` of a weight row as [`tile_vnni`] multiplies them:
/// their 64 values as unsigned bytes (Q4: the nibbles; Q6_K: 6 bits; Q8_0:
/// magnitudes, with the mask of negative ones), and per integer lane (16, 8 a
/// block) the weight scale and the scale of `Σ x` (Q4_1, Q4_K). A missing
/// block `b + 1` (an odd count, Q4_0/Q4_1/Q8_0 only) is zeros. `T`: 0 Q4_0,
/// 1 Q4_1, 2 Q8_0, 3 Q4_K, 4 Q6_K, 5 Q5_K.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
#[inline]
unsafe fn pair_vnni<const T: u8>(
    w: &[u8],
    b: usize,
    blocks: usize,
) -> (
    std::arch::x86_64::__m512i,
    u64,
    std::arch::x86_64::__m512,
    std::arch::x86_64::__m512,
) {
    use std::arch::x86_64::*;
    let nib = _mm512_set1_epi8(0xF);
    let two = b + 1 < blocks;
    // Two 8-lane halves: `lo` on lanes 0–7, `hi` on 8–15.
    let halves =
        |lo: f32, hi: f32| _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(lo), _mm512_set1_ps(hi));
    // SAFETY: reads stay inside blocks b and b + 1 (present when `two`, and
    // always for K-quants, whose 8 blocks a super-block come in pairs).
    unsafe {
        match T {
            0..=2 => {
                let ty = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0][T as usize];
                let bb = ty.block().1;
                let p0 = w.as_ptr().add(b * bb);
                let p1 = p0.add(bb);
                // [d, m, d, m ..] of each block (its first 4 bytes), the
                // second block's on the upper 8 lanes; a missing block's zeros.
                let s1 = if two {
                    p1.cast::<i32>().read_unaligned()
                } else {
                    0
                };
                let dm = _mm512_cvtph_ps(_mm256_inserti128_si256::<1>(
                    _mm256_castsi128_si256(_mm_set1_epi32(p0.cast::<i32>().read_unaligned())),
                    _mm_set1_epi32(s1),
                ));
                let (dw, mw) = (_mm512_permute_ps::<0x00>(dm), _mm512_permute_ps::<0x55>(dm));
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
                    (_mm512_abs_epi8(v), _mm512_movepi8_mask(v), dw, mw)
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
                    let q = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFF00_FF00, v, 4), nib);
                    (q, 0, dw, mw)
                }
            }
            3 | 5 => {
                // Q4_K: blocks 2c and 2c + 1 of a super-block are the low and
                // high nibbles of the same 32 bytes; Q5_K adds bits j and
                // j + 1 of its `qh` as bit 4.
                let ty = if T == 3 { GgmlType::Q4K } else { GgmlType::Q5K };
                let (at, j) = locate(ty, b);
                let p = w.as_ptr().add(at);
                let (d, dmin) = (half_at(p), half_at(p.add(2)));
                let scales = std::slice::from_raw_parts(p.add(4), 12);
                let (s0, m0) = crate::quant::scale_min_k4(j, scales);
                let (s1, m1) = crate::quant::scale_min_k4(j + 1, scales);
                let qs = if T == 3 { 16 } else { 48 };
                let v = _mm256_loadu_si256(p.add(qs + 32 * (j / 2)).cast());
                let v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v), v);
                let mut q = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFFFF_0000, v, 4), nib);
                if T == 5 {
                    let qh = _mm256_loadu_si256(p.add(16).cast());
                    let qh = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), qh);
                    let shift = _mm512_inserti64x4::<1>(
                        _mm512_set1_epi16(j as i16),
                        _mm256_set1_epi16(j as i16 + 1),
                    );
                    let qh = _mm512_and_si512(_mm512_srlv_epi16(qh, shift), _mm512_set1_epi8(1));
                    q = _mm512_or_si512(q, _mm512_slli_epi16(qh, 4));
                }
                (q, 0, halves(d * s0, d * s1), halves(-dmin * m0, -dmin * m1))
            }
            _ => {
                // Q6_K: groups t and t + 1 (t even) of half n: low 4 bits
                // from ql (bytes 0..32 and 32..64, high nibbles for t = 2),
                // 2 high bits from qh at bit 2t and 2t + 2.
                let (at, j) = locate(GgmlType::Q6K, b);
                let (p, n, t) = (w.as_ptr().add(at), j / 4, j % 4);
                let ql = _mm512_loadu_si512(p.add(64 * n).cast());
                let cnt = _mm_cvtsi32_si128(4 * (t / 2) as i32);
                let ql = _mm512_and_si512(_mm512_srl_epi16(ql, cnt), nib);
                let qh = _mm256_loadu_si256(p.add(128 + 32 * n).cast());
                let qh = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), qh);
                let shift = _mm512_inserti64x4::<1>(
                    _mm512_set1_epi16(2 * t as i16),
                    _mm256_set1_epi16(2 * t as i16 + 2),
                );
                let qh = _mm512_and_si512(_mm512_srlv_epi16(qh, shift), _mm512_set1_epi8(3));
                let q = _mm512_or_si512(ql, _mm512_slli_epi16(qh, 4));
                let d = half_at(p.add(208));
                let sc = p.add(192 + 8 * n + 2 * t).cast::<i8>();
                let s4 = _mm_mul_ps(
                    _mm_set1_ps(d),
                    _mm_setr_ps(
                        *sc as f32,
                        *sc.add(1) as f32,
                        *sc.add(2) as f32,
                        *sc.add(3) as f32,
                    ),
                );
                // Four 16-value scales, each on the 4 lanes of its values.
                let idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
                let dw = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s4));
                (q, 0, dw, _mm512_setzero_ps())
            }
        }
    }
}

/// How far ahead of its reads [`tile_vnni`] asks for a weight row's bytes.
#[cfg(target_arch = "x86_64")]
const AHEAD: usize = 1024;

/// The first `C` (1 or 2) weight rows of `ws` against x rows `i0..i0 + R`,
/// two blocks a step
/// ([`pair_vnni`]): unsigned weight bytes by x's signed bytes into 16
/// integer lanes (`vpdpbusd`; Q8_0: x's signs flipped where a weight is
/// negative; Q4_0 and Q6_K start from −8 or −32 · Σ x of the lane), each
/// lane's sum scaled by its `d_w · d_x`, plus Q4_1's and Q4_K's minimum term.
/// Returns the dot products (the first R of each row).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_vnni<const R: usize, const T: u8, const C: usize>(
    x: &Q8Rows,
    ws: [&[u8]; 2],
    i0: usize,
) -> [[f32; 8]; 2] {
    use std::arch::x86_64::*;
    let blocks = x.k / QK;
    let mut acc = [[_mm512_setzero_ps(); R]; 2];
    let zero = _mm512_setzero_si512();
    // SAFETY: weight reads stay inside the rows' blocks (`pair_vnni`); x
    // reads stay inside row i0 + q's nb padded blocks.
    unsafe {
        // Bytes a 32-value block takes in the row, rounded up (Q6_K's 210
        // bytes per 8 blocks): where block b starts, near enough for a hint.
        let stride = ws[0].len().div_ceil(blocks.max(1));
        for b in (0..blocks).step_by(2) {
            // One row a pass (batch 1) asks for its bytes ahead: +7% for
            // a 1B-size Q4_0 model's decoding on an EPYC Zen 4; two rows
            // side by side lost 15% with it (bench/RESULTS.md).
            if C == 1 {
                super::prefetch(ws[0].as_ptr().wrapping_add(b * stride + AHEAD));
            }
            let mut wq = [zero; 2];
            let mut neg = [0u64; 2];
            let mut dw = [_mm512_setzero_ps(); 2];
            let mut mw = [_mm512_setzero_ps(); 2];
            for c in 0..C {
                (wq[c], neg[c], dw[c], mw[c]) = pair_vnni::<T>(ws[c], b, blocks);
            }
            for q in 0..R {
                let row = (i0 + q) * x.nb + b;
                let xv = _mm512_loadu_si512(x.q.as_ptr().add(row * QK).cast());
                let dx = _mm512_loadu_ps(x.dl.as_ptr().add(row * 8));
                let init = match T {
                    0 => _mm512_loadu_si512(x.nl.as_ptr().add(row * 8).cast()),
                    4 => _mm512_slli_epi32::<2>(_mm512_loadu_si512(
                        x.nl.as_ptr().add(row * 8).cast(),
                    )),
                    _ => zero,
                };
                for c in 0..C {
                    let xs = match T {
                        2 => _mm512_mask_sub_epi8(xv, neg[c], zero, xv),
                        _ => xv,
                    };
                    let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(init, wq[c], xs));
                    acc[c][q] = _mm512_fmadd_ps(s, _mm512_mul_ps(dw[c], dx), acc[c][q]);
                    if matches!(T, 1 | 3 | 5) {
                        let sx = _mm512_loadu_ps(x.sl.as_ptr().add(row * 8));
                        acc[c][q] = _mm512_fmadd_ps(mw[c], sx, acc[c][q]);
                    }
                }
            }
        }
    }
    let mut out = [[0f32; 8]; 2];
    for c in 0..C {
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
    let (nib, ones) = (_mm_set1_epi8(0xF), _mm256_set1_epi16(1));
    let mut acc = _mm256_setzero_ps();
    // SAFETY: weight reads stay inside block b of the row (k / 32 blocks of
    // the type's layout), x reads inside row i's blocks.
    unsafe {
        for b in 0..x.k / QK {
            let row = i * x.nb + b;
            let xv = _mm256_loadu_si256(x.q.as_ptr().add(row * QK).cast());
            let nl = || _mm256_loadu_si256(x.nl.as_ptr().add(row * 8).cast());
            let (at, j) = locate(ty, b);
            let p = w.as_ptr().add(at);
            // The block's unsigned values, x (signs flipped for Q8_0), the
            // integer lanes' start, and the weight and minimum scales.
            let (wq, xs, init, dw, mw) = match ty {
                GgmlType::Q8_0 => {
                    let v = _mm256_loadu_si256(p.add(2).cast());
                    let d = _mm256_set1_ps(half_at(p));
                    let z = _mm256_setzero_si256();
                    (_mm256_sign_epi8(v, v), _mm256_sign_epi8(xv, v), z, d, None)
                }
                GgmlType::Q4_0 | GgmlType::Q4_1 => {
                    let q40 = ty == GgmlType::Q4_0;
                    let raw = _mm_loadu_si128(p.add(if q40 { 2 } else { 4 }).cast());
                    let lo = _mm_and_si128(raw, nib);
                    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), nib);
                    let d = _mm256_set1_ps(half_at(p));
                    match q40 {
                        true => (_mm256_set_m128i(hi, lo), xv, nl(), d, None),
                        false => {
                            let m = _mm256_set1_ps(half_at(p.add(2)));
                            (
                                _mm256_set_m128i(hi, lo),
                                xv,
                                _mm256_setzero_si256(),
                                d,
                                Some(m),
                            )
                        }
                    }
                }
                GgmlType::Q4K | GgmlType::Q5K => {
                    let scales = std::slice::from_raw_parts(p.add(4), 12);
                    let (sc, mn) = crate::quant::scale_min_k4(j, scales);
                    let qs = if ty == GgmlType::Q4K { 16 } else { 48 };
                    let v = _mm256_loadu_si256(p.add(qs + 32 * (j / 2)).cast());
                    let cnt = _mm_cvtsi32_si128(4 * (j % 2) as i32);
                    let mut q = _mm256_and_si256(_mm256_srl_epi16(v, cnt), _mm256_set1_epi8(0xF));
                    if ty == GgmlType::Q5K {
                        // Bit j of qh as bit 4.
                        let qh = _mm256_loadu_si256(p.add(16).cast());
                        let qh = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(j as i32));
                        let qh = _mm256_and_si256(qh, _mm256_set1_epi8(1));
                        q = _mm256_or_si256(q, _mm256_slli_epi16(qh, 4));
                    }
                    let d = _mm256_set1_ps(half_at(p) * sc);
                    let m = _mm256_set1_ps(-half_at(p.add(2)) * mn);
                    (q, xv, _mm256_setzero_si256(), d, Some(m))
                }
                _ => {
                    let (n, t) = (j / 4, j % 4);
                    let ql = _mm256_loadu_si256(p.add(64 * n + 32 * (t % 2)).cast());
                    let cnt = _mm_cvtsi32_si128(4 * (t / 2) as i32);
                    let ql = _mm256_and_si256(_mm256_srl_epi16(ql, cnt), _mm256_set1_epi8(0xF));
                    let qh = _mm256_loadu_si256(p.add(128 + 32 * n).cast());
                    let cnt = _mm_cvtsi32_si128(2 * t as i32);
                    let qh = _mm256_and_si256(_mm256_srl_epi16(qh, cnt), _mm256_set1_epi8(3));
                    let q = _mm256_or_si256(ql, _mm256_slli_epi16(qh, 4));
                    let d = half_at(p.add(208));
                    let sc = p.add(192 + 8 * n + 2 * t).cast::<i8>();
                    let dw = _mm256_set_m128(
                        _mm_set1_ps(d * *sc.add(1) as f32),
                        _mm_set1_ps(d * *sc as f32),
                    );
                    (q, xv, _mm256_slli_epi32(nl(), 2), dw, None)
                }
            };
            let s = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(wq, xs), ones), init);
            let dx = _mm256_loadu_ps(x.dl.as_ptr().add(row * 8));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, dx), acc);
            if let Some(m) = mw {
                let sx = _mm256_loadu_ps(x.sl.as_ptr().add(row * 8));
                acc = _mm256_fmadd_ps(m, sx, acc);
            }
        }
        let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}
