//! bf16 GEMMs: `out += x · wᵀ` with `x` rounded to bf16 and f32
//! accumulation, as PyTorch (oneDNN) runs a bf16 model's linear layers on
//! CPUs that multiply bf16 natively. Two micro-kernels read one packing:
//!
//! - [`Kernel::Amx`], Intel AMX tiles (Sapphire Rapids and later), written
//!   with `asm!` (Rust has no stable AMX intrinsics); the process asks Linux
//!   for the tile state once (`arch_prctl(ARCH_REQ_XCOMP_PERM)`). 8 tile
//!   registers as 2×2 C tiles (32×32 f32), 2 A tiles (32 rows × 32 k of `x`)
//!   and 2 B tiles (32 k × 32 columns of `w`).
//! - [`Kernel::Avx512`], AVX512-BF16 dot products (`vdpbf16ps`: AMD Zen 4
//!   and later, Intel Cooper Lake) where there is no AMX: 8 rows × 32
//!   columns of f32 accumulators in 16 registers, each step a broadcast pair
//!   of `x` against 16 column pairs of `w`.
//!
//! `x` is converted once to bf16 rows padded to 32 k; each task packs a band
//! of `w`'s rows into the VNNI pair layout both kernels read (rows of k
//! pairs, bf16 checkpoints copied bit for bit, other storage rounded) and
//! sweeps its 32-row blocks of `x` over it, so the band stays in L2. With few
//! bands the rows are split too, so every thread gets work.
//! [`kernel`] is `None` where the CPU, the kernel or [`super::limit_simd`]
//! says no.

use std::sync::OnceLock;

use half::bf16;
use rayon::prelude::*;

use super::{Data, prefetch};

/// Rows of `x` per micro-tile (two A tiles of 16).
const MR: usize = 32;
/// Columns of `w` per micro-tile (two B tiles of 16).
const NR: usize = 32;
/// k per tile step: 16 rows of bf16 pairs, 64 bytes a row.
const KR: usize = 32;
/// Columns of `w` per task: four micro-tiles share each A block from L1/L2.
const BAND: usize = 4 * NR;

/// A bf16 micro-kernel the CPU may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AMX-BF16 tiles.
    Amx,
    /// AVX512-BF16 dot products.
    Avx512,
}

/// The bf16 kernel this CPU runs (AMX before AVX512-BF16), if any.
pub fn kernel() -> Option<Kernel> {
    match super::allowed(super::Simd::Best) {
        true => kernels().first().copied(),
        false => None,
    }
}

/// Whether a bf16 GEMM may run here.
pub fn available() -> bool {
    kernel().is_some()
}

/// Every bf16 kernel this CPU and kernel offer, fastest first.
pub fn kernels() -> &'static [Kernel] {
    static FOUND: OnceLock<Vec<Kernel>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mut found = Vec::new();
        if amx() {
            found.push(Kernel::Amx);
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16") {
            found.push(Kernel::Avx512);
        }
        found
    })
}

#[cfg(target_arch = "x86_64")]
fn amx() -> bool {
    // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
    let leaf = std::arch::x86_64::__cpuid_count(7, 0);
    let cpu = leaf.edx & (1 << 22) != 0 && leaf.edx & (1 << 24) != 0;
    // Linux hands out the 8 KiB tile state only on request.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments.
    cpu && unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    } == 0
}

#[cfg(not(target_arch = "x86_64"))]
fn amx() -> bool {
    false
}

/// The tile palette: tmm0–3 C (16 rows × 16 f32), tmm4–5 A (16 rows × 32
/// bf16), tmm6–7 B (16 rows of 16 bf16 pairs); 64 bytes a row throughout.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// `out [m, n] += x [m, k] · w [n, k]ᵀ` in bf16 by this CPU's [`kernel`];
/// call only when [`available`].
pub fn linear(x: &[f32], w: &Data, out: &mut [f32], m: usize, k: usize, n: usize) {
    let kernel = kernel().expect("no bf16 GEMM on this CPU");
    linear_with(kernel, x, w, out, m, k, n);
}

