//! Throughput of the model runtime, for scripts/bench-models.sh and
//! scripts/gpu-check.sh (which run the PyTorch peers on the same weights).
//!
//!   bench_models clip DIR [--device cpu|cuda] [--batch 32] [--iters 3]
//!       images/s of CLIP image embeddings from JPEG bytes (decode, preprocess,
//!       vision tower, projection), and of the vision tower alone.
//!   bench_models text DIR [--batch 64] [--iters 3]
//!       sentences/s of a sentence encoder on sample-lake-like alt texts.
//!
//!   bench_models llm FILE.gguf|DIR [--device cpu|cuda] [--batch 32] [--prompt 128] [--steps 32]
//!                    [--ubatch N]
//!       prefill and decode tokens/s of a Llama-family model: one step with
//!       `batch` prompts of `prompt` tokens (`--ubatch`: steps of at most N
//!       tokens, as the generator's `STEP_TOKENS` and llama.cpp's `n_ubatch`
//!       split them), then `steps` decode steps of one token per sequence
//!       (the shape bench/llm_peer.py gives llama.cpp).
//!
//!   bench_models blip DIR [--device cpu|cuda] [--batch 16] [--iters 2]
//!       captions/s of a BLIP captioner from JPEG bytes, 20 new tokens forced
//!       (EOS ignored), `batch` images per call through `batch` slots.
//!
//!   bench_models vlm DIR [--device cpu|cuda] [--batch 8] [--iters 1]
//!       captions/s of a VLM (Qwen2-VL, Qwen2.5-VL, LLaVA) from JPEG bytes,
//!       "Describe this image.", 20 new tokens forced, `batch` rows at once.
//!
//!   bench_models nsfw DIR [--device cpu|cuda] [--batch 32] [--iters 2]
//!       images/s of open_nsfw (an ONNX ResNet) from JPEG bytes (decode, the
//!       package's preprocessing with its JPEG round trip, the network), and
//!       of the network alone (bench/nsfw_peer.py runs onnxruntime).
//!
//!   bench_models knn N [--dim 512] [--k 10] [--blobs B] [--ivf [--lists L] [--probes P]] [--device cpu|cuda]
//!       seconds of a k-NN search of N queries against N corpus vectors,
//!       uniform random or around B centres; exact (bench/knn_peer.py runs
//!       PyTorch on the same shape) or through an IVF index, with its
//!       recall@k against exact search on the first 1,000 queries.
//!
//!   bench_models embed DIR OUT.f32 [--device cpu|cuda] [--precision ...]
//!       unnormalised image embeddings of the PNG photos in data/photos (sorted),
//!       as little-endian f32, for parity checks against transformers.
//!
//! `--precision auto|f32|f16|bf16` is `lakecap.precision`: what CUDA keeps
//! weights in, and on the CPU `f32` for exact products or `bf16` for weight
//! matrices kept in bf16 (`embed` with `f32` for parity, `f16`/`bf16` to
//! measure the drift).
//!
//! Prints one `key=value` line per measurement.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lakecap_kernels::cuda::Precision;
use lakecap_kernels::{Backend, Cpu, Cuda};
use lakecap_models::clip::{ClipConfig, ClipPreprocess, ClipVision};
use lakecap_models::decode::GenParams;
use lakecap_models::image::{DecodeLimits, decode};
use lakecap_models::runtime::Device;
use lakecap_models::weights::Weights;
use rayon::prelude::*;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn jpegs(n: usize) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/photos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    files.sort();
    // Re-encode every photo as a JPEG at quality 90, the common lake format.
    let encoded: Vec<Vec<u8>> = files
        .iter()
        .map(|p| {
            let img = image::open(p).unwrap().to_rgb8();
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&img)
                .unwrap();
            out
        })
        .collect();
    (0..n).map(|i| encoded[i % encoded.len()].clone()).collect()
}

