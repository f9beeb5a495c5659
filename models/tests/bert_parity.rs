//! Tiny random-init BERT (tests/fixtures/models/bert-tiny) against
//! transformers' `BertModel` + sentence-transformers mean pooling.

use std::path::Path;

use lakecap_kernels::{Backend, Cpu};
use lakecap_models::bert::{Bert, BertConfig};
use lakecap_models::weights::Weights;

fn check<B: Backend>(be: &B, tol: f32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/bert-tiny");
    let cfg: BertConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let model = Bert::load(be, &cfg, &Weights::open(&dir).unwrap()).unwrap();
    let ids: Vec<Vec<u32>> = exp["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect();
    let got = be.download(&model.embed(be, &ids, false).unwrap()).unwrap();
    for (i, (g, w)) in got
        .chunks(cfg.hidden_size)
        .zip(exp["mean_pooled"].as_array().unwrap())
        .enumerate()
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
    check(&lakecap_kernels::Cuda::new(0, false).unwrap(), 1e-4);
}
