//! lakecap's home on disk (`$LAKECAP_HOME`, default `~/.cache/lakecap`) and
//! the folders in it, named once for the models crate, the SQL functions, the
//! engine and the CLI: `models/` (fetched models), `cache/captions/` (the
//! caption cache) and `jobs/` (refresh run history).

use std::path::PathBuf;

/// The user's home directory (`$HOME`), else the working directory.
pub(crate) fn user_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `$LAKECAP_HOME`, default `~/.cache/lakecap`.
pub fn lakecap_home() -> PathBuf {
    std::env::var_os("LAKECAP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| user_home().join(".cache").join("lakecap"))
}

/// Where `scripts/fetch-models.sh` and `lakecap models pull` put models.
pub fn models_home() -> PathBuf {
    lakecap_home().join("models")
}

/// Where recaptioning keeps captions by (model, options, image content).
pub fn caption_cache_dir() -> PathBuf {
    lakecap_home().join("cache").join("captions")
}

/// Where refresh jobs record their runs (`NAME.json` per job).
pub fn jobs_dir() -> PathBuf {
    lakecap_home().join("jobs")
}
