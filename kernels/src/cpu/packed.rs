//! Dense layers over pre-packed weights, the BLIS layout: a linear layer's
//! weight `w [n, k]` is rearranged once, at load, into panels of [`NR`]
//! output columns stored `[k][NR]`, so the micro-kernel streams one panel
//! contiguously while it broadcasts [`MR`] rows of `x`; the products of a
//! tile stay in 12 AVX2 registers for a whole [`KC`]-long slice of `k`.
//! The `gemm` crate repacks the weight on every call; a model's weights never
//! change, so packing them once is what lets the same kernel serve both the
//! encoders (thousands of rows) and batched decoding (a few rows).

use rayon::prelude::*;

/// Output columns per panel (two AVX2 vectors).
pub const NR: usize = 16;
/// Rows of `x` per micro-kernel tile.
const MR: usize = 6;
/// Slice of `k` per pass: one panel slice (`KC × NR` floats, 16 KiB) stays in L1.
const KC: usize = 256;
/// Rows of `x` per task: their `KC`-slice (96 KiB) stays in L2 while the
/// task sweeps its panels.
const MC: usize = 48;

/// A weight `[n, k]` in panel layout (`n` padded with zero columns to a
/// multiple of [`NR`]).
#[derive(Debug, Clone)]
pub struct Packed {
    pub n: usize,
    pub k: usize,
    panels: Vec<f32>,
}

impl Packed {
    /// Packs a row-major `w [n, k]`.
    pub fn new(w: &[f32], n: usize, k: usize) -> Packed {
        debug_assert_eq!(w.len(), n * k);
        let mut panels = vec![0f32; n.div_ceil(NR) * NR * k];
        panels
            .par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(p, panel)| {
                for c in 0..NR.min(n - p * NR) {
                    let row = &w[(p * NR + c) * k..][..k];
                    for (t, v) in row.iter().enumerate() {
                        panel[t * NR + c] = *v;
                    }
                }
            });
        Packed { n, k, panels }
    }

    /// The row-major `[n, k]` weight back.
    pub fn unpack(&self) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let mut w = vec![0f32; n * k];
        for (j, row) in w.chunks_exact_mut(k.max(1)).enumerate() {
            let panel = &self.panels[(j / NR) * k * NR..];
            for (t, v) in row.iter_mut().enumerate() {
                *v = panel[t * NR + j % NR];
            }
        }
        w
    }
}

/// A raw pointer tasks may share: each task writes only its own tiles.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint (row block, panel range) tiles of the output.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `out [m, n] += x [m, k] · wᵀ` with `w` packed.
pub fn gemm(x: &[f32], m: usize, w: &Packed, out: &mut [f32]) {
    let (n, k) = (w.n, w.k);
    assert!(x.len() >= m * k && out.len() >= m * n, "gemm operand sizes");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let np = n.div_ceil(NR);
    let row_blocks = m.div_ceil(MC);
    // Enough tasks for every thread, splitting the columns when rows are few.
    let want = 4 * rayon::current_num_threads();
    let col_chunks = want.div_ceil(row_blocks).clamp(1, np);
    let per_chunk = np.div_ceil(col_chunks);
    let col_chunks = np.div_ceil(per_chunk);
    let fast = avx2();
    let dst = Out(out.as_mut_ptr());
    (0..row_blocks * col_chunks).into_par_iter().for_each_init(
        || vec![0f32; MC * KC],
        |abuf, task| {
            let dst = dst;
            let (i0, p0) = ((task / col_chunks) * MC, (task % col_chunks) * per_chunk);
            let (i1, p1) = ((i0 + MC).min(m), (p0 + per_chunk).min(np));
            for t0 in (0..k).step_by(KC) {
                let kc = (k - t0).min(KC);
                pack_rows(x, k, i0, i1, t0, kc, abuf);
                for p in p0..p1 {
                    let b = &w.panels[p * k * NR + t0 * NR..][..kc * NR];
                    let (j0, nc) = (p * NR, (n - p * NR).min(NR));
                    let mut i = i0;
                    while i < i1 {
                        let mr = (i1 - i).min(MR);
                        let a = &abuf[(i - i0) * kc..][..mr * kc];
                        // SAFETY: rows i..i+mr, columns j0..j0+nc of `out` belong to
                        // this task and lie inside the m×n output (asserted above).
                        unsafe {
                            let c = dst.0.add(i * n + j0);
                            tile(fast, mr, kc, a, b, c, n, nc);
                        }
                        i += mr;
                    }
                }
            }
        },
    );
}

