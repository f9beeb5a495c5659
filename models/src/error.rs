//! Errors of model loading and inference.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model `{id}` not found: {detail}")]
    NotFound { id: String, detail: String },
    #[error("{path}: {detail}")]
    BadFile { path: PathBuf, detail: String },
    #[error("weight `{name}`: {detail}")]
    Weight { name: String, detail: String },
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error(transparent)]
    Kernel(#[from] lakecap_kernels::KernelError),
    #[error("inference worker stopped: {0}")]
    Worker(String),
}

pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub(crate) fn bad_file(path: &std::path::Path, detail: impl std::fmt::Display) -> Self {
        ModelError::BadFile {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        }
    }
}
