//! Proves that a model function mentioned in WHERE and SELECT (which
//! DataFusion evaluates twice) computes each distinct input once, and that
//! rows from concurrent partitions share model batches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{ArrayRef, BinaryArray, RecordBatch, StringArray};

use crate::common::{engine, root};

/// A private copy of the tiny CLIP fixture.
fn private_model(tag: &str) -> PathBuf {
    crate::common::private_model("clip-tiny", &format!("calls-{tag}"))
}

fn photos(copies: usize) -> RecordBatch {
    let dir = root().join("data/photos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    files.sort();
    let files: Vec<&Path> = (0..copies)
        .flat_map(|_| files.iter().map(PathBuf::as_path))
        .collect();
    let names: StringArray = files
        .iter()
        .map(|p| Some(p.file_name().unwrap().to_string_lossy().into_owned()))
        .collect();
    let bytes: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let imgs: BinaryArray = bytes.iter().map(|b| Some(b.as_slice())).collect();
    RecordBatch::try_from_iter(vec![
        ("name", Arc::new(names) as ArrayRef),
        ("img", Arc::new(imgs) as ArrayRef),
    ])
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn where_and_select_compute_each_image_once() {
    let model = private_model("where");
    let engine = engine();
    // Three copies of the 14 photos: 42 rows, 14 distinct images.
    engine.ctx().register_batch("p", photos(3)).unwrap();
    engine
        .sql(&format!("SET lakecap.clip_model = '{}'", model.display()))
        .await
        .unwrap();
    let out = engine
        .sql("SELECT name, clip_score(img, 'rocket launch at night, 1981') AS s FROM p WHERE clip_score(img, 'rocket launch at night, 1981') > 10")
        .await
        .unwrap();
    let kept: usize = out.iter().map(|b| b.num_rows()).sum();
    assert!(
        kept > 0 && kept < 42 && kept.is_multiple_of(3),
        "kept {kept}"
    );

    let images = lakecap_models::serve::embed::image_embedder(
        model.to_str().unwrap(),
        32,
        lakecap_models::runtime::Device::CPU,
    )
    .unwrap();
    let texts = lakecap_models::serve::embed::text_embedder(
        model.to_str().unwrap(),
        32,
        lakecap_models::runtime::Device::CPU,
    )
    .unwrap();
    assert_eq!(
        images.scheduler.stats.rows.load(Ordering::Relaxed),
        14,
        "each distinct image once"
    );
    assert_eq!(
        texts.scheduler.stats.rows.load(Ordering::Relaxed),
        1,
        "the one text once"
    );

    // Other functions on the same images reuse the memo too.
    engine.sql("SELECT embed_image(img) FROM p").await.unwrap();
    assert_eq!(images.scheduler.stats.rows.load(Ordering::Relaxed), 14);
    std::fs::remove_dir_all(&model).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_share_batches() {
    let model = private_model("batches");
    let engine = engine();
    // Four partitions (one per batch) of the 14 distinct images.
    let all = photos(1);
    let parts: Vec<Vec<RecordBatch>> = (0..4)
        .map(|i| vec![all.slice(i * 4, if i == 3 { 2 } else { 4 })])
        .collect();
    let table = datafusion::datasource::MemTable::try_new(all.schema(), parts).unwrap();
    engine.ctx().register_table("p", Arc::new(table)).unwrap();
    engine
        .sql(&format!("SET lakecap.clip_model = '{}'", model.display()))
        .await
        .unwrap();
    let out = engine
        .sql("SELECT count(embed_image(img)) FROM p")
        .await
        .unwrap();
    let table = arrow::util::pretty::pretty_format_batches(&out)
        .unwrap()
        .to_string();
    assert!(table.contains("| 14 "), "{table}");
    let images = lakecap_models::serve::embed::image_embedder(
        model.to_str().unwrap(),
        32,
        lakecap_models::runtime::Device::CPU,
    )
    .unwrap();
    let rows = images.scheduler.stats.rows.load(Ordering::Relaxed);
    let batches = images.scheduler.stats.batches.load(Ordering::Relaxed);
    assert_eq!(rows, 14);
    // One request per partition at most (each is under lakecap.batch_size);
    // concurrent requests may share a batch.
    assert!((1..=4).contains(&batches), "{batches} batches");
    std::fs::remove_dir_all(&model).ok();
}
