//! The small-row product on half-precision checkpoint rows (f16, bf16)
//! decoded in SIMD registers (AVX-512, else AVX2). Decoding steps (`small_m`
//! takes this path up to 16 rows) read every weight once per token; widening
//! four rows into a buffer first ([`super::gemm::small_m`]'s general path)
//! stores and reloads each value as f32 and dominated batch-1 profiles. Here
//! each weight vector is widened where it is used (bf16: a 16-bit shift; f16:
//! `vcvtph2ps`) and x stays f32, so the result stays the f32 reference's
//! within rounding. (GGML blocks multiply 8-bit activations: [`super::int8`].)

use super::Data;

/// Whether [`rows`] takes this storage on this CPU (AVX-512F or AVX2/FMA,
/// with F16C).
pub fn supports(w: &Data) -> bool {
    matches!(w, Data::F16(_) | Data::BF16(_)) && (super::avx512() || avx2())
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
        Data::F16(v) => v.len(),
        Data::BF16(v) => v.len(),
        _ => 0,
    };
    assert!(supports(w), "stored rows the CPU cannot decode");
    assert!(x.len() >= m * k && t.len() >= cols * m && (j0 + cols) * k <= stored);
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

/// The most x rows for which each pass decodes one weight row: with more,
/// two rows a pass share each x vector loaded. With few, two rows' streams
/// read side by side restart the hardware prefetcher every pair, and one
/// row a pass streams the matrix in order: 1.4–2× on an EPYC Zen 4
/// (kernels/benches/gemm.rs, "stored weights").
#[cfg(target_arch = "x86_64")]
pub(crate) const ONE_ROW_M: usize = 4;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
unsafe fn rows_avx512(job: &Job<'_>, w: &Data, t: &mut [f32]) {
    // SAFETY: the caller's checks (see `rows`).
    match job.m <= ONE_ROW_M {
        true => unsafe { passes_of::<1>(job, w, t) },
        false => unsafe { passes_of::<2>(job, w, t) },
    }
}

/// [`rows_avx512`]'s passes of `WR` weight rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
unsafe fn passes_of<const WR: usize>(job: &Job<'_>, w: &Data, t: &mut [f32]) {
    // Each x row count is its own instance, so no accumulator is spent on a
    // row that is not there.
    // SAFETY: the caller's checks (see `rows`).
    job.passes(WR, |r, jj, i0| unsafe {
        match r {
            1 => tile::<1, WR>(job, w, jj, i0, t),
            2 => tile::<2, WR>(job, w, jj, i0, t),
            3 => tile::<3, WR>(job, w, jj, i0, t),
            _ => tile::<4, WR>(job, w, jj, i0, t),
        }
    });
}

/// `t[(jj + c) · m + i0 + q]` for weight rows `j0 + jj + c` (`c < WR`, the
/// last row repeated past `cols`) and x rows `i0 + q` (`q < R`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c")]
#[inline]
unsafe fn tile<const R: usize, const WR: usize>(
    job: &Job<'_>,
    w: &Data,
    jj: usize,
    i0: usize,
    t: &mut [f32],
) {
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
            Data::F16(v) => half_tile::<R, WR, false>(v.as_ptr().cast(), js, xs, k),
            Data::BF16(v) => half_tile::<R, WR, true>(v.as_ptr().cast(), js, xs, k),
            _ => unreachable!("f32 rows are read in place, GGML blocks by `int8`"),
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
unsafe fn half_tile<const R: usize, const WR: usize, const BF: bool>(
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
        let (row, bf): (*const u16, bool) = match w {
            Data::F16(v) => (v[j * k..(j + 1) * k].as_ptr().cast(), false),
            Data::BF16(v) => (v[j * k..(j + 1) * k].as_ptr().cast(), true),
            _ => unreachable!("f32 rows are read in place, GGML blocks by `int8`"),
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
    for q in 0..R {
        let v = acc[q];
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        t[jj * job.m + i0 + q] = _mm_cvtss_f32(s);
    }
}
