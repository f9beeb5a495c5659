//! The model registry: process-wide models, each loaded once per
//! (directory, device) and shared by every query that names it.

use std::collections::HashMap;
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
    // Holding the lock while loading makes concurrent first calls load once.
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(x) = m.get(&(dir.clone(), device)) {
        return Ok(Arc::clone(x));
    }
    let x = Arc::new(load(&dir)?);
    m.insert((dir, device), Arc::clone(&x));
    Ok(x)
}
