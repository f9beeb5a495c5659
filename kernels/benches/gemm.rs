//! GEMM throughput (GFLOP/s) on the shapes lakecap's models run, for the
//! paths of `Cpu::linear`: the `gemm` crate and the streaming small-row
//! kernel (`gemm::small_m`, taken for at most `SMALL_M` rows), so the
//! crossover can be re-checked on a new machine; and for a bf16 checkpoint's
//! weights, the f32 path (widen, then the `gemm` crate) against the bf16
//! GEMM (`bf16_gemm::linear`: AMX tiles or AVX512-BF16) where the CPU has one;
//! and for decode-sized products (up to `STORED_SMALL_M` rows) on bf16,
//! GGML Q4_1 and Q4_K weights (and Q5_K interleaved), the streaming kernel
//! with stored rows widened four at a time into a buffer
//! against read in registers (bf16: `cpu::stored`; Q4_1: 8-bit x in integer
//! dot products, `cpu::int8`, AVX2 and AVX-512 VNNI through
//! `cpu::limit_simd`; `small_m` takes the registers up to `SMALL_M` rows).
//! `cargo bench -p lakecap-kernels --bench gemm` (rayon's default thread
//! count; set `RAYON_NUM_THREADS` to change it).

use std::time::Instant;

use half::bf16;
use lakecap_kernels::cpu::{CpuTensor, Data, Simd, bf16_gemm as native, gemm, limit_simd, packed};
use lakecap_kernels::quant::GgmlType;

/// GFLOP/s of `f` over `(m, k, n)`, best of a few timed repeats.
fn rate(m: usize, k: usize, n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let flop = 2.0 * (m * k * n) as f64;
    let reps = ((2e9 / flop) as usize).clamp(1, 200);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    flop / best / 1e9
}

fn main() {
    let shapes = [
        ("ViT-B/32 qkv, 32 images", 1600, 768, 768),
        ("ViT-B/32 mlp up", 1600, 768, 3072),
        ("ViT-B/32 mlp down", 1600, 3072, 768),
        ("MiniLM qkv, 64 x 16 tokens", 1024, 384, 384),
        ("MiniLM mlp up", 1024, 384, 1536),
        ("decode, 48 rows", 48, 576, 1536),
        ("decode, 32 rows", 32, 576, 1536),
        ("decode, 16 rows", 16, 768, 768),
        ("LM head, 32 rows", 32, 576, 49152),
        ("BLIP LM head, 16 rows", 16, 768, 30524),
        ("decode mlp, 32 rows", 32, 576, 4608),
        ("decode, 8 rows", 8, 576, 1536),
        ("decode, 4 rows", 4, 576, 1536),
        ("decode, 1 row", 1, 576, 1536),
        ("1B-size mlp up, 8 rows", 8, 2048, 8192),
        ("1B-size mlp up, 1 row", 1, 2048, 8192),
    ];
    println!("threads: {}", rayon::current_num_threads());
    println!("{}", lakecap_kernels::cpu::simd_paths());
    println!(
        "{:<44} {:>8} {:>8} {:>10} {:>9} {:>6}",
        "shape (m, k, n)", "gemm", "small_m", "bf16 wide", "bf16 gemm", "gemm/wide"
    );
    for (name, m, k, n) in shapes {
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        // As in a model, each call gets a weight not in cache: rotate through
        // copies that together exceed the last-level cache.
        let copies = (96 << 20) / (4 * n * k) + 1;
        let ws: Vec<Vec<f32>> = (0..copies)
            .map(|c| {
                (0..n * k)
                    .map(|i| ((i * 104_729 + c) % 1000) as f32 / 1000.0 - 0.5)
                    .collect()
            })
            .collect();
        let mut next = 0;
        let mut w = || {
            next = (next + 1) % copies;
            &ws[next]
        };
        let mut out = vec![0f32; m * n];
        let g = rate(m, k, n, || gemm::large_m(&x, w(), &mut out, m, k, n));
        let s = if m <= 256 {
            rate(m, k, n, || {
                gemm::small_m(&x, gemm::WeightRows::F32(w()), &mut out, m, k, n)
            })
        } else {
            f64::NAN
        };
        // A bf16 checkpoint's weight: widened and multiplied in f32 (what
        // `Cpu::linear` does without a bf16 GEMM), or by the bf16 GEMM.
        let halves: Vec<CpuTensor> = ws
            .iter()
            .map(|w| CpuTensor {
                shape: vec![n, k],
                data: Data::BF16(w.iter().map(|v| bf16::from_f32(*v)).collect()),
            })
            .collect();
        let mut next_half = 0;
        let mut h = || {
            next_half = (next_half + 1) % copies;
            &halves[next_half]
        };
        let (wide, tiles) = if m > gemm::SMALL_M {
            let wide = rate(m, k, n, || {
                gemm::large_m(&x, &h().f32_par(), &mut out, m, k, n)
            });
            let tiles = match native::available() {
                true => rate(m, k, n, || native::linear(&x, &h().data, &mut out, m, k, n)),
                false => f64::NAN,
            };
            (wide, tiles)
        } else {
            (f64::NAN, f64::NAN)
        };
        println!(
            "{:<44} {g:>8.1} {s:>8.1} {wide:>10.1} {tiles:>9.1} {:>6.2}",
            format!("{name} ({m},{k},{n})"),
            tiles / wide
        );
    }
    stored_rows(&shapes);
}

