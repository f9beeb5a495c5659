//! The on-disk caption cache: one small file per (model, options, image
//! content) under `lakecap.cache_dir` (default `$LAKECAP_HOME/cache/captions/`), written atomically (temp
//! file, then rename), so reruns and lake refreshes never recompute a caption
//! and a crash never leaves a half-written entry. `SET lakecap.cache = off`
//! bypasses it. [`cached_texts`] is the memo-then-cache-then-model path of
//! the functions that use it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::common::Result;
use lakecap_models::home;
use xxhash_rust::xxh3::Xxh3;

use crate::common::args::{RowFailure, Rows};
use crate::common::arrow::column;
use crate::common::memo::{MemoBatch, SessionMemo};
use crate::common::options::Switch;

/// The texts of one batch's rows (`recaption`, `vlm`), each computed once:
/// a row with key `keys[i]` (NULL: no text) comes from the session memo,
/// else the disk cache (unless `lakecap.cache = off`), else from `generate`,
/// which gets the rows still to do and returns each one's outcome; failures
/// follow `lakecap.on_error`, and new texts go to the memo and the cache.
pub(crate) async fn cached_texts<F>(
    rows: &Rows<'_>,
    memo: &SessionMemo,
    keys: Vec<Option<u128>>,
    generate: impl FnOnce(Vec<usize>) -> F,
) -> Result<ArrayRef>
where
    F: Future<Output = Result<Vec<(usize, std::result::Result<String, RowFailure>)>>>,
{
    let o = &rows.options;
    let disk = (o.cache == Switch::On).then(|| CaptionCache::new(&o.cache_dir));
    let on_disk = |k: u128| -> Option<Arc<str>> { disk.as_ref()?.get(k).map(Arc::from) };
    let mut batch = MemoBatch::with_fallback(&memo.texts, keys, on_disk);
    if !batch.todo().is_empty() {
        for (i, outcome) in generate(batch.todo().to_vec()).await? {
            if let Some(text) = rows.row(i, outcome)? {
                if let Some(d) = &disk {
                    d.put(batch.key(i), &text);
                }
                batch.put(i, text.into());
            }
        }
    }
    Ok(column(batch.finish()))
}

pub(crate) struct CaptionCache {
    dir: PathBuf,
}

impl CaptionCache {
    /// The cache in `dir`, or in lakecap's home when `dir` is empty.
    pub fn new(dir: &str) -> CaptionCache {
        CaptionCache {
            dir: match dir {
                "" => home::caption_cache_dir(),
                d => PathBuf::from(d),
            },
        }
    }

    /// The key of an image under a model and canonical options.
    pub fn key(model: &str, options: &str, image: &[u8]) -> u128 {
        let mut h = Xxh3::new();
        for part in [model.as_bytes(), options.as_bytes()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(image);
        h.digest128()
    }

    fn path(&self, k: u128) -> PathBuf {
        let name = format!("{k:032x}");
        self.dir.join(&name[..2]).join(format!("{name}.txt"))
    }

    pub fn get(&self, k: u128) -> Option<String> {
        std::fs::read_to_string(self.path(k)).ok()
    }

    /// Stores a caption; a cache that cannot be written is reported once and
    /// otherwise ignored (captions are still returned).
    pub fn put(&self, k: u128, caption: &str) {
        let path = self.path(k);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("a parent"))?;
            std::fs::write(&tmp, caption)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "lakecap: caption cache {} not writable: {e}",
                    self.dir.display()
                )
            });
        }
    }
}
