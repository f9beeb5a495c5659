//! bf16 GEMMs on Intel AMX tiles (Sapphire Rapids and later): `out += x · wᵀ`
//! with `x` rounded to bf16 and f32 accumulation, as PyTorch runs a bf16
//! model's linear layers on these CPUs.
//!
//! - The tile instructions are written with `asm!` (Rust has no stable AMX
//!   intrinsics); the process asks Linux for the tile state once
//!   (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), and [`available`] is false where
//!   the CPU, the kernel or [`super::limit_simd`] says no.
//! - Blocking: 8 tile registers as 2×2 C tiles (32×32 f32), 2 A tiles (32
//!   rows × 32 k of `x`) and 2 B tiles (32 k × 32 columns of `w`). `x` is
//!   converted once to bf16 rows padded to 32 k; each task packs a band of
//!   `w`'s rows into the VNNI pair layout the B tiles read (rows of k pairs,
//!   bf16 checkpoints copied bit for bit, other storage rounded) and sweeps
//!   every 32-row block of `x` over it, so the band stays in L2.

use std::sync::OnceLock;

use half::bf16;
use rayon::prelude::*;

use super::Data;

/// Rows of `x` per micro-tile (two A tiles of 16).
const MR: usize = 32;
/// Columns of `w` per micro-tile (two B tiles of 16).
const NR: usize = 32;
/// k per tile step: 16 rows of bf16 pairs, 64 bytes a row.
const KR: usize = 32;
/// Columns of `w` per task: four micro-tiles share each A block from L1/L2.
const BAND: usize = 4 * NR;

/// Whether the AMX bf16 path may run here.
pub fn available() -> bool {
    if !super::allowed(super::Simd::Best) {
        return false;
    }
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> bool {
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
fn detect() -> bool {
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

/// `out [m, n] += x [m, k] · w [n, k]ᵀ` in bf16 on AMX tiles; call only
/// when [`available`].
pub fn linear(x: &[f32], w: &Data, out: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(available(), "AMX bf16 is not available on this CPU");
    assert!(x.len() >= m * k && out.len() >= m * n);
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
    let out_at = SyncPtr(out.as_mut_ptr());
    (0..n.div_ceil(BAND)).into_par_iter().for_each(|band| {
        let j0 = band * BAND;
        let cols = (n - j0).min(BAND);
        let b = pack_band(w, k, kp, j0, cols);
        let mut c = [0f32; MR * NR];
        // SAFETY: the CPU has AMX (asserted) and the config is valid.
        unsafe { load_config() };
        for i0 in (0..m).step_by(MR) {
            for (t, tile) in b.chunks(kp / 2 * NR).enumerate() {
                // SAFETY: `a` holds rows i0..i0+32 of kp bf16 each, `tile`
                // kp/2 rows of 32 pairs, `c` 32×32 f32: what the kernel reads
                // and writes.
                unsafe {
                    kernel(
                        a[i0 * kp..].as_ptr(),
                        kp,
                        tile.as_ptr(),
                        kp / KR,
                        c.as_mut_ptr(),
                    )
                };
                let jt = j0 + t * NR;
                for (r, crow) in c.chunks(NR).enumerate().take(m.saturating_sub(i0).min(MR)) {
                    for (q, v) in crow.iter().enumerate().take((n - jt).min(NR)) {
                        // SAFETY: each task adds to its own columns
                        // j0..j0+cols of row i0+r, inside out (asserted).
                        unsafe { *out_at.at((i0 + r) * n + jt + q) += v };
                    }
                }
            }
        }
        // SAFETY: releases this thread's tile state.
        unsafe { std::arch::asm!("tilerelease") };
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

/// C[32×32] = A[32×kp] · B, over `steps` k-steps of 32: `a` rows of `kp`
/// bf16, `b` kp/2 rows of 32 pairs (128 bytes), `c` 32 rows of 32 f32.
unsafe fn kernel(a: *const u16, kp: usize, b: *const u32, steps: usize, c: *mut f32) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::gemm::linear_ref;

    /// Odd sizes (padding in m, k and n), f32 and bf16 storage, against the
    /// f64 reference of the same bf16-rounded inputs, and against f32 math.
    #[test]
    fn amx_matches_the_reference_where_the_cpu_has_it() {
        if !available() {
            eprintln!("skipped: no AMX bf16 here");
            return;
        }
        let round = |v: f32| bf16::from_f32(v).to_f32();
        for (m, k, n) in [(1, 1, 1), (17, 40, 33), (33, 96, 129), (70, 200, 45)] {
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
                linear(&x, &data, &mut out, m, k, n);
                let scale = (k as f32).sqrt() * 0.3;
                for ((o, w), e) in out.iter().zip(&want).zip(&exact) {
                    assert!(
                        (o - 1.0 - w).abs() <= 1e-5 * scale,
                        "{m}x{k}x{n}: {o} vs {w}"
                    );
                    assert!(
                        (o - 1.0 - e).abs() <= 2e-2 * scale,
                        "{m}x{k}x{n}: {o} vs f32 {e}"
                    );
                }
            }
        }
    }
}
