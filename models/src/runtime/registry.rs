//! The model registry: process-wide models, each loaded once per
//! (directory, device) and shared by every query that names it.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::Device;
use crate::error::Result;
use crate::hub;

/// Loaded models by (directory, device).
pub(crate) type Registry<T> = Mutex<HashMap<(PathBuf, Device), Arc<T>>>;

/// The model `id` on `device` from `reg`, loaded with `load` on first use.
pub(crate) fn cached<T>(
    reg: &'static OnceLock<Registry<T>>,
    id: &str,
    device: Device,
    load: impl FnOnce(&Path) -> Result<T>,
) -> Result<Arc<T>> {
    let dir = hub::resolve(id)?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let map = reg.get_or_init(Default::default);
    once_per_key(map, (dir.clone(), device), || load(&dir))
}

/// The value of `key` in `map`, built with `build` on first use; a failed
/// build is not kept, so a later call tries again.
pub(crate) fn once_per_key<K: Eq + Hash, V>(
    map: &Mutex<HashMap<K, Arc<V>>>,
    key: K,
    build: impl FnOnce() -> Result<V>,
) -> Result<Arc<V>> {
    // Holding the lock while building makes concurrent first calls build once.
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(x) = m.get(&key) {
        return Ok(Arc::clone(x));
    }
    let x = Arc::new(build()?);
    m.insert(key, Arc::clone(&x));
    Ok(x)
}
