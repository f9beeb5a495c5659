//! Tiny random-init VLMs against transformers (tests/fixtures/gen_vlm_fixtures.py):
//! Qwen2-VL in both checkpoint layouts, Qwen2.5-VL (window attention),
//! LLaVA-1.5 and SmolVLM (Idefics3: tiles and a global image). Per photo and prompt: the image processor's pixels (and
//! Qwen2-VL's grid; every resize non-trivial), the chat prompt with its image
//! tokens expanded, the first step's logits (f32) and greedy `generate`
//! tokens through the continuous-batching generator (five rows through two
//! slots).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::common::{json, photo};
use lakecap_kernels::{Cpu, Pos};
use lakecap_models::clip::ClipPreprocess;
use lakecap_models::decode::{Decoder, GenParams, Logits, Want};
use lakecap_models::idefics3::{self, Idefics3Config, Idefics3Preprocess};
use lakecap_models::image::preprocess::to_rgb;
use lakecap_models::llava::{self, LlavaConfig};
use lakecap_models::multimodal::image_context;
use lakecap_models::qwen2_vl::{self, Qwen2VlConfig, Qwen2VlPreprocess};
use lakecap_models::runtime::Device;
use lakecap_models::serve::vlm::load_vlm;
use lakecap_models::weights::Weights;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

/// (fixture, the fixture whose expected.json it must match).
const FIXTURES: [(&str, &str); 5] = [
    ("qwen2-vl-tiny", "qwen2-vl-tiny"),
    ("qwen2-vl-tiny-hub", "qwen2-vl-tiny"),
    ("qwen2.5-vl-tiny", "qwen2.5-vl-tiny"),
    ("llava-tiny", "llava-tiny"),
    ("smolvlm-tiny", "smolvlm-tiny"),
];

fn expected(name: &str) -> serde_json::Value {
    json(&fixture(name).join("expected.json"))
}

/// The processor's `pixel_values` for a photo, flattened as transformers
/// holds them (Qwen2-VL: patch rows; LLaVA: CHW), with Qwen2-VL's grid.
fn pixels(dir: &Path, name: &str) -> (Vec<f32>, Option<Vec<usize>>) {
    let path = dir.join("config.json");
    let v: serde_json::Value = json(&path);
    if v["model_type"] == "llava" {
        let cfg = LlavaConfig::from_json(&v, &path).unwrap();
        let prep = ClipPreprocess::load(dir, &cfg.vision).unwrap();
        (prep.cfg.pixel_values(&to_rgb(&photo(name))).0, None)
    } else if v["model_type"] == "idefics3" {
        let cfg = Idefics3Config::from_json(&v, &path).unwrap();
        let prep = Idefics3Preprocess::load(dir, &cfg.vision).unwrap();
        (prep.tiles(&photo(name)).pixels, None)
    } else {
        let cfg = Qwen2VlConfig::from_json(&v, &path).unwrap();
        let prep = Qwen2VlPreprocess::load(dir, &cfg.vision).unwrap();
        let p = prep.patches(&photo(name)).unwrap();
        (p.rows, Some(vec![p.grid.0, p.grid.1, p.grid.2]))
    }
}

/// The model as a decoder of one slot, straight from its files.
fn decoder(dir: &Path) -> Box<dyn Decoder> {
    let path = dir.join("config.json");
    let v: serde_json::Value = json(&path);
    let w = Weights::open(dir).unwrap();
    if v["model_type"] == "llava" {
        let cfg = LlavaConfig::from_json(&v, &path).unwrap();
        Box::new(llava::load_decoder(Cpu, &cfg, &w, 1, 512).unwrap())
    } else if v["model_type"] == "idefics3" {
        let cfg = Idefics3Config::from_json(&v, &path).unwrap();
        Box::new(idefics3::load_decoder(Cpu, &cfg, &w, 1, 512).unwrap())
    } else {
        let cfg = Qwen2VlConfig::from_json(&v, &path).unwrap();
        Box::new(qwen2_vl::load_decoder(Cpu, &cfg, &w, 1, 512).unwrap())
    }
}

#[test]
fn pixels_prompts_and_first_logits_match_transformers() {
    for (layout, reference) in FIXTURES {
        let exp = expected(reference);
        let stride = exp["sample_stride"].as_u64().unwrap() as usize;
        let dir = fixture(layout);
        let vlm = load_vlm(&dir, layout, 1, Device::CPU).unwrap();
        let mut dec = decoder(&dir);
        for r in exp["rows"].as_array().unwrap() {
            let name = r["photo"].as_str().unwrap();
            let (px, grid) = pixels(&dir, name);
            if let Some(grid) = grid {
                let want: Vec<usize> = serde_json::from_value(r["grid_thw"].clone()).unwrap();
                assert_eq!(grid, want, "{layout} {name}");
            }
            let shape: Vec<usize> = serde_json::from_value(r["pixel_shape"].clone()).unwrap();
            assert_eq!(px.len(), shape.iter().product::<usize>(), "{layout} {name}");
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
                let got = px[k * stride];
                assert!(
                    (got - want).abs() < tol,
                    "{layout} {name} pixel {}: {got} vs {want}",
                    k * stride
                );
            }
            let sum: f64 = px.iter().map(|&x| x as f64).sum();
            let abs: f64 = px.iter().map(|&x| x.abs() as f64).sum();
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
            let image = vlm.preprocess(&photo(name)).unwrap();
            let (ids, start) = vlm.prompt_ids(prompt, &image).unwrap();
            let want_ids: Vec<u32> = serde_json::from_value(r["input_ids"].clone()).unwrap();
            assert_eq!(ids, want_ids, "{layout} {name}: image tokens expanded");

            dec.admit(&[(0, &image_context(start, image.input.iter().copied()))])
                .unwrap();
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
    check_greedy(Device::CPU).await;
    match lakecap_kernels::cuda::unavailable_reason() {
        None => check_greedy(Device::Cuda(0, lakecap_kernels::cuda::Precision::F32)).await,
        Some(why) => eprintln!("CUDA part skipped: {why}"),
    }
}

async fn check_greedy(device: Device) {
    for (layout, reference) in FIXTURES {
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