/// Copies `x[i0..i1, t0..t0 + kc]` into `buf` tile by tile: each group of
/// up to [`MR`] rows as `[kc][rows]`, so the micro-kernel's broadcasts are
/// consecutive floats.
fn pack_rows(x: &[f32], k: usize, i0: usize, i1: usize, t0: usize, kc: usize, buf: &mut [f32]) {
    let mut i = i0;
    while i < i1 {
        let mr = (i1 - i).min(MR);
        let dst = &mut buf[(i - i0) * kc..][..mr * kc];
        for r in 0..mr {
            let row = &x[(i + r) * k + t0..][..kc];
            for (t, v) in row.iter().enumerate() {
                dst[t * mr + r] = *v;
            }
        }
        i += mr;
    }
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `c[r][0..nc] += Σ_t a[t·mr + r] · b[t][0..nc]` for `r < mr`, `t < kc`.
///
/// # Safety
/// `c` must be valid for `mr` rows of `nc` floats at stride `ldc`.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    fast: bool,
    mr: usize,
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    nc: usize,
) {
    debug_assert!(a.len() >= mr * kc && b.len() >= kc * NR);
    let mut acc = [[0f32; NR]; MR];
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: the CPU has AVX2 and FMA; `a` and `b` hold the tile (asserted).
        unsafe {
            match mr {
                6 => avx2_tile::<6>(kc, a.as_ptr(), b.as_ptr(), &mut acc),
                5 => avx2_tile::<5>(kc, a.as_ptr(), b.as_ptr(), &mut acc),
                4 => avx2_tile::<4>(kc, a.as_ptr(), b.as_ptr(), &mut acc),
                3 => avx2_tile::<3>(kc, a.as_ptr(), b.as_ptr(), &mut acc),
                2 => avx2_tile::<2>(kc, a.as_ptr(), b.as_ptr(), &mut acc),
                _ => avx2_tile::<1>(kc, a.as_ptr(), b.as_ptr(), &mut acc),
            }
        }
    } else {
        portable_tile(mr, kc, a, b, &mut acc);
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable_tile(mr, kc, a, b, &mut acc);
    for (r, row) in acc.iter().enumerate().take(mr) {
        // SAFETY: the caller guarantees row r < mr holds nc floats at c + r·ldc.
        let c = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), nc) };
        c.iter_mut().zip(row).for_each(|(c, v)| *c += v);
    }
}

fn portable_tile(mr: usize, kc: usize, a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR]) {
    for t in 0..kc {
        let bt = &b[t * NR..][..NR];
        for (r, row) in acc.iter_mut().enumerate().take(mr) {
            let av = a[t * mr + r];
            row.iter_mut().zip(bt).for_each(|(o, b)| *o += av * b);
        }
    }
}

/// The micro-kernel: `R` rows × 16 columns accumulated in `2R` registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_tile<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    acc: &mut [[f32; NR]; MR],
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller guarantees kc×R floats in `a`
    // and kc×16 floats in `b`.
    unsafe {
        let mut s = [[_mm256_setzero_ps(); 2]; R];
        for t in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(t * NR));
            let b1 = _mm256_loadu_ps(b.add(t * NR + 8));
            for (r, s) in s.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*a.add(t * R + r));
                s[0] = _mm256_fmadd_ps(av, b0, s[0]);
                s[1] = _mm256_fmadd_ps(av, b1, s[1]);
            }
        }
        for (r, s) in s.iter().enumerate() {
            _mm256_storeu_ps(acc[r].as_mut_ptr(), s[0]);
            _mm256_storeu_ps(acc[r].as_mut_ptr().add(8), s[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::gemm::linear_ref;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_reference_on_ragged_shapes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (m, k, n) in [(1, 5, 3), (7, 300, 33), (100, 257, 16), (13, 64, 100), (200, 600, 50)] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let p = Packed::new(&w, n, k);
            assert_eq!(p.unpack(), w);
            let mut out = vec![0.5f32; m * n];
            gemm(&x, m, &p, &mut out);
            let want = linear_ref(&x, &w, Some(&vec![0.5; n]), k, n);
            let err = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-3, "{m}x{k}x{n}: max abs err {err}");
        }
    }
}