/// Runs `run` once to warm up, then `iters` times, each adding the seconds
/// its model part took; returns the warm-up's result, the total and the
/// model seconds.
fn timed<T>(iters: usize, run: impl Fn(&mut f64) -> T) -> (T, f64, f64) {
    let warm = run(&mut 0.0);
    let mut model_s = 0.0;
    let t = Instant::now();
    for _ in 0..iters {
        run(&mut model_s);
    }
    (warm, t.elapsed().as_secs_f64(), model_s)
}

fn clip<B: Backend>(be: &B, dir: &Path, batch: usize, iters: usize) {
    let cfg: ClipConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let t = Instant::now();
    let w = Weights::open(dir).unwrap();
    let model = ClipVision::load(be, &cfg, &w).unwrap();
    println!("device={}", be.name());
    println!("load_s={:.2}", t.elapsed().as_secs_f64());
    let prep = ClipPreprocess::load(dir, &cfg.vision_config).unwrap();
    let bytes = jpegs(batch);
    let run = |timed_model: &mut f64| {
        let flat: Vec<f32> = bytes
            .par_iter()
            .map(|b| prep.patches(&decode(b, DecodeLimits::default()).unwrap()))
            .collect::<Vec<_>>()
            .concat();
        let t = Instant::now();
        let out = model.forward(be, &flat, batch).unwrap();
        let v = be.download(&out).unwrap();
        *timed_model += t.elapsed().as_secs_f64();
        assert_eq!(v.len(), batch * cfg.projection_dim);
    };
    let ((), total, model_s) = timed(iters, run);
    let n = (batch * iters) as f64;
    println!("clip_images_per_s={:.1}", n / total);
    println!("clip_model_images_per_s={:.1}", n / model_s);
    println!("clip_preprocess_images_per_s={:.1}", n / (total - model_s));
}

fn nsfw<B: Backend>(be: &B, dir: &Path, batch: usize, iters: usize) {
    use lakecap_models::open_nsfw::{load_program, model::ConvNet, preprocess};
    let t = Instant::now();
    let net = ConvNet::load(be, &load_program(dir).unwrap()).unwrap();
    println!("device={}", be.name());
    println!("load_s={:.2}", t.elapsed().as_secs_f64());
    let bytes = jpegs(batch);
    let run = |timed_model: &mut f64| {
        let flat: Vec<f32> = bytes
            .par_iter()
            .map(|b| preprocess::preprocess(&decode(b, DecodeLimits::default()).unwrap()).unwrap())
            .collect::<Vec<_>>()
            .concat();
        let t = Instant::now();
        let out = net.forward(be, &flat).unwrap();
        *timed_model += t.elapsed().as_secs_f64();
        assert_eq!(out.len(), batch);
        out.iter().map(|p| p[1] as f64).sum::<f64>() / batch as f64
    };
    let (mean, total, model_s) = timed(iters, run);
    println!("nsfw_mean_score={mean:.6}");
    let n = (batch * iters) as f64;
    println!("nsfw_images_per_s={:.1}", n / total);
    println!("nsfw_model_images_per_s={:.1}", n / model_s);
}

fn embed_photos<B: Backend>(be: &B, dir: &Path, out: &Path) {
    let cfg: ClipConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let w = Weights::open(dir).unwrap();
    let model = ClipVision::load(be, &cfg, &w).unwrap();
    let prep = ClipPreprocess::load(dir, &cfg.vision_config).unwrap();
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/photos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&photos)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    let flat: Vec<f32> = files
        .iter()
        .flat_map(|f| {
            prep.patches(&decode(&std::fs::read(f).unwrap(), DecodeLimits::default()).unwrap())
        })
        .collect();
    let v = be
        .download(&model.forward(be, &flat, files.len()).unwrap())
        .unwrap();
    std::fs::write(
        out,
        v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    println!("embedded={} dim={}", files.len(), cfg.projection_dim);
}

