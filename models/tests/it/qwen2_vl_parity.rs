//! Tiny random-init Qwen2-VL against transformers
//! and Qwen2.5-VL (tests/fixtures/gen_vlm_fixtures.py), Qwen2-VL in both
//! checkpoint layouts:
//! `Qwen2VLImageProcessor` patches and grids on real photos (every resize
//! non-trivial), the chat prompt with its image tokens expanded, the first
//! step's logits (f32) and greedy `generate` tokens through the
//! continuous-batching generator (five rows through two slots).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::common::{json, photo};
use lakecap_kernels::{Cpu, Pos};
use lakecap_models::decode::{Decoder, GenParams, Logits, Want};
use lakecap_models::multimodal::image_context;
use lakecap_models::qwen2_vl::{Qwen2VlConfig, image_input, load_decoder};
use lakecap_models::runtime::Device;
use lakecap_models::serve::vlm::load_vlm;
use lakecap_models::weights::Weights;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

/// (fixture, the fixture whose expected.json it must match): Qwen2-VL in
/// transformers 5's and the Hub's layouts, and Qwen2.5-VL (window attention).
const LAYOUTS: [(&str, &str); 3] = [
    ("qwen2-vl-tiny", "qwen2-vl-tiny"),
    ("qwen2-vl-tiny-hub", "qwen2-vl-tiny"),
    ("qwen2.5-vl-tiny", "qwen2.5-vl-tiny"),
];

fn expected(name: &str) -> serde_json::Value {
    json(&fixture(name).join("expected.json"))
}

#[test]
fn patches_prompts_and_first_logits_match_transformers() {
    for (layout, reference) in LAYOUTS {
        let exp = expected(reference);
        let stride = exp["sample_stride"].as_u64().unwrap() as usize;
        let dir = fixture(layout);
        let vlm = load_vlm(&dir, layout, 1, Device::Cpu).unwrap();
        let path = dir.join("config.json");
        let cfg = Qwen2VlConfig::from_json(&json(&path), &path).unwrap();
        let mut dec = load_decoder(Cpu, &cfg, &Weights::open(&dir).unwrap(), 1, 512).unwrap();
        for r in exp["rows"].as_array().unwrap() {
            let name = r["photo"].as_str().unwrap();
            let image = vlm.preprocess(&photo(name)).unwrap();
            let (t, h, w) = image.grid;
            let grid: Vec<usize> = serde_json::from_value(r["grid_thw"].clone()).unwrap();
            assert_eq!(vec![t, h, w], grid, "{layout} {name}");
            let shape: Vec<usize> = serde_json::from_value(r["pixel_shape"].clone()).unwrap();
            assert_eq!(image.rows.len(), shape[0] * shape[1], "{layout} {name}");
            // PNGs decode identically, so pixels agree to f32 rounding; JPEG
            // decoders (libjpeg's IDCT against the image crate's) may differ
            // by one 8-bit level, in normalised units 1/255/std.
            let png = name.ends_with(".png");
            let (tol, sum_tol) = if png {
                (1e-5, 1e-2)
            } else {
                let mass = r["pixel_abs_sum"].as_f64().unwrap();
                (1.0 / 255.0 / 0.26 + 1e-5, 1e-4 * mass)
            };
            let sample: Vec<f32> = serde_json::from_value(r["pixel_sample"].clone()).unwrap();
            for (k, want) in sample.iter().enumerate() {
                let got = image.rows[k * stride];
                assert!(
                    (got - want).abs() < tol,
                    "{layout} {name} pixel {}: {got} vs {want}",
                    k * stride
                );
            }
            let sum: f64 = image.rows.iter().map(|&x| x as f64).sum();
            let abs: f64 = image.rows.iter().map(|&x| x.abs() as f64).sum();
            assert!(
                (sum - r["pixel_sum"].as_f64().unwrap()).abs() < sum_tol,
                "{layout} {name} sum {sum}"
            );
            assert!(
                (abs - r["pixel_abs_sum"].as_f64().unwrap()).abs() < sum_tol,
                "{layout} {name} abs {abs}"
            );

            let prompt = r["prompt"].as_str().unwrap();
            assert_eq!(
                vlm.chat_prompt(prompt).unwrap(),
                r["text"].as_str().unwrap()
            );
            let (ids, start) = vlm.prompt_ids(prompt, &image).unwrap();
            let want_ids: Vec<u32> = serde_json::from_value(r["input_ids"].clone()).unwrap();
            assert_eq!(ids, want_ids, "{layout} {name}: image tokens expanded");

            dec.admit(&[(0, &image_context(start, image_input(&image)))]).unwrap();
            let at: Vec<Pos> = (0..ids.len()).map(|pos| Pos { slot: 0, pos }).collect();
            let Logits::All(got) = dec.step(&ids, &at, &[ids.len() - 1], Want::All).unwrap() else {
                panic!("whole rows asked")
            };
            let want: Vec<f32> = serde_json::from_value(r["logits_last"].clone()).unwrap();
            let scale = want.iter().fold(1f32, |m, x| m.max(x.abs()));
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            // f32 parity where the pixels are identical; a JPEG's decoder
            // difference moves logits a little (its greedy tokens still agree).
            let tol = if png { 1e-4 } else { 1e-2 };
            assert!(
                worst <= tol * scale,
                "{layout} {name}: logits differ by {worst} (scale {scale})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_replies_match_transformers_generate() {
    check_greedy(Device::Cpu).await;
    match lakecap_kernels::cuda::unavailable_reason() {
        None => check_greedy(Device::Cuda(0, lakecap_kernels::cuda::Precision::F32)).await,
        Some(why) => eprintln!("CUDA part skipped: {why}"),
    }
}

async fn check_greedy(device: Device) {
    for (layout, reference) in LAYOUTS {
        let vlm = load_vlm(&fixture(layout), layout, 2, device).unwrap();
        let rows = expected(reference)["rows"].as_array().unwrap().clone();
        let requests = rows
            .iter()
            .map(|r| {
                let image = vlm
                    .preprocess(&photo(r["photo"].as_str().unwrap()))
                    .unwrap();
                (image, r["prompt"].as_str().unwrap().to_string())
            })
            .collect();
        let params = GenParams {
            max_new_tokens: 10,
            ..Default::default()
        };
        let out = vlm.ask(requests, params).await.unwrap();
        for (r, got) in rows.iter().zip(out) {
            let want: Vec<u32> = serde_json::from_value(r["greedy"].clone()).unwrap();
            let got = got.unwrap();
            // transformers keeps the EOS it stopped at; the generator drops it.
            let mut got_tokens = got.tokens.clone();
            if want.len() == got_tokens.len() + 1 {
                got_tokens.push(*want.last().unwrap());
            }
            assert_eq!(got_tokens, want, "{device:?} {layout} {}", r["photo"]);
        }
        let st = &vlm.generator.stats;
        assert_eq!(st.sequences.load(Ordering::Relaxed), rows.len() as u64);
        assert_eq!(st.max_running.load(Ordering::Relaxed), 2);
    }
}
