//! The on-disk caption cache: one small file per (model, options, image
//! content) under `lakecap.cache_dir` (default `$LAKECAP_HOME/cache/captions/`), written atomically (temp
//! file, then rename), so reruns and lake refreshes never recompute a caption
//! and a crash never leaves a half-written entry. `SET lakecap.cache = off`
//! bypasses it.

use std::path::PathBuf;

use lakecap_models::home;
use xxhash_rust::xxh3::Xxh3;

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