/// [`linear`] by `kernel`, which must be one of [`kernels`] (tests and the
/// benchmark run each).
pub fn linear_with(
    kernel: Kernel,
    x: &[f32],
    w: &Data,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    assert!(kernels().contains(&kernel), "{kernel:?} is not on this CPU");
    assert!(x.len() >= m * k && out.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    let kp = k.div_ceil(KR) * KR;
    let mp = m.div_ceil(MR) * MR;
    // x as bf16 rows of kp (zero padded), mp rows.
    let mut a = vec![0u16; mp * kp];
    a.par_chunks_mut(kp)
        .take(m)
        .enumerate()
        .for_each(|(i, row)| {
            for (d, s) in row.iter_mut().zip(&x[i * k..(i + 1) * k]) {
                *d = bf16::from_f32(*s).to_bits();
            }
        });
    // Tasks: column bands × row chunks, at least four a thread where the
    // rows allow chunks of 4 blocks (packing a band then stays a small part
    // of a task's work).
    let bands = n.div_ceil(BAND);
    let blocks = mp / MR;
    let chunks = (4 * rayon::current_num_threads())
        .div_ceil(bands)
        .min(blocks.div_ceil(4))
        .max(1);
    let per = blocks.div_ceil(chunks) * MR;
    let per_band = mp.div_ceil(per);
    let out_at = SyncPtr(out.as_mut_ptr());
    (0..bands * per_band).into_par_iter().for_each(|task| {
        let (band, chunk) = (task / per_band, task % per_band);
        let j0 = band * BAND;
        let cols = (n - j0).min(BAND);
        let b = pack_band(w, k, kp, j0, cols);
        let mut c = [0f32; MR * NR];
        if kernel == Kernel::Amx {
            // SAFETY: the CPU has AMX (asserted) and the config is valid.
            unsafe { load_config() };
        }
        for i0 in (chunk * per..((chunk + 1) * per).min(m)).step_by(MR) {
            let rows = (m - i0).min(MR);
            // The output lines this block adds into, fetched while its dots
            // run: they sit a row of n apart, which the hardware prefetcher
            // does not follow (adding the tiles was 10% of a SigLIP encode).
            for r in i0..i0 + rows {
                for q in (0..cols).step_by(16) {
                    prefetch(out_at.at(r * n + j0 + q));
                }
            }
            for (t, tile) in b.chunks(kp / 2 * NR).enumerate() {
                let a = a[i0 * kp..].as_ptr();
                // SAFETY: `a` holds rows i0..i0+32 of kp bf16 each (mp
                // padded), `tile` kp/2 rows of 32 pairs, `c` 32×32 f32:
                // what the kernels read and write; the CPU has the
                // kernel's instructions (asserted).
                unsafe {
                    match kernel {
                        Kernel::Amx => amx_tile(a, kp, tile.as_ptr(), kp / KR, c.as_mut_ptr()),
                        Kernel::Avx512 => dots(a, kp, tile.as_ptr(), rows, c.as_mut_ptr()),
                    }
                };
                let jt = j0 + t * NR;
                let width = (n - jt).min(NR);
                for (r, crow) in c.chunks(NR).enumerate().take(rows) {
                    // SAFETY: each task adds to its own rows and columns of
                    // out (asserted in bounds). As a slice the add is
                    // vectorised; element by element it was not.
                    let orow = unsafe {
                        std::slice::from_raw_parts_mut(out_at.at((i0 + r) * n + jt), width)
                    };
                    for (o, v) in orow.iter_mut().zip(crow) {
                        *o += v;
                    }
                }
            }
        }
        if kernel == Kernel::Amx {
            // SAFETY: releases this thread's tile state.
            unsafe { std::arch::asm!("tilerelease") };
        }
    });
}

/// A raw pointer tasks write disjoint elements through.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// Element `i` (a method, so closures capture the whole `SyncPtr`).
    fn at(self, i: usize) -> *mut f32 {
        // SAFETY: callers stay inside the buffer.
        unsafe { self.0.add(i) }
    }
}

/// `w`'s rows j0..j0+cols as B tiles: per 32-column micro-tile, kp/2 rows
/// of 32 (bf16 pair) words, pair p of column q holding elements 2p, 2p+1 of
/// row j0+q; zero past `k` and past `cols`.
fn pack_band(w: &Data, k: usize, kp: usize, j0: usize, cols: usize) -> Vec<u32> {
    let tiles = cols.div_ceil(NR);
    let mut b = vec![0u32; tiles * kp / 2 * NR];
    let mut row = vec![0u16; kp];
    let mut wide = vec![0f32; k];
    for q in 0..cols {
        match w {
            Data::BF16(v) => {
                for (d, s) in row.iter_mut().zip(&v[(j0 + q) * k..(j0 + q + 1) * k]) {
                    *d = s.to_bits();
                }
            }
            other => {
                other.widen_into((j0 + q) * k, &mut wide);
                for (d, s) in row.iter_mut().zip(&wide) {
                    *d = bf16::from_f32(*s).to_bits();
                }
            }
        }
        let tile = &mut b[(q / NR) * kp / 2 * NR..][..kp / 2 * NR];
        for p in 0..kp / 2 {
            tile[p * NR + q % NR] = u32::from(row[2 * p]) | u32::from(row[2 * p + 1]) << 16;
        }
    }
    b
}

/// Loads [`CONFIG`] into this thread's tile registers.
unsafe fn load_config() {
    let cfg = &CONFIG;
    // SAFETY: the caller checked AMX; `cfg` is a valid 64-byte palette 1 config.
    unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) cfg, options(nostack, readonly)) };
}

