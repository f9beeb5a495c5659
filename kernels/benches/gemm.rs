//! GEMM throughput (GFLOP/s) on the shapes lakecap's models run, for both
//! paths of `Cpu::linear`: the `gemm` crate and the streaming small-row
//! kernel (`gemm::small_m`, taken for at most `SMALL_M` rows), so the
//! crossover can be re-checked on a new machine.
//! `cargo bench -p lakecap-kernels --bench gemm` (rayon's default thread
//! count; set `RAYON_NUM_THREADS` to change it).

use std::time::Instant;

use lakecap_kernels::cpu::gemm;

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
    ];
    println!("threads: {}", rayon::current_num_threads());
    println!("{:<44} {:>8} {:>8}", "shape (m, k, n)", "gemm", "small_m");
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
        println!("{:<44} {g:>8.1} {s:>8.1}", format!("{name} ({m},{k},{n})"));
    }
}