fn text(dir: &Path, batch: usize, iters: usize, device: Device) {
    let emb =
        lakecap_models::serve::embed::load_text_embedder(dir, "bench", batch, device).unwrap();
    let texts: Vec<String> = (0..batch)
        .map(|i| {
            format!(
                "a photo of {} {} on a sunny day near the old harbour, item {i}",
                ["a red", "two", "the", "some"][i % 4],
                ["boats", "cats", "bicycles", "houses"][i % 4]
            )
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = || {
        let ids = emb.tokenize(&refs).unwrap();
        rt.block_on(emb.embed(ids)).unwrap()
    };
    run();
    let t = Instant::now();
    for _ in 0..iters {
        run();
    }
    println!(
        "text_sentences_per_s={:.1}",
        (batch * iters) as f64 / t.elapsed().as_secs_f64()
    );
}

/// `poll`: steps with the pool's workers polling, as the generator runs CPU
/// steps; `ubatch`: most prompt tokens a step (0: all).
fn llm<B: Backend>(be: B, path: &Path, [batch, prompt, steps, ubatch]: [usize; 4], poll: bool) {
    use lakecap_kernels::Pos;
    use lakecap_models::decode::{Decoder, Want};
    use lakecap_models::gguf::Gguf;
    use lakecap_models::llama::{GgufWeights, Llama, LlamaConfig, LlamaDecoder, config_from_gguf};

    // The decoding loop's thread joins a pool as the generator's worker does.
    let _pool = lakecap_models::runtime::join_pool();
    let t = Instant::now();
    let model = match lakecap_models::hub::gguf_file(path)
        .filter(|_| !path.join("config.json").is_file())
    {
        Some(f) => {
            let g = Gguf::open(&f).unwrap();
            let cfg = config_from_gguf(&g).unwrap();
            Llama::load(&be, &cfg, &GgufWeights::new(g, &cfg)).unwrap()
        }
        None => {
            let cfg: LlamaConfig =
                serde_json::from_str(&std::fs::read_to_string(path.join("config.json")).unwrap())
                    .unwrap();
            Llama::load(&be, &cfg, &Weights::open(path).unwrap()).unwrap()
        }
    };
    println!("device={}", be.name());
    println!("load_s={:.2}", t.elapsed().as_secs_f64());
    let mut dec = LlamaDecoder::new(be, model, batch, prompt + steps + 1).unwrap();
    let mut run = |timed: bool| {
        // The token ids bench/llm_peer.py feeds llama.cpp.
        let (mut tokens, mut at, mut last) = (vec![], vec![], vec![]);
        for s in 0..batch {
            for i in 0..prompt {
                tokens.push(((7 * i + 13 * s) % 5000 + 100) as u32);
                at.push(Pos { slot: s, pos: i });
            }
            last.push(tokens.len() - 1);
        }
        let t0 = Instant::now();
        let chunk = if ubatch == 0 { tokens.len() } else { ubatch };
        for c0 in (0..tokens.len()).step_by(chunk) {
            let c1 = (c0 + chunk).min(tokens.len());
            let ends: Vec<usize> = last
                .iter()
                .filter(|l| (c0..c1).contains(l))
                .map(|l| l - c0)
                .collect();
            dec.step(&tokens[c0..c1], &at[c0..c1], &ends, Want::Top(1))
                .unwrap();
        }
        let t1 = Instant::now();
        let all: Vec<usize> = (0..batch).collect();
        for k in 0..steps {
            let tokens: Vec<u32> = (0..batch)
                .map(|s| ((k * 31 + s) % 5000 + 100) as u32)
                .collect();
            let at: Vec<Pos> = (0..batch)
                .map(|s| Pos {
                    slot: s,
                    pos: prompt + k,
                })
                .collect();
            let mut step = || dec.step(&tokens, &at, &all, Want::Top(1)).unwrap();
            match poll {
                true => lakecap_models::runtime::busy(step),
                false => step(),
            };
        }
        let t2 = Instant::now();
        if timed {
            let (p, d) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
            println!(
                "lakecap_b{batch}_prefill_tokens_per_s={:.1}",
                (batch * prompt) as f64 / p
            );
            println!(
                "lakecap_b{batch}_decode_tokens_per_s={:.1}",
                (batch * steps) as f64 / d
            );
        }
    };
    run(false);
    run(true);
}

/// Captions/s of `caption` (one call captions `batch` JPEG photos, 20 new
/// tokens forced), after a warm-up call; prints `lakecap_{tag}_b{batch}_…`.
fn captions_per_s<F>(tag: &str, batch: usize, iters: usize, caption: F)
where
    F: Fn(&[Vec<u8>], GenParams, &tokio::runtime::Runtime) -> usize,
{
    let bytes = jpegs(batch);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let params = GenParams {
        max_new_tokens: 20,
        ignore_eos: true,
        ..Default::default()
    };
    let run = || assert_eq!(caption(&bytes, params.clone(), &rt), batch);
    run();
    let t = Instant::now();
    for _ in 0..iters {
        run();
    }
    println!(
        "lakecap_{tag}_b{batch}_captions_per_s={:.3}",
        (batch * iters) as f64 / t.elapsed().as_secs_f64()
    );
}

fn load_timed<T>(load: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let x = load();
    println!("load_s={:.2}", t.elapsed().as_secs_f64());
    x
}

fn blip(dir: &Path, batch: usize, iters: usize, device: Device) {
    use lakecap_models::serve::caption::load_captioner;
    let cap = load_timed(|| load_captioner(dir, "bench", batch, device).unwrap());
    captions_per_s("blip", batch, iters, |bytes, params, rt| {
        let images: Vec<Vec<f32>> = bytes
            .par_iter()
            .map(|b| cap.preprocess(&decode(b, DecodeLimits::default()).unwrap()))
            .collect();
        let out = rt.block_on(cap.caption(images, "", params)).unwrap();
        out.iter().filter(|r| r.is_ok()).count()
    });
}

fn vlm(dir: &Path, batch: usize, iters: usize, device: Device) {
    use lakecap_models::serve::vlm::load_vlm;
    let v = load_timed(|| load_vlm(dir, "bench", batch, device).unwrap());
    captions_per_s("vlm", batch, iters, |bytes, params, rt| {
        let requests = bytes
            .par_iter()
            .map(|b| {
                let img = decode(b, DecodeLimits::default()).unwrap();
                let ask = "Describe this image.".to_string();
                (v.preprocess(&img).unwrap(), ask)
            })
            .collect();
        let out = rt.block_on(v.ask(requests, params)).unwrap();
        out.iter().filter(|r| r.is_ok()).count()
    });
}

/// k-NN of `n` queries against `n` corpus vectors: uniform random, or drawn
/// around `blobs` random centres (clustered, as real embeddings are). Exact,
/// or through an IVF index (`ivf`: lists and probes, 0 for the defaults),
/// whose recall@k against exact search is measured on the first 1,000 queries.
fn knn(n: usize, d: usize, k: usize, blobs: usize, ivf: Option<(usize, usize)>, device: Device) {
    use lakecap_models::knn::{Ivf, knn_ivf_on, knn_on};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let centres: Vec<f32> = (0..blobs.max(1) * d)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let mut vectors = |n: usize| -> Vec<f32> {
        (0..n * d)
            .map(|i| match blobs {
                0 => rng.random_range(-1.0..1.0),
                b => centres[(i / d % b) * d + i % d] + rng.random_range(-0.3..0.3),
            })
            .collect()
    };
    let (q, c) = (vectors(n), vectors(n));
    let start = Instant::now();
    let index = ivf.map(|(lists, probes)| {
        let default = Ivf::for_corpus(n);
        let lists = if lists == 0 { default.lists } else { lists };
        let probes = if probes == 0 {
            lists.div_ceil(16)
        } else {
            probes
        };
        Ivf {
            lists,
            probes,
            seed: 0,
        }
    });
    let found = match index {
        None => knn_on(device, &q, &c, d, k).unwrap(),
        Some(ivf) => knn_ivf_on(device, &q, &c, d, k, ivf).unwrap(),
    };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(found.len(), n);
    let mut line = format!(
        "knn_n={n} knn_dim={d} knn_k={k} knn_blobs={blobs} knn_seconds={secs:.2} knn_pairs_per_s={:.3e}",
        (n * n) as f64 / secs
    );
    if let Some(ivf) = index {
        let m = n.min(1000);
        let exact = knn_on(device, &q[..m * d], &c, d, k).unwrap();
        let hits: usize = exact
            .iter()
            .zip(&found)
            .map(|(e, f)| {
                f.iter()
                    .filter(|x| e.iter().any(|y| y.index == x.index))
                    .count()
            })
            .sum();
        line += &format!(
            " ivf_lists={} ivf_probes={} ivf_recall_at_k={:.4}",
            ivf.lists,
            ivf.probes,
            hits as f64 / (m * k) as f64
        );
    }
    println!("{line}");
}

fn main() {
    lakecap_models::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "paths") {
        // Printed beside every figure by scripts/bench-models.sh.
        println!("cpu_paths=\"{}\"", lakecap_kernels::cpu::simd_paths());
        return;
    }
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: bench_models paths | clip|text|llm|blip|vlm|nsfw|embed DIR [--device cpu|cuda] [--precision auto|f32|f16|bf16] [--batch N] [--iters N]"
        );
        std::process::exit(2);
    };
    let batch: usize = arg(&args, "--batch", "32").parse().unwrap();
    let iters: usize = arg(&args, "--iters", "3").parse().unwrap();
    let dir = Path::new(dir);
    let precision = arg(&args, "--precision", "auto");
    let device = Device::parse(&arg(&args, "--device", "cpu"))
        .unwrap()
        .0
        .with_precision(&precision)
        .unwrap();
    let precision: Precision = precision.parse().expect("a precision");
    let cuda = || Cuda::new(0, precision).unwrap();
    let cpu = Cpu { precision };
    match (mode.as_str(), arg(&args, "--device", "cpu").as_str()) {
        ("clip", "cpu") => clip(&cpu, dir, batch, iters),
        ("clip", "cuda") => clip(&cuda(), dir, batch, iters),
        ("nsfw", "cpu") => nsfw(&cpu, dir, batch, iters),
        ("nsfw", "cuda") => nsfw(&cuda(), dir, batch, iters),
        ("text", _) => text(dir, batch, iters, device),
        ("blip", _) => blip(dir, batch, iters, device),
        ("vlm", _) => vlm(dir, batch, iters, device),
        ("knn", _) => {
            let n: usize = args[2].parse().expect("knn N: a row count");
            let d: usize = arg(&args, "--dim", "512").parse().unwrap();
            let k: usize = arg(&args, "--k", "10").parse().unwrap();
            let blobs: usize = arg(&args, "--blobs", "0").parse().unwrap();
            let ivf = args.iter().any(|a| a == "--ivf").then(|| {
                (
                    arg(&args, "--lists", "0").parse().unwrap(),
                    arg(&args, "--probes", "0").parse().unwrap(),
                )
            });
            knn(n, d, k, blobs, ivf, device)
        }
        ("llm", dev) => {
            let prompt: usize = arg(&args, "--prompt", "128").parse().unwrap();
            let steps: usize = arg(&args, "--steps", "32").parse().unwrap();
            let ubatch: usize = arg(&args, "--ubatch", "0").parse().unwrap();
            let shape = [batch, prompt, steps, ubatch];
            if dev == "cuda" {
                llm(cuda(), dir, shape, false)
            } else {
                llm(cpu, dir, shape, true)
            }
        }
        ("embed", dev) => {
            let out = Path::new(args.get(3).expect("OUT.f32"));
            if dev == "cuda" {
                embed_photos(&cuda(), dir, out)
            } else {
                embed_photos(&cpu, dir, out)
            }
        }
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