/// C[32×32] = A[32×kp] · B on AMX tiles, over `steps` k-steps of 32: `a`
/// rows of `kp` bf16, `b` kp/2 rows of 32 pairs (128 bytes), `c` 32 rows of
/// 32 f32.
unsafe fn amx_tile(a: *const u16, kp: usize, b: *const u32, steps: usize, c: *mut f32) {
    // SAFETY: the caller guarantees the extents; tiles are configured.
    unsafe {
        std::arch::asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a} + {sa} * 1]",
            "tileloadd tmm5, [{a2} + {sa} * 1]",
            "tileloadd tmm6, [{b} + {sb} * 1]",
            "tileloadd tmm7, [{b} + {sb} * 1 + 64]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a}, 64",
            "add {a2}, 64",
            "add {b}, 2048",
            "dec {steps}",
            "jnz 2b",
            "tilestored [{c} + {sb} * 1], tmm0",
            "tilestored [{c} + {sb} * 1 + 64], tmm1",
            "tilestored [{c2} + {sb} * 1], tmm2",
            "tilestored [{c2} + {sb} * 1 + 64], tmm3",
            a = inout(reg) a => _,
            a2 = inout(reg) a.add(16 * kp) => _,
            b = inout(reg) b => _,
            steps = inout(reg) steps => _,
            sa = in(reg) kp * 2,
            sb = in(reg) NR * 4,
            c = in(reg) c,
            c2 = in(reg) c.add(16 * NR),
            options(nostack),
        );
    }
}

/// C[rows×32] = A[rows×kp] · B by AVX512-BF16 dot products, 8 rows a pass
/// (rows past `rows`, up to the next 8, are computed from `a`'s padding):
/// the layout of [`amx_tile`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dots(a: *const u16, kp: usize, b: *const u32, rows: usize, c: *mut f32) {
    use std::arch::x86_64::*;
    use std::mem::transmute;
    const R: usize = 8;
    for r0 in (0..rows).step_by(R) {
        let mut acc = [_mm512_setzero_ps(); 2 * R];
        // SAFETY: the caller guarantees rows r0..r0+8 of `a` (padding
        // included), kp/2 rows of 32 pairs in `b` and 32×32 f32 in `c`;
        // pairs are read unaligned.
        unsafe {
            let x = a.add(r0 * kp);
            for p in 0..kp / 2 {
                let bp = b.add(p * NR);
                let b0: __m512bh = transmute(_mm512_loadu_si512(bp.cast()));
                let b1: __m512bh = transmute(_mm512_loadu_si512(bp.add(16).cast()));
                for r in 0..R {
                    let pair = x.add(r * kp + 2 * p).cast::<i32>().read_unaligned();
                    let xr: __m512bh = transmute(_mm512_set1_epi32(pair));
                    acc[2 * r] = _mm512_dpbf16_ps(acc[2 * r], xr, b0);
                    acc[2 * r + 1] = _mm512_dpbf16_ps(acc[2 * r + 1], xr, b1);
                }
            }
            for r in 0..R {
                _mm512_storeu_ps(c.add((r0 + r) * NR), acc[2 * r]);
                _mm512_storeu_ps(c.add((r0 + r) * NR + 16), acc[2 * r + 1]);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dots(_: *const u16, _: usize, _: *const u32, _: usize, _: *mut f32) {
    unreachable!("no AVX512-BF16 off x86-64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::gemm::linear_ref;

    /// Odd sizes (padding in m, k and n), f32 and bf16 storage, against the
    /// f64 reference of the same bf16-rounded inputs, and against f32 math.
    #[test]
    fn every_bf16_kernel_here_matches_the_reference() {
        if kernels().is_empty() {
            eprintln!("skipped: no AMX or AVX512-BF16 here");
        }
        let round = |v: f32| bf16::from_f32(v).to_f32();
        let shapes = [
            (1, 1, 1),
            (17, 40, 33),
            (33, 96, 129),
            (70, 200, 45),
            (300, 64, 260),
        ];
        for (&kernel, (m, k, n)) in kernels()
            .iter()
            .flat_map(|k| std::iter::repeat(k).zip(shapes))
        {
            let mut s = 1u32;
            let mut next = || {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            };
            let x: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
            let xr: Vec<f32> = x.iter().map(|v| round(*v)).collect();
            let wr: Vec<f32> = w.iter().map(|v| round(*v)).collect();
            let want = linear_ref(&xr, &wr, None, k, n);
            let exact = linear_ref(&x, &w, None, k, n);
            let stored = Data::BF16(w.iter().map(|v| bf16::from_f32(*v)).collect());
            for data in [stored, Data::F32(w.clone())] {
                let mut out = vec![1f32; m * n];
                linear_with(kernel, &x, &data, &mut out, m, k, n);
                let scale = (k as f32).sqrt() * 0.3;
                for ((o, w), e) in out.iter().zip(&want).zip(&exact) {
                    assert!(
                        (o - 1.0 - w).abs() <= 1e-5 * scale,
                        "{kernel:?} {m}x{k}x{n}: {o} vs {w}"
                    );
                    assert!(
                        (o - 1.0 - e).abs() <= 2e-2 * scale,
                        "{kernel:?} {m}x{k}x{n}: {o} vs f32 {e}"
                    );
                }
            }
        }
    }
}
