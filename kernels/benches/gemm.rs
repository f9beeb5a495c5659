//! GEMM throughput on the shapes lakecap's models run: the `gemm` crate (as
//! `Cpu::linear` calls it for unpacked weights), the streaming small-row
//! path, and the packed-weight kernel. `cargo bench -p lakecap-kernels --bench gemm`
//! (rayon's default thread count; set `RAYON_NUM_THREADS` to change it).

use std::time::Instant;

use lakecap_kernels::cpu::{gemm, packed};

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
        ("decode, 32 rows", 32, 576, 1536),
        ("decode, 1 row", 1, 576, 1536),
    ];
    println!("threads: {}", rayon::current_num_threads());
    println!("{:<28} {:>10} {:>10} {:>10}", "shape (m, k, n)", "gemm", "small_m", "packed");
    for (name, m, k, n) in shapes {
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect();
        let mut out = vec![0f32; m * n];
        let xt = lakecap_kernels::CpuTensor::from_f32(&[m, k], x.clone());
        let wt = lakecap_kernels::CpuTensor::from_f32(&[n, k], w.clone());
        let g = if m > gemm::SMALL_M {
            rate(m, k, n, || {
                gemm::linear(&xt, &wt, None).unwrap();
            })
        } else {
            f64::NAN
        };
        let s = if m <= 256 {
            rate(m, k, n, || gemm::small_m(&x, &w, &mut out, m, k, n))
        } else {
            f64::NAN
        };
        let p = packed::Packed::new(&w, n, k);
        let pk = rate(m, k, n, || packed::gemm(&x, m, &p, &mut out));
        println!("{:<28} {g:>10.1} {s:>10.1} {pk:>10.1}", format!("{name} ({m},{k},{n})"));
    }
}