/// The streaming kernel on stored bf16, Q4_1 and Q4_K weights: widened into
/// a buffer (`small_m_with(.., false)`) against read in registers (Q4_1 and
/// Q4_K: by 8-bit x), AVX2 and AVX-512; both also interleaved eight rows
/// at a time (`cpu::packed`, VNNI).
fn stored_rows(shapes: &[(&str, usize, usize, usize)]) {
    println!(
        "\n{:<44} {:>6} {:>6} {:>7} {:>6} {:>6} {:>7} {:>7} {:>6} {:>6} {:>7} {:>7} {:>7}",
        "stored weights, small m",
        "bf16 w",
        "avx2",
        "avx512",
        "q4_1 w",
        "avx2",
        "avx512",
        "x8",
        "q4_k w",
        "avx2",
        "avx512",
        "x8",
        "q5_k x8"
    );
    for &(name, m, k, n) in shapes.iter().filter(|s| s.1 <= gemm::STORED_SMALL_M) {
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let copies = (96 << 20) / (2 * n * k) + 1;
        let halves: Vec<Data> = (0..copies)
            .map(|c| {
                Data::BF16(
                    (0..n * k)
                        .map(|i| bf16::from_f32(((i * 104_729 + c) % 1000) as f32 / 1000.0 - 0.5))
                        .collect(),
                )
            })
            .collect();
        // Q4_1 blocks and Q4_K super-blocks (where k allows): scales and
        // minimums as small f16 values, the rest varied.
        let blocks = |ty: GgmlType, header: [u8; 4]| -> Vec<Vec<u8>> {
            let (bv, bb) = ty.block();
            (0..copies)
                .map(|c| {
                    let mut b: Vec<u8> = (0..n * k / bv * bb)
                        .map(|i| ((i * 131 + c * 7) % 251) as u8)
                        .collect();
                    for blk in b.chunks_mut(bb) {
                        blk[0..4].copy_from_slice(&header);
                    }
                    b
                })
                .collect()
        };
        // GGML's row layout, and interleaved as `Cpu::upload` keeps them on
        // VNNI CPUs (none where it does not).
        let stored = |ty: GgmlType, header: [u8; 4]| -> [Vec<Data>; 2] {
            let bytes = blocks(ty, header);
            let x8 = match packed::packs(ty, &[n, k]) {
                true => bytes.iter().map(|b| Data::quant(ty, &[n, k], b)).collect(),
                false => Vec::new(),
            };
            [bytes.into_iter().map(|b| Data::Quant(ty, b)).collect(), x8]
        };
        let [quants, interleaved] = stored(GgmlType::Q4_1, [0x1c, 0x1c, 0x1c, 0x9c]);
        let [k_quants, k_interleaved] = stored(GgmlType::Q4K, [0x1c; 4]);
        let [_, k5_interleaved] = stored(GgmlType::Q5K, [0x1c; 4]);
        let mut out = vec![0f32; m * n];
        let mut time = |ws: &[Data], level: Option<Simd>| {
            limit_simd(level.unwrap_or(Simd::Best));
            let mut next = 0;
            let r = rate(m, k, n, || {
                next = (next + 1) % copies;
                let w = gemm::WeightRows::Stored(&ws[next]);
                gemm::small_m_with(&x, w, &mut out, m, k, n, level.is_some())
            });
            limit_simd(Simd::Best);
            r
        };
        let levels = [None, Some(Simd::Avx2), Some(Simd::Best)];
        let h = levels.map(|l| time(&halves, l));
        let q = levels.map(|l| time(&quants, l));
        let mut x8 = |ws: &[Data]| match ws.is_empty() {
            true => f64::NAN,
            false => time(ws, Some(Simd::Best)),
        };
        let (x8, kx8, k5x8) = (x8(&interleaved), x8(&k_interleaved), x8(&k5_interleaved));
        let kq = match k.is_multiple_of(256) {
            true => levels.map(|l| time(&k_quants, l)),
            false => [f64::NAN; 3],
        };
        println!(
            "{:<44} {:>6.1} {:>6.1} {:>7.1} {:>6.1} {:>6.1} {:>7.1} {:>7.1} {:>6.1} {:>6.1} {:>7.1} {:>7.1} {:>7.1}",
            format!("{name} ({m},{k},{n})"),
            h[0],
            h[1],
            h[2],
            q[0],
            q[1],
            q[2],
            x8,
            kq[0],
            kq[1],
            kq[2],
            kx8,
            k5x8
        );
    }
}
