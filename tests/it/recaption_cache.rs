//! recaption's caches: within a query the same image is captioned once (WHERE
//! and SELECT both mention it; copies of an image share it), and across
//! sessions the on-disk cache answers reruns without the model, unless
//! `SET lakecap.cache = off`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, RecordBatch, StringArray};
use lakecap_models::runtime::Device;

use crate::common::{engine, root};

fn photos(copies: usize) -> RecordBatch {
    let names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"];
    let files: Vec<PathBuf> = (0..copies)
        .flat_map(|_| names.iter().map(|n| root().join("data/photos").join(n)))
        .collect();
    let bytes: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let keys: StringArray = (0..files.len()).map(|i| Some(format!("k{i}"))).collect();
    let imgs: BinaryArray = bytes.iter().map(|b| Some(b.as_slice())).collect();
    RecordBatch::try_from_iter(vec![
        ("key", Arc::new(keys) as ArrayRef),
        ("img", Arc::new(imgs) as ArrayRef),
    ])
    .unwrap()
}

async fn captions(model: &std::path::Path, cache: &std::path::Path, extra: &str) -> Vec<String> {
    let e = engine();
    e.ctx().register_batch("p", photos(3)).unwrap();
    for s in [
        format!("SET lakecap.caption_model = '{}'", model.display()),
        "SET lakecap.device = 'cpu'".into(),
        format!("SET lakecap.cache_dir = '{}'", cache.display()),
        extra.to_string(),
    ] {
        if !s.is_empty() {
            e.sql(&s).await.unwrap();
        }
    }
    let out = e
        .sql(
            "SELECT recaption(img, 'max_tokens=6') AS c FROM p \
              WHERE recaption(img, 'max_tokens=6') IS NOT NULL ORDER BY key",
        )
        .await
        .unwrap();
    out.iter()
        .flat_map(|b| {
            let a = b.column(0).as_string::<i32>().clone();
            (0..a.len())
                .map(|i| a.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn captions_are_computed_once_and_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let model = crate::common::private_model("blip-tiny", "recaption");
    let cap = lakecap_models::serve::caption::captioner(model.to_str().unwrap(), 32, Device::CPU)
        .unwrap();
    let runs = || cap.generator.stats.sequences.load(Ordering::Relaxed);

    let first = captions(&model, cache.path(), "").await;
    assert_eq!(first.len(), 12, "every row kept");
    assert_eq!(
        runs(),
        4,
        "4 distinct images, each captioned once for WHERE and SELECT"
    );
    let files = walk(cache.path());
    assert_eq!(files, 4, "one cache entry per image");

    // A new session: the disk cache answers, the model is not called.
    assert_eq!(captions(&model, cache.path(), "").await, first);
    assert_eq!(runs(), 4);

    // Cache off: computed again, same captions.
    assert_eq!(
        captions(&model, cache.path(), "SET lakecap.cache = off").await,
        first
    );
    assert_eq!(runs(), 8);
    std::fs::remove_dir_all(&model).ok();
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        usize::from(p.extension().is_some_and(|x| x == "txt"))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
