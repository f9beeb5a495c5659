//! Batches split into several encoder passes (`Backend::activation_budget`)
//! give the same results as one pass: BLIP's greedy captions still equal
//! transformers' `generate` (tests/fixtures/models/blip-tiny), and CLIP image
//! embeddings equal the single-pass ones. Its own test binary, because the
//! budget is process-wide.

use std::path::Path;

use crate::common::{blip_inputs, json, photo};
use lakecap_kernels::cpu::set_activation_budget;
use lakecap_models::decode::GenParams;
use lakecap_models::runtime::Device;
use lakecap_models::serve::caption::load_captioner;
use lakecap_models::serve::embed::load_image_embedder;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_image_per_pass_changes_nothing() {
    let photos = [
        "astronaut.png",
        "coffee.png",
        "moon.png",
        "coins.png",
        "horse.png",
    ];

    // CLIP: one pass of five, then five passes of one.
    let whole = load_image_embedder(&fixture("clip-tiny"), "tiny", 8, Device::CPU).unwrap();
    let inputs: Vec<_> = photos.iter().map(|p| whole.preprocess(&photo(p))).collect();
    let want = whole.embed(inputs.clone()).await.unwrap();
    set_activation_budget(1);
    let split = load_image_embedder(&fixture("clip-tiny"), "tiny", 8, Device::CPU).unwrap();
    let got = split.embed(inputs).await.unwrap();
    for (a, b) in got.iter().zip(&want) {
        let err = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "split CLIP pass differs by {err}");
    }

    // BLIP: four images admitted at once, each encoded in its own pass.
    let dir = fixture("blip-tiny");
    let exp: serde_json::Value = json(&dir.join("expected.json"));
    let rows = exp["rows"].as_array().unwrap();
    let cap = load_captioner(&dir, "blip-tiny", 4, Device::CPU).unwrap();
    let images = blip_inputs(&cap, rows);
    let params = GenParams {
        max_new_tokens: 12,
        ..Default::default()
    };
    let out = cap.caption(images, "", params).await.unwrap();
    for (r, got) in rows.iter().zip(out) {
        assert_eq!(got.unwrap(), r["text"].as_str().unwrap(), "{}", r["photo"]);
    }
}
