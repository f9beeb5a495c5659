//! Tiny random-init BLIP against transformers (tests/fixtures/gen_blip_fixtures.py):
//! `BlipImageProcessor` pixels on real photos and greedy `generate` tokens,
//! without and with the text prefix, through the continuous-batching
//! captioner (five images through two slots).

use std::path::{Path, PathBuf};

use crate::common::{blip_inputs, floats, ids, json, photo};
use lakecap_models::blip::{BlipConfig, BlipPreprocess};
use lakecap_models::decode::GenParams;
use lakecap_models::runtime::Device;
use lakecap_models::serve::caption::load_captioner;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/blip-tiny")
}

#[test]
fn preprocessing_matches_blip_image_processor() {
    let dir = fixture();
    let cfg: BlipConfig = json(&dir.join("config.json"));
    let prep = BlipPreprocess::load(&dir, &cfg.vision_config).unwrap();
    let exp: serde_json::Value = json(&dir.join("expected.json"));
    for r in exp["rows"].as_array().unwrap() {
        let want = floats(&serde_json::json!([r["pixel_values"]]))[0].clone();
        let got = prep.pixels(&photo(r["photo"].as_str().unwrap()));
        // One 8-bit level, in normalised units (1/255 / std).
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1.0 / 255.0 / 0.26 + 1e-4, "{}: {worst}", r["photo"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_captions_match_transformers_generate() {
    check_greedy(Device::CPU).await;
    match lakecap_kernels::cuda::unavailable_reason() {
        None => check_greedy(Device::Cuda(0, lakecap_kernels::cuda::Precision::F32)).await,
        Some(why) => eprintln!("CUDA part skipped: {why}"),
    }
}

/// A tokenizer.json saved with padding and truncation on (as
/// sentence-transformers ships them: every text padded to 128) still gives
/// the bare prompt: no pad tokens to prefill, the same captions.
#[test]
fn tokenizer_padding_settings_do_not_reach_the_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let path = tmp.path().join("tokenizer.json");
    let mut tok: serde_json::Value = json(&path);
    tok["padding"] = serde_json::json!({"strategy": {"Fixed": 128}, "direction": "Right",
        "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"});
    tok["truncation"] = serde_json::json!({"direction": "Right", "max_length": 4,
        "strategy": "LongestFirst", "stride": 0});
    std::fs::write(&path, tok.to_string()).unwrap();
    let padded = load_captioner(tmp.path(), "padded", 1, Device::CPU).unwrap();
    let plain = load_captioner(&fixture(), "plain", 1, Device::CPU).unwrap();
    let want = plain.prompt_ids("a picture of a dog on the beach").unwrap();
    assert!(want.len() > 4, "{want:?}");
    assert_eq!(
        padded
            .prompt_ids("a picture of a dog on the beach")
            .unwrap(),
        want
    );
    assert_eq!(padded.prompt_ids("").unwrap(), vec![300]);
}

async fn check_greedy(device: Device) {
    let dir = fixture();
    let exp: serde_json::Value = json(&dir.join("expected.json"));
    let rows = exp["rows"].as_array().unwrap();
    // Four slots: two greedy rows at once, or one beam group of up to four.
    let cap = load_captioner(&dir, "blip-tiny", 4, device).unwrap();
    let prefix_ids = ids(&serde_json::json!([exp["prefix_ids"]]))[0].clone();
    // [CLS] a picture of [SEP] -> [DEC] a picture of
    let mut want_prompt = vec![300];
    want_prompt.extend_from_slice(&prefix_ids[1..prefix_ids.len() - 1]);
    assert_eq!(cap.prompt_ids("a picture of").unwrap(), want_prompt);
    let images = blip_inputs(&cap, rows);
    let params = GenParams {
        max_new_tokens: 12,
        ..Default::default()
    };
    for (prefix, key, text) in [
        ("", "greedy", "text"),
        ("a picture of", "greedy_prefixed", "text_prefixed"),
    ] {
        let out = cap
            .caption(images.clone(), prefix, params.clone())
            .await
            .unwrap();
        for (r, got) in rows.iter().zip(out) {
            let got = got.unwrap();
            assert_eq!(
                got,
                r[text].as_str().unwrap(),
                "{} {key}: {:?}",
                r["photo"],
                r[key]
            );
        }
    }
    // Beam search, as transformers' generate(num_beams, length_penalty, early_stopping).
    for (beams, lp, es) in [(3, 1.0, false), (4, 0.6, true), (2, 1.0, false)] {
        let p = GenParams {
            max_new_tokens: 12,
            num_beams: beams,
            length_penalty: lp,
            early_stopping: es,
            ..Default::default()
        };
        let key = format!("{beams}_{lp:.1}_{}", if es { "True" } else { "False" });
        let out = cap.caption(images.clone(), "", p).await.unwrap();
        for (r, got) in rows.iter().zip(out) {
            let want = r["beam_search"][&key].as_str().unwrap();
            assert_eq!(got.unwrap(), want, "{device:?} {} beams {key}", r["photo"]);
        }
    }
    check_guidance(&cap, &images).await;
    // 5 greedy, 5 prefixed and 15 beam-search captions through four slots,
    // then 17 of the guidance checks (a guided row counts once).
    let st = &cap.generator.stats;
    assert_eq!(st.sequences.load(std::sync::atomic::Ordering::Relaxed), 42);
    assert_eq!(st.max_running.load(std::sync::atomic::Ordering::Relaxed), 4);
}

/// Classifier-free guidance has no transformers reference; its invariants:
/// scale 0 decodes the unconditional branch alone (greedy on the mean image,
/// which normalises to zeros), a larger scale changes captions, and a row's
/// caption does not depend on its batch.
async fn check_guidance(cap: &lakecap_models::serve::caption::Captioner, images: &[Vec<f32>]) {
    let greedy = GenParams {
        max_new_tokens: 8,
        ..Default::default()
    };
    let guided = |scale: f32| GenParams {
        guidance_scale: scale,
        ..greedy.clone()
    };
    let blank = cap
        .caption(vec![vec![0.0; images[0].len()]], "", greedy.clone())
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let zero: Vec<String> = cap
        .caption(images.to_vec(), "", guided(0.0))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(zero.iter().all(|c| *c == blank), "{zero:?} vs {blank:?}");
    let plain: Vec<String> = cap
        .caption(images.to_vec(), "", greedy.clone())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let strong: Vec<String> = cap
        .caption(images.to_vec(), "", guided(3.0))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_ne!(strong, plain, "guidance changes captions");
    let one = cap
        .caption(vec![images[2].clone()], "", guided(3.0))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(one, strong[2], "independent of the batch");
}
