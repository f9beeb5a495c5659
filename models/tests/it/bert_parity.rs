//! Tiny random-init BERT (tests/fixtures/models/bert-tiny) against
//! transformers' `BertModel` + sentence-transformers mean pooling.

use std::path::Path;

use crate::common::{floats, ids, json, rel_err};
use lakecap_kernels::{Backend, Cpu};
use lakecap_models::bert::{Bert, BertConfig};
use lakecap_models::weights::Weights;

fn check<B: Backend>(be: &B, tol: f32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/bert-tiny");
    let cfg: BertConfig = json(&dir.join("config.json"));
    let exp: serde_json::Value = json(&dir.join("expected.json"));
    let model = Bert::load(be, &cfg, &Weights::open(&dir).unwrap()).unwrap();
    let got = be
        .download(&model.embed(be, &ids(&exp["input_ids"]), false).unwrap())
        .unwrap();
    for (i, (g, w)) in got
        .chunks(cfg.hidden_size)
        .zip(floats(&exp["mean_pooled"]))
        .enumerate()
    {
        let e = rel_err(g, &w);
        assert!(e < tol, "row {i}: rel err {e}");
    }
}

#[test]
fn tiny_bert_matches_transformers() {
    check(&Cpu, 1e-5);
}

#[test]
fn tiny_bert_on_cuda_matches_transformers() {
    if let Some(why) = lakecap_kernels::cuda::unavailable_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    check(
        &lakecap_kernels::Cuda::new(0, lakecap_kernels::cuda::Precision::F32).unwrap(),
        1e-4,
    );
}
