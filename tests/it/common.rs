//! Helpers shared by the root integration tests.

use std::path::PathBuf;

use lakecap::{Engine, EngineOptions, ProgressMode};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An engine that ignores `LAKECAP_*` variables and draws no progress bars.
pub fn engine() -> Engine {
    Engine::with_options(EngineOptions {
        ignore_env: true,
        progress: ProgressMode::Off,
        ..Default::default()
    })
    .unwrap()
}

/// A private copy of fixture model `name`: the process-wide model loaded from
/// it, and its counters, belong to the calling test alone.
pub fn private_model(name: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lakecap-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(root().join("tests/fixtures/models").join(name)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    dir
}
